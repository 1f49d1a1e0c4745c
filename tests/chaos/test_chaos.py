"""Faults, one at a time, against real Redis, real workers and the simulator.

After each: every job is finished (completed, failed for a reason of the API's, or
reported unknown), the simulator's ledger shows no step created twice beyond the
unknown ones, and what Redis holds equals what the API says.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from clonequeue.local import rabbitmq
from clonequeue.local.stack import SimulatorAdmin
from tests.chaos.report import EXPECTED_FAILURE_KINDS, FULL, chaos_settings
from tests.e2e.system import System, make_rows

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

JOBS = 1000 if FULL else 80
OUTAGE_S = 60.0 if FULL else 10.0
WAIT_S = float(os.environ.get("CHAOS_WAIT_S", 900.0 if FULL else 180.0))
SETTINGS = chaos_settings(WAIT_S)


class Scenario:
    def __init__(
        self,
        system: System,
        simulator: SimulatorAdmin,
        redis_server: Any,
        vhost: rabbitmq.Vhost | None = None,
    ) -> None:
        self.system, self.simulator, self.redis_server = system, simulator, redis_server
        self.vhost = vhost  # the session's RabbitMQ vhost, for the RabbitMQ faults
        self.done = threading.Event()
        self.broker_restarts = 0

    def progress(self) -> float:
        info = self.system.info("chaos")
        return 1 - info.open_jobs / info.total


def kill_workers(s: Scenario) -> None:
    """kill -9 a random worker every few seconds and start a new one."""
    rng = random.Random(1)
    while not s.done.wait(rng.uniform(2.0, 5.0)):
        victim = rng.choice(s.system.stack.workers)
        victim.kill()
        s.system.stack.workers.remove(victim)
        s.system.start_worker()


def restart_redis(s: Scenario) -> None:
    """Restart Redis (AOF) twice: at a third and at two thirds of the batch."""
    for mark in (0.33, 0.66):
        while s.progress() < mark and not s.done.wait(0.2):
            pass
        if s.done.is_set():
            return
        s.redis_server.restart()


def restart_rabbitmq(s: Scenario) -> None:
    """Close every connection of our RabbitMQ vhost twice, at a tenth and at two fifths
    of the batch: what a broker restart does to clients, without stopping the machine's
    broker (others use it). Unacknowledged messages go back to their queues; countdowns
    wait in the delayed levels on the broker meanwhile. (Marks early in the batch: jobs
    finish in waves, and a last wave could jump past a later mark to the end.)"""
    assert s.vhost is not None
    for mark in (0.1, 0.4):
        while s.progress() < mark and not s.done.wait(0.2):
            pass
        if s.done.is_set():
            return
        s.vhost.close_connections("clonequeue chaos: broker restart")
        s.broker_restarts += 1


def api_down(mode: str) -> Callable[[Scenario], None]:
    def fault(s: Scenario) -> None:
        while s.progress() < 0.2 and not s.done.wait(0.2):
            pass
        if mode == "refuse":
            s.simulator.configure(down="refuse", down_for_s=OUTAGE_S)
            time.sleep(OUTAGE_S)
        else:
            s.simulator.configure(down="5xx")
            s.done.wait(OUTAGE_S)
            s.simulator.configure(down=None)

    fault.__doc__ = (
        f"The API {'refuses connections' if mode == 'refuse' else 'answers 503'} "
        f"for {OUTAGE_S:.0f} s."
    )
    return fault


def storm_429(s: Scenario) -> None:
    """The API allows 25 requests/s; our workers may send 400/s."""
    s.simulator.configure(rate_limit_per_s=25)


def balance_runs_out(s: Scenario) -> None:
    """The balance covers about a third of the batch; topped up 10 s after the pause."""
    s.simulator.set_balance(JOBS * 0.0006)
    while s.system.services.fleet.pause_reason() is None and not s.done.wait(0.2):
        pass
    s.done.wait(10)
    s.simulator.set_balance(1_000_000)


def slow_network(s: Scenario) -> None:
    """Every answer takes 0.8 s; 5 % take 2 s, past the 1.5 s read timeout."""
    s.simulator.configure(latency_s=0.8, slow_rate=0.05, slow_s=2.0)


FAULTS: dict[str, Callable[[Scenario], None]] = {
    "worker kill -9": kill_workers,
    "Redis restart": restart_redis,
    "API down (5xx)": api_down("5xx"),
    "API down (refused)": api_down("refuse"),
    "429 storm": storm_429,
    "balance runs out": balance_runs_out,
    "slow network": slow_network,
}
# The same checks with RabbitMQ as the broker (quorum queues, native delayed delivery).
RABBITMQ_FAULTS: dict[str, Callable[[Scenario], None]] = {
    "worker kill -9 (RabbitMQ)": kill_workers,
    "broker restart (RabbitMQ)": restart_rabbitmq,
}

# Faults that make test already drives end to end in tests/e2e (test_pipeline:
# kill -9 of a worker, on both brokers; a Redis restart; an API answering 5xx; the
# balance running out; test_operations: SIGTERM on both brokers). Their chaos-sized
# runs, and RabbitMQ's, are make chaos's: make test stays under its 6 minutes.
COVERED_IN_E2E = frozenset(
    {"worker kill -9", "Redis restart", "API down (5xx)", "balance runs out"}
)
ONLY_FULL = pytest.mark.skipif(
    not FULL,
    reason="covered end to end in tests/e2e; this chaos-sized run is make chaos's (CHAOS_FULL=1)",
)
RABBITMQ_ONLY_FULL = pytest.mark.skipif(
    not FULL,
    reason="RabbitMQ's chaos faults run under CHAOS_FULL=1 (make chaos); make test drives "
    "kill -9 and SIGTERM on RabbitMQ in tests/e2e",
)


@pytest.mark.timeout(int(WAIT_S + 120))
@pytest.mark.parametrize(
    "name",
    [
        *(
            pytest.param(name, marks=[ONLY_FULL] if name in COVERED_IN_E2E else [])
            for name in FAULTS
        ),
        *(pytest.param(name, marks=[pytest.mark.rabbitmq, ONLY_FULL]) for name in RABBITMQ_FAULTS),
    ],
)
def test_chaos(
    name: str,
    make_system: type[System],
    simulator: SimulatorAdmin,
    redis_server: Any,
    chaos_report: Any,
    request: pytest.FixtureRequest,
) -> None:
    extra = {"api_rate_limit": "100/second"} if name == "slow network" else {}
    vhost: rabbitmq.Vhost | None = None
    if name in RABBITMQ_FAULTS:
        vhost = request.getfixturevalue("rabbitmq_vhost")
        extra["broker_url"] = vhost.url
    system = make_system(**SETTINGS, **extra)
    simulator.configure(failure_rate=0.05, seed=hash(name) % 1000)
    scenario = Scenario(system, simulator, redis_server, vhost)
    for _ in range(2):
        system.start_worker()
    started = time.monotonic()
    system.submit(make_rows(JOBS, audios=1), batch="chaos")
    fault = threading.Thread(
        target={**FAULTS, **RABBITMQ_FAULTS}[name], args=(scenario,), daemon=True
    )
    fault.start()
    try:
        info = system.wait("chaos", WAIT_S)
    finally:
        scenario.done.set()
        fault.join(OUTAGE_S + 5)
        simulator.configure(down=None, rate_limit_per_s=None, latency_s=0, slow_rate=0)
    elapsed = time.monotonic() - started
    report = system.audit("chaos")
    summary = simulator.summary()
    chaos_report.append(
        {
            "fault": name,
            "jobs": report.jobs,
            "completed": info.counts.get("completed", 0),
            "failed": info.counts.get("failed", 0),
            "unknown": info.counts.get("unknown", 0),
            "creates": report.creates,
            "created twice": len(report.duplicates),
            "creates of unknowns": report.unknown_creates,
            "untracked": len(report.orphans),
            "disagree": len(report.mismatches),
            "429s": summary["http_429"],
            "5xx": summary["http_5xx"],
            "seconds": round(elapsed),
        }
    )
    assert report.ok, report.problems()
    assert report.jobs == JOBS
    if name == "broker restart (RabbitMQ)":
        assert scenario.broker_restarts == 2, "the batch ended before both restarts"
    for doc in system.docs("chaos"):
        for step in [doc["clone"], *doc.get("audios", [])]:
            if step["state"] == "failed":
                assert step["error"]["kind"] in EXPECTED_FAILURE_KINDS, (name, doc["id"], step)
            if step["state"] == "unknown":
                assert step["error"]["kind"] in ("no_answer", "lost_worker"), (name, step)
    no_unknowns = ("API down (5xx)", "429 storm", "balance runs out", "Redis restart")
    if name in no_unknowns:
        assert info.counts.get("unknown", 0) == 0, f"{name} must not leave unknown outcomes"
    if name == "API down (refused)":
        # Going down closes the open connections too: a create written on one at that
        # instant got no answer, and nothing can tell whether the API read it (seen:
        # 1 in 1,000). It must be reported unknown (checked above), and be rare.
        assert info.counts.get("unknown", 0) <= JOBS // 100, "refusals must not become unknown"
