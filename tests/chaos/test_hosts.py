"""The fleet across hosts: every part on a network namespace of its own, faults on links.

Hosts: a producer, 2 workers, beat, the simulator as the API, a Redis master and a
replica, and 3 sentinels (clonequeue.local.netns and .hosts). The fleet's processes
reach Redis only through the sentinels (``sentinel://`` URLs of the sentinels'
addresses), claims and stored task ids WAIT for the replica. The test process
watches the batch through a relay that always leads to the master of the moment.
Each fault is judged by the simulator's ledger (tests/chaos/run.py ``check``): nothing
lost, nothing paid twice, our records equal the API's. CI runs the master cut over a
small batch; ``make chaos`` (CHAOS_FULL=1) runs every fault over 200 jobs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clonequeue.local import netns
from clonequeue.local.hosts import (
    SIMULATOR_PORT,
    RedisHA,
    kill_host,
    start_clonequeue,
    start_redis_ha,
    start_simulator,
)
from clonequeue.local.netns import Host, Network
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from tests.chaos.report import FULL, ChaosReport
from tests.chaos.run import SETTINGS, WAIT_S, ChaosRun, assert_redriven, check
from tests.e2e.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(int(WAIT_S) + 300)]

JOBS = 200 if FULL else 40
MASTER_CUT_S = 45.0 if FULL else 3.0  # FULL: longer than the store's 30 s socket timeout
PARTITION_S = 90.0 if FULL else 20.0
FULL_ONLY = pytest.mark.skipif(
    not FULL, reason="a long fault over 200 jobs: runs under CHAOS_FULL=1 (make chaos)"
)
FAST_TASKS = {
    "clone_queue_s": 0.3,
    "clone_processing_s": 1.0,
    "audio_queue_s": 0.3,
    "audio_processing_s": 1.0,
    "jitter_ratio": 0.3,
}
# Claims and stored task ids are acknowledged by the replica before a create goes out.
REPLICATED = {"redis_min_replicas": "1", "redis_wait_timeout_ms": "500"}


class Fleet:
    """The hosts, the Redis group, the API and a :class:`System` that watches the batch."""

    def __init__(self, network: Network, workdir: Path) -> None:
        self.network, self.workdir = network, workdir
        add = network.add_host
        self.producer, self.api, self.beat = add("producer"), add("api"), add("beat")
        self.workers = [add("w1"), add("w2")]
        self.data = [add("redis-a"), add("redis-b")]
        self.watchers = [add(f"sentinel{i}") for i in range(1, 4)]
        self.ha: RedisHA = start_redis_ha(self.data, self.watchers, workdir / "redis")
        start_simulator(self.api, workdir / "api")
        self.admin = SimulatorAdmin(f"http://127.0.0.1:{self.api.forward(SIMULATOR_PORT)}")
        self.admin.reset()
        self.admin.configure(**FAST_TASKS)
        self.admin.set_balance(1_000_000)
        followed = f"redis://127.0.0.1:{self.ha.follow(self.producer)}/0"
        self.system = System(
            workdir / "system", followed, self.admin.base_url, **SETTINGS, **REPLICATED
        )
        self.env = {
            **self.system.stack.env(),
            "CLONEQUEUE_REDIS_URL": self.ha.url,
            "CLONEQUEUE_API_BASE_URL": f"http://{self.api.address}:{SIMULATOR_PORT}",
        }

    def redis_hosts(self) -> list[Host]:
        return [*self.data, *self.watchers]

    def start(self, host: Host, command: list[str], name: str) -> ManagedProcess:
        process = start_clonequeue(host, self.workdir / host.name, command, env=self.env, name=name)
        self.system.stack.workers.append(process)  # its log counts; stopped with the fleet
        return process

    def start_fleet(self) -> None:
        """A worker on each worker host and beat on its own, started side by side."""
        started = [(self.start_worker(host, wait=False), "ready.") for host in self.workers] + [
            (self.start_beat(), "beat: Starting")
        ]
        for process, line in started:
            process.wait_ready(line=line, timeout_s=90)

    def start_worker(self, host: Host, *, wait: bool = True) -> ManagedProcess:
        command = ["worker", f"--hostname={host.name}@%h", "--concurrency", "30"]
        process = self.start(host, command, host.name)
        if wait:
            process.wait_ready(line="ready.", timeout_s=90)
        return process

    def start_beat(self) -> ManagedProcess:
        schedule = self.workdir / self.beat.name / "schedule"
        return self.start(self.beat, ["beat", f"--schedule={schedule}"], "beat")

    def submit(self, rows: list[dict[str, Any]], batch: str) -> None:
        """``clonequeue submit`` on the producer host, to its end."""
        source = self.workdir / f"{batch}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        process = start_clonequeue(
            self.producer,
            self.workdir / "producer",
            ["submit", str(source), "--batch", batch],
            env=self.env,
            name=f"submit-{batch}",
        )
        code = process.wait(120)
        assert code == 0, f"submit exited {code}: {process.log_tail(20)}"

    def answering_workers(self, expected: set[str], timeout_s: float = 60.0) -> set[str]:
        """The workers that answer a control ping, asked until ``expected`` all do (a
        worker whose broker connection hung on a cut master reconnects within its
        socket timeout, and a loaded machine stretches that)."""
        started = time.monotonic()
        for asked in itertools.count(1):
            replies = self.system.services.app.control.ping(timeout=5.0)
            names = {name.split("@")[0] for reply in replies for name in reply}
            if names >= expected or time.monotonic() > started + timeout_s:
                print(f"control ping: {sorted(names)} answered the {asked}. ask")
                return names
        raise AssertionError("unreachable")

    def stop(self) -> None:
        self.system.stop()


class HostsRun(ChaosRun):
    """A chaos run whose batch comes from the producer host."""

    def __init__(self, name: str, fleet: Fleet, chaos_report: ChaosReport) -> None:
        super().__init__(name, fleet.system, fleet.admin, chaos_report, jobs=JOBS, batch="hosts")
        self.fleet = fleet

    def submit(self) -> None:
        self.fleet.submit(self.rows(), self.batch)


@pytest.fixture
def fleet(network: Network, tmp_path: Path) -> Iterator[Fleet]:
    built = Fleet(network, tmp_path)
    try:
        built.start_fleet()
        yield built
    finally:
        built.stop()


def test_master_host_cut_off_fails_over(fleet: Fleet, chaos_report: ChaosReport) -> None:
    """The master's link goes down mid-batch; the sentinels promote the replica and the
    fleet finishes the batch on it; healed, the old master comes back as its replica."""
    run = HostsRun(f"hosts: Redis master cut {MASTER_CUT_S:.0f} s", fleet, chaos_report)
    run.slow_tasks(3.0)
    run.submit()
    run.wait_progress(0.1)
    old = fleet.ha.master()
    fleet.network.cut(old)
    try:
        new = fleet.ha.wait_new_master(old)
        time.sleep(MASTER_CUT_S)
    finally:
        fleet.network.heal(old)
    fleet.ha.wait(fleet.ha.agree, "the old master to rejoin as a replica", 60)
    run.fault_ended()
    # Hung mid-command on the cut master, a worker's create can lose its answer.
    check(run.finish(settle_s=5), JOBS, unknown_allowed=True)
    assert fleet.ha.master() is new, "the batch was finished on the promoted replica"
    # Both consume after the failover (celery #6348, #10096).
    assert fleet.answering_workers({"w1", "w2"}) == {"w1", "w2"}


@FULL_ONLY
def test_worker_host_partitioned_from_redis(fleet: Fleet, chaos_report: ChaosReport) -> None:
    """w1 loses every Redis host (master, replica, sentinels) but keeps the API."""
    run = HostsRun(f"hosts: w1 cut from Redis {PARTITION_S:.0f} s", fleet, chaos_report)
    run.slow_tasks(PARTITION_S * 0.6)
    run.submit()
    time.sleep(4)  # first polls come 5-5.5 s after the creates
    w1 = fleet.workers[0]
    with run.calls_in_the_air():  # w1 holds polls mid-call
        for host in fleet.redis_hosts():
            fleet.network.cut(w1, host)
    try:
        time.sleep(PARTITION_S)
    finally:
        for host in fleet.redis_hosts():
            fleet.network.heal(w1, host)
    run.fault_ended()
    # What w1 sent while cut off reached the API: it must be recorded or reported.
    check(run.finish(settle_s=5), JOBS, unknown_allowed=True)
    assert_redriven(fleet.system)


@FULL_ONLY
def test_worker_host_killed_and_a_new_one_joins(fleet: Fleet, chaos_report: ChaosReport) -> None:
    """Every process on w1 SIGKILLed mid-batch; a new host w3 joins the fleet."""
    run = HostsRun("hosts: w1 killed, w3 joins", fleet, chaos_report)
    run.slow_tasks(5.0)
    run.submit()
    run.wait_progress(0.1)
    with run.calls_in_the_air():  # w1 holds polls mid-call
        kill_host(fleet.workers[0])
    fleet.start_worker(fleet.network.add_host("w3"))
    run.fault_ended()
    # Killed between a claim and its send, a create may never have left.
    check(run.finish(), JOBS, unknown_allowed=True, unsent_unknown_allowed=True)
    assert_redriven(fleet.system)
    assert fleet.answering_workers({"w2", "w3"}) == {"w2", "w3"}


def test_latency_and_loss_to_the_api(
    network: Network, tmp_path: Path, chaos_report: ChaosReport
) -> None:
    """100 ms +- 50 ms and 1 % loss on the API host's link (everything it sends to the
    workers; its answers to the test process go through its loopback, unshaped)."""
    reason = netns.netem_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no latency or loss on this kernel: {reason}")
    if not FULL:
        pytest.skip("a long fault over 200 jobs: runs under CHAOS_FULL=1 (make chaos)")
    fleet = Fleet(network, tmp_path)
    try:
        fleet.start_fleet()
        shaped_run(fleet, chaos_report)
    finally:
        fleet.stop()


def shaped_run(fleet: Fleet, chaos_report: ChaosReport) -> None:
    run = HostsRun("hosts: API 100+-50 ms, 1 % loss", fleet, chaos_report)
    fleet.network.shape(fleet.api, delay_ms=100, jitter_ms=50, loss_pct=1)
    try:
        run.submit()
        verdict = run.finish()
    finally:
        fleet.network.unshape(fleet.api)
    check(verdict, JOBS, unknown_allowed=True)
