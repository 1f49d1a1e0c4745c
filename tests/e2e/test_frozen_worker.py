"""A worker frozen mid-create (SIGSTOP: a stopped process, a paused VM) for longer than
its create lease, as an operator meets it: the watchdog calls its creates `unknown`
(`lost_worker`), and `status` says `retry --unknown` sends them again.

From a QA pass: retrying then paid every such create twice once the worker woke, as
it still stored its answers; and a worker woken past its deadline threw the answer
in its socket away as a timeout.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from clonequeue.batch import Batch
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System, make_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
JOBS = 8


def test_unknown_creates_of_a_frozen_worker_wait_for_its_answer_before_a_retry(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    simulator.configure(latency_s=1.5, clone_processing_s=1.0, audio_processing_s=1.0)
    system = make_system(watchdog_grace_s="3")
    system.start_beat()  # a process of its own: the freeze stops the worker, not the beat
    worker = system.start_worker(beat=False)
    system.submit(make_rows(JOBS, audios=0))
    batch = Batch("b", services=system.services)
    deadline = time.monotonic() + 30
    while not any(d["clone"]["state"] == "submitting" for d in system.docs("b")):
        assert time.monotonic() < deadline, "no create went out"
        time.sleep(0.05)
    assert worker.pid is not None
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        system.start_worker(beat=False)  # runs the watchdog's passes, and the other jobs
        deadline = time.monotonic() + 60
        while not system.info("b").counts["unknown"]:
            assert time.monotonic() < deadline, "the watchdog never gave up on the frozen creates"
            time.sleep(0.2)
        # the operator does as told: the creates are left, as the worker may only be frozen
        # (more may turn unknown meanwhile: the watchdog's passes come every 2 s)
        outcome = batch.retry(unknown=True)
        unknown = [d for d in system.docs("b") if d["state"] == "unknown"]
        assert {d["clone"]["error"]["kind"] for d in unknown} == {"lost_worker"}
        assert outcome.jobs == 0
        assert 1 <= outcome.settling <= len(unknown)
        assert outcome.settle_note is not None
        assert "may only be frozen" in outcome.settle_note
        creates_in_the_freeze = len(simulator.ledger()["creates"])
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    # "finished" already (completed or unknown); the woken worker stores what it holds
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if settled(system, simulator):
            time.sleep(3)  # a thread woken before its create went out sends it now (1.5 s)
            if settled(system, simulator):
                break
        time.sleep(0.2)
    made = created(simulator)
    assert creates_in_the_freeze <= JOBS
    assert all(count == 1 for count in made.values()), made  # none made twice
    states = {d["id"]: d["state"] for d in system.docs("b")}
    # a create that reached the API is stored and goes on: its job completed
    assert {job: states[job] for job in made} == dict.fromkeys(made, "completed"), states
    # one the worker froze before sending (its deadline passed: not sent) stays unknown,
    # and a forced retry sends it once
    left = [job for job, state in states.items() if state != "completed"]
    assert all(states[job] == "unknown" for job in left), states
    assert batch.retry(unknown=True, force=True).jobs == len(left)
    info = system.wait("b", 60)
    assert info.counts["completed"] == JOBS
    assert sorted(created(simulator).values()) == [1] * JOBS  # each job's clone made once


def created(simulator: SimulatorAdmin) -> dict[str, int]:
    """Creates the API received, per job (its fileUrl names it)."""
    made: dict[str, int] = {}
    for create in simulator.ledger()["creates"]:
        job = create["body"]["fileUrl"].rsplit("/", 1)[-1].removesuffix(".mp3")
        made[job] = made.get(job, 0) + 1
    return made


def settled(system: System, simulator: SimulatorAdmin) -> bool:
    """Every job completed, or unknown with no create at the API (none can come)."""
    made = created(simulator)
    return all(
        d["state"] == "completed" or (d["state"] == "unknown" and d["id"] not in made)
        for d in system.docs("b")
    )
