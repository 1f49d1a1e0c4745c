"""Redis Sentinel and WAIT, against real ``redis-server`` and ``redis-server --sentinel`` processes.

Each test gets its own group (a master, replicas, 3 sentinels on free ports, 1 s failure
detection); failovers are real: ``SENTINEL FAILOVER`` and a SIGKILLed master.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clonequeue.config import load_settings
from clonequeue.local.ports import free_port
from clonequeue.local.sentinel import Node, SentinelGroup
from clonequeue.store.connect import redis_client, store_limits
from clonequeue.store.jobs import UNREPLICATED, Claimed, JobStore, Skipped
from clonequeue.store.keys import Keys
from clonequeue.workers.app import create_app
from tests.cli_run import clonequeue_cli
from tests.integration.test_store import NOW, add, doc, spec

pytestmark = pytest.mark.slow


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with SentinelGroup(replicas=2, sentinels=3, directory=tmp_path / "sentinel") as started:
        yield started


class Writer(threading.Thread):
    """INCRs a counter through the store's client as fast as it can; records every error."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client, self.stop, self.done, self.errors = client, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.incr("counter")
                self.done += 1
            except redis.RedisError as exc:  # the test fails on any
                self.errors.append(repr(exc))
            time.sleep(0.002)

    def progress_after(self, seconds: float, *, within_s: float = 15.0) -> int:
        """Writes made in ``seconds`` (waiting up to ``within_s`` for the first: a loaded
        machine can take longer than a second to elect and reconnect)."""
        before = self.done
        time.sleep(seconds)
        deadline = time.monotonic() + within_s
        while self.done == before and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.done - before


def writes_ride_over(group: SentinelGroup, fault: Callable[[Node], Node], what: str) -> None:
    """Writes through the store's client go on, without one error, across ``fault``
    (given the master, it returns the new one)."""
    client = redis_client(group.url)
    writer = Writer(client)
    writer.start()
    try:
        assert writer.progress_after(0.5) > 0
        first = group.master()
        second = fault(first)
        assert second is not first
        assert writer.progress_after(1.0) > 0, f"no writes after {what}"
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.errors == [], writer.errors[:3]
    with second.client() as direct:
        assert int(direct.get("counter") or 0) > 0
    client.close()


def test_the_store_client_rides_over_a_failover(group: SentinelGroup) -> None:
    writes_ride_over(group, lambda _master: group.failover(), "a failover")


def test_the_store_client_rides_over_a_killed_master(group: SentinelGroup) -> None:
    """Once skipped as flaky (writes had not resumed within 15 s of the kill in a loaded
    CI run): a connection dropped inside a command's retries reconnected to the dead
    master's address, never asking the sentinels, until the retries ran out."""

    def kill(master: Node) -> Node:
        master.kill()
        return group.wait_new_master(master)

    writes_ride_over(group, kill, "the master was killed")


def test_the_store_client_leaves_a_hung_master_for_the_new_one(group: SentinelGroup) -> None:
    """QA: a master that hangs (SIGSTOP: a paused VM, a GC stall) still completes TCP
    handshakes; every retry reconnected to it and waited out its read timeout, and writes
    stopped until it woke, minutes after the sentinels had promoted another."""
    hung: list[Node] = []

    def hang(master: Node) -> Node:
        assert master.process is not None
        os.kill(master.process.pid, signal.SIGSTOP)
        hung.append(master)
        return group.wait_new_master(master)

    try:
        # within the 10 s read timeout of a Sentinel-managed master, plus the failover
        writes_ride_over(group, hang, "the master hung")
    finally:
        for master in hung:
            assert master.process is not None
            os.kill(master.process.pid, signal.SIGCONT)


def test_a_demoted_master_answers_readonly_and_our_clients_move_on(
    group: SentinelGroup,
) -> None:
    settings = load_settings(env_file=None, redis_url=group.url, namespace="s")
    store = redis_client(group.url)
    store.set("before", "1")
    old = group.master()
    app = create_app(settings)
    with app.connection_for_write() as connection:
        connection.default_channel.client.lpush("s.probe", "before")
        group.failover()
        with old.client() as direct:  # what a worker holding a plain connection sees
            deadline = time.monotonic() + 15  # sentinels demote the old master shortly after
            while direct.info("replication")["role"] != "slave":
                assert time.monotonic() < deadline, "the old master was never demoted"
                time.sleep(0.05)
            direct.get("before")  # reads still work on a replica
            with pytest.raises(redis.exceptions.ReadOnlyError):
                direct.set("after", "1")
        store.set("after", "1")  # READONLY drops the connection; the retry finds the master
        # kombu's Sentinel channel, as Celery's producer and consumer use it
        connection.ensure_connection(max_retries=3)
        producer = connection.Producer()
        publish = connection.ensure(producer, producer.publish, max_retries=5)
        publish({"hello": 1}, routing_key="s.probe", exchange="", serializer="json")
    new = group.master()
    with new.client() as direct:
        assert direct.get("after") == "1"
        assert direct.llen("s.probe") >= 1
    store.close()


