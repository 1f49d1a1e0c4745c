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
        unknown = [d["id"] for d in system.docs("b") if d["state"] == "unknown"]
        assert {d["clone"]["error"]["kind"] for d in system.docs("b") if d["id"] in unknown} == {
            "lost_worker"
        }
        # the operator does as told: the creates are left, as the worker may only be frozen
        outcome = batch.retry(unknown=True)
        assert (outcome.jobs, outcome.settling) == (0, len(unknown))
        assert outcome.settle_note is not None
        assert "may only be frozen" in outcome.settle_note
        creates_in_the_freeze = len(simulator.ledger()["creates"])
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    deadline = time.monotonic() + 60  # "finished" already: every job completed or unknown
    while system.info("b").counts["completed"] < JOBS and time.monotonic() < deadline:
        time.sleep(0.2)
    info = system.info("b")
    creates = simulator.ledger()["creates"]
    assert creates_in_the_freeze <= JOBS
    assert len(creates) == JOBS  # each job's clone made once
    states = {d["id"]: d["state"] for d in system.docs("b")}
    # the woken worker stored the answers it had: the "unknown" jobs completed
    assert [states[job] for job in unknown] == ["completed"] * len(unknown), worker.log_tail(40)
    assert info.counts["completed"] == JOBS