def test_a_script_that_meets_a_demoted_master_runs_again_on_the_new_one(
    group: SentinelGroup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A demoted master answers a script with READONLY inside a script error, and the
    WAIT after a script that wrote nothing with "WAIT cannot be used with replica":
    neither is the READONLY reply redis-py turns into a reconnect. A claim's undo failed
    so during a failover and its step, never sent, ended `unknown` (test_failover). Our
    scripts run again on the master.

    The race is made certain here: for half a second at a time the pool is told a
    replica is the master (as sentinels still name a master that is being demoted)."""
    client = redis_client(group.url)
    pool = client.connection_pool
    settings = load_settings(env_file=None, redis_min_replicas=1, redis_wait_timeout_ms=500)
    jobs = JobStore(client, Keys("ro"), store_limits(settings))
    add(jobs, spec("a"))
    master = group.master()
    replica = next(node for node in group.data if node is not master)
    asked = getattr(pool, "proxy", pool)  # what a connection asks (redis-py >= 5.0.2)
    real = asked.get_master_address
    until = [0.0]

    def stale_master() -> Any:
        return (replica.host, replica.port) if time.monotonic() < until[0] else real()

    monkeypatch.setattr(asked, "get_master_address", stale_master)

    def on_a_replica_first(call: Callable[[], Any]) -> Any:
        caplog.clear()
        pool.disconnect()
        until[0] = time.monotonic() + 0.5
        result = call()
        assert "met a master that refuses writes" in caplog.text  # it met the replica first
        return result

    # the claim writes: READONLY inside the script
    claim = on_a_replica_first(lambda: jobs.claim_create("a", "c", 0, now=NOW, lease_s=60))
    assert isinstance(claim, Claimed)
    # the same claim again writes nothing (stale): the WAIT after it is refused
    again = on_a_replica_first(lambda: jobs.claim_create("a", "c", 0, now=NOW, lease_s=60))
    assert again == Skipped("stale")
    with master.client() as direct:
        assert json.loads(direct.get(jobs.keys.job("a")) or "{}")["clone"]["state"] == (
            "submitting"
        )
    client.close()


def test_sentinel_settings_reach_kombu_and_redis_py(group: SentinelGroup) -> None:
    url = ";".join(f"sentinel://:pw@{n.host}:{n.port}/2" for n in group.watchers)
    settings = load_settings(
        env_file=None, redis_url=url, sentinel_master="mymaster", sentinel_password="spw"
    )
    app = create_app(settings)
    options = app.conf.broker_transport_options
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"]["password"] == "spw"
    assert app.conf.result_backend_transport_options["master_name"] == "mymaster"
    assert app.conf.broker_channel_error_retry is True
    pool = redis_client(url, sentinel_password="spw").connection_pool
    assert pool.connection_kwargs["password"] == "pw"
    assert pool.connection_kwargs["db"] == 2


def test_a_sentinel_setup_that_gives_no_master_is_said_in_one_line_with_what_to_check(
    group: SentinelGroup, tmp_path: Path
) -> None:
    """redis-py's MasterNotFoundError holds a client repr per sentinel (~1 KB each) and the
    CLI used to print it whole, ending with "start it (`clonequeue redis`)"."""
    refused = f"sentinel://127.0.0.1:{free_port()}"
    for master, url, reason in (
        ("nosuch", group.url, "the sentinels know no master named 'nosuch' that is up"),
        ("mymaster", refused, f"{refused[11:]}: connection refused"),
    ):
        settings = {"CLONEQUEUE_REDIS_URL": url, "CLONEQUEUE_SENTINEL_MASTER": master}
        out = clonequeue_cli("status", "b", cwd=tmp_path, settings=settings)
        assert out.returncode == 1, out.stderr
        assert len(out.stderr.splitlines()) == 1, out.stderr
        assert reason in out.stderr, out.stderr
        assert "watch a master of that name (CLONEQUEUE_SENTINEL_MASTER)" in out.stderr
        assert "clonequeue redis" not in out.stderr
        assert "<redis." not in out.stderr


# --- WAIT ---------------------------------------------------------------------------------


def wait_settings(master: Node, namespace: str, **extra: Any) -> Any:
    """A store on ``master`` that WAITs for one replica, 200 ms at a time."""
    return load_settings(
        env_file=None,
        redis_url=f"redis://{master.host}:{master.port}/0",
        namespace=namespace,
        redis_min_replicas=1,
        redis_wait_timeout_ms=200,
        **extra,
    )


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[SentinelGroup, JobStore]]:
    with SentinelGroup(replicas=1, sentinels=0, directory=tmp_path / "wait") as started:
        settings = wait_settings(started.data[0], "w", submit_max_attempts=3)
        client = redis_client(settings.redis_url)
        yield started, JobStore(client, Keys("w"), store_limits(settings))
        client.close()


def test_an_unreplicated_claim_sends_no_create(
    replicated: tuple[SentinelGroup, JobStore],
) -> None:
    group, jobs = replicated
    add(jobs, spec("a"), spec("b"))
    claim = jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    assert isinstance(claim, Claimed)
    replica = group.data[1]
    assert replica.process is not None
    assert replica.process.pid is not None
    os.kill(replica.process.pid, signal.SIGSTOP)  # replication stalls; the master goes on
    try:
        started = time.monotonic()
        refused = jobs.claim_create("b", "c", 0, now=NOW, lease_s=60)
        waited = time.monotonic() - started
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    assert refused == Skipped(UNREPLICATED)
    assert 0.2 <= waited < 2.0
    step = doc(jobs, "b")["clone"]
    assert step["state"] == "pending"  # undone: the watchdog sends it again later
    assert step["error"]["kind"] == UNREPLICATED
    assert "fewer than 1 Redis replicas" in step["error"]["msg"]
    assert jobs.client.sismember(jobs.keys.inflight, "c|b") == 0
    again = jobs.claim_create("b", "c", step["gen"], now=NOW + 1, lease_s=60)
    assert isinstance(again, Claimed)  # the replica is back: the claim holds


def test_a_stored_task_id_waits_for_the_replica(
    replicated: tuple[SentinelGroup, JobStore], caplog: pytest.LogCaptureFixture
) -> None:
    group, jobs = replicated
    add(jobs, spec("a"))
    assert isinstance(jobs.claim_create("a", "c", 0, now=NOW, lease_s=60), Claimed)
    replica = group.data[1]
    assert replica.process is not None
    assert replica.process.pid is not None
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        created = jobs.record_created("a", "c", 0, "remote-a", now=NOW, next_due=NOW + 5)
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    assert created.gen == 1  # paid: we go on and poll it
    assert "remote-a" in caplog.text
    assert "master only" in caplog.text
    with replica.client() as direct:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            raw = direct.get(jobs.keys.job("a"))
            if raw and json.loads(raw)["clone"].get("remote_id") == "remote-a":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the replica never got the task id")


def test_a_replica_that_just_left_still_counts_until_the_window_passes(tmp_path: Path) -> None:
    """WAIT 1 with two replicas can be acknowledged by the one a failover does not promote
    (replicas.py): every replica seen within the window must acknowledge a claim."""
    with SentinelGroup(replicas=2, sentinels=0, directory=tmp_path / "window") as group:
        settings = wait_settings(
            group.data[0], "win", redis_replica_window_s=3, submit_max_attempts=5
        )
        client = redis_client(settings.redis_url)
        try:
            jobs = JobStore(client, Keys("win"), store_limits(settings))
            add(jobs, spec("a"), spec("b"), spec("c"))
            assert jobs.wanted_replicas() == 2  # the floor is 1; the master lists 2
            assert isinstance(jobs.claim_create("a", "c", 0, now=NOW, lease_s=60), Claimed)
            group.data[2].kill()  # one replica gone: it might have been the one promoted
            deadline = time.monotonic() + 5
            while int(client.info("replication")["connected_slaves"]) != 1:
                assert time.monotonic() < deadline, "the master never noticed the replica left"
                time.sleep(0.05)
            refused = jobs.claim_create("b", "c", 0, now=NOW, lease_s=60)
            assert refused == Skipped(UNREPLICATED)
            assert "fewer than 2 Redis replicas" in doc(jobs, "b")["clone"]["error"]["msg"]
            time.sleep(3.5)  # the window passes: the one replica left is all there is
            assert jobs.wanted_replicas() == 1
            assert isinstance(jobs.claim_create("c", "c", 0, now=NOW, lease_s=60), Claimed)
        finally:
            client.close()
