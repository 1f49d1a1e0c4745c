"""Operations: safe structured logs, graceful shutdown (on Redis and RabbitMQ brokers).

The ``broker`` fixture runs a test on each broker; test_pipeline.py's small batch,
faulty API and kill -9 tests take it too.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import psutil
import pytest
import redis

import clonequeue
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System, make_rows

pytestmark = pytest.mark.e2e

KNOWN_TOKEN = "tok-VERY-SECRET-7c1f9a2b"


def all_redis_values(client: redis.Redis) -> str:
    """Every key and value in the database, as one searchable text."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            parts += [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            parts += [
                json.dumps({k.decode(): v.decode() for k, v in fields.items()}).encode()
                for _, fields in client.xrange(key)
            ]
        parts.append(key)
    return b"\n".join(parts).decode("utf-8", "replace")


def test_logs_are_json_with_ids_and_the_token_is_nowhere(
    make_system: type[System], simulator: SimulatorAdmin, redis_url: str
) -> None:
    simulator.set_balance(1_000_000, token=KNOWN_TOKEN)
    # an API that quotes the key in a failed task's error: it must reach no record either
    echo = f"internal: key {KNOWN_TOKEN} over quota"
    simulator.configure(error_5xx_rate=0.2, failure_rate=0.2, failure_msg=echo, seed=5)
    system = make_system(api_token=KNOWN_TOKEN, log_level="DEBUG")
    worker = system.start_worker("--log-format", "json")
    batch = system.submit(make_rows(20, audios=1))
    system.wait(batch, 90)
    system.stop()
    text = worker.log_path.read_text()
    assert KNOWN_TOKEN not in text
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    assert len(records) > 50
    # what the steps say of each step that changed: every line with the ids
    created = [r for r in records if r["msg"] in ("clone created", "audio created")]
    finished = [r for r in records if r["msg"] in ("clone completed", "audio completed")]
    assert len([r for r in created if r["msg"] == "clone created"]) == 20
    assert finished
    for record in created + finished:
        assert record.get("job"), record
        assert record.get("batch") == batch, record
        assert record.get("remote_id"), record
    assert KNOWN_TOKEN not in all_redis_values(redis.Redis.from_url(redis_url))
    errors = [json.dumps(r["error"]) for r in clonequeue.results(batch, settings=system.settings)]
    assert "internal: key [REDACTED] over quota" in " ".join(errors)  # the echo was met
    assert simulator.summary()["clones_total"] == 20


def test_sigterm_finishes_in_flight_work_and_loses_nothing(
    make_system: type[System], broker: dict[str, str], simulator: SimulatorAdmin
) -> None:
    system = make_system(**broker)
    simulator.configure(clone_processing_s=2, audio_processing_s=2)
    first = system.start_worker(name="first")
    batch = system.submit(make_rows(60, audios=1))
    system.wait(batch, 60, until="producing")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    assert "warm shutdown" in first.log_path.read_text().lower()
    system.start_worker(name="second")
    info = system.wait(batch, 90)
    assert info.counts["completed"] == 60
    report = system.audit(batch)
    assert report.ok, report.problems()


def beat_children(worker: ManagedProcess) -> list[psutil.Process]:
    """The child processes of a `worker --beat` (its embedded beat), once there are some."""
    assert worker.pid is not None
    leader = psutil.Process(worker.pid)
    deadline = time.monotonic() + 20
    while not (children := leader.children()):
        assert time.monotonic() < deadline, "no beat child appeared"
        time.sleep(0.1)
    return children


def test_kill_9_of_a_worker_takes_its_embedded_beat_with_it(
    make_system: type[System],
) -> None:
    """`worker --beat` runs beat in a child process: a SIGKILL of the worker alone (the
    OOM killer, `kill -9 PID`) left it running under init, scheduling for good."""
    system = make_system()
    worker = system.start_worker()  # --beat
    children = beat_children(worker)
    worker.send_signal(signal.SIGKILL)  # the leader only, not its process group
    worker.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_a_dead_embedded_beat_is_started_again(make_system: type[System]) -> None:
    """QA: a beat child that died left its worker running with no watchdog, in silence
    (18 steps overdue for 5 minutes). The worker starts it again and says so."""
    system = make_system()
    worker = system.start_worker()  # --beat
    (first,) = beat_children(worker)
    leader = psutil.Process(first.ppid())
    first.kill()
    first.wait(10)
    deadline = time.monotonic() + 20
    while not (again := [c for c in leader.children() if c.pid != first.pid]):
        assert time.monotonic() < deadline, "the beat was not started again"
        time.sleep(0.2)
    assert again[0].is_running()
    assert "the embedded beat died (exit code -9): starting it again" in worker.log_path.read_text()
    system.stop()
    _, alive = psutil.wait_procs(again, timeout=10)
    assert not alive  # and it stops with its worker


def test_status_tells_when_no_worker_or_no_watchdog_runs(make_system: type[System]) -> None:
    """QA: a batch pending with no worker at all looked like a slow fleet. Real workers
    mark themselves in Redis; a clean stop says so at once; a worker without --beat has
    no watchdog, and that is said too."""
    system = make_system()
    services = system.services
    assert "no worker has run in this namespace" in (services.workers_note() or "")

    def note_becomes(check: Callable[[str | None], bool], what: str) -> str | None:
        deadline = time.monotonic() + 40
        while not check(note := services.workers_note()):
            assert time.monotonic() < deadline, f"not {what}: {note}"
            time.sleep(0.2)
        return note

    plain = system.start_worker(name="plain", beat=False)
    note = note_becomes(lambda n: n is not None and n.startswith("no watchdog pass"), "no beat")
    assert "`clonequeue worker --beat` on one worker, or `clonequeue beat`" in (note or "")
    with_beat = system.start_worker(name="with-beat")
    note_becomes(lambda n: n is None, "all well")
    running = services.presence.seen(now=services.now()).running(services.now())
    assert len(running) == 2, running
    assert all("@" in w.name for w in running), running

    for worker in (plain, with_beat):
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    # at once, not 20 s later: each marked itself stopped on the way out
    note = services.workers_note()
    assert note is not None
    assert note.startswith("no worker running: the last one seen ("), note


def test_a_worker_cut_off_from_redis_says_so_in_its_log(
    make_system: type[System], redis_server: object
) -> None:
    """QA: a worker cut from Redis for 60 s wrote nothing at all to its log; its tasks
    waited inside their retries in silence. It says so, and when Redis is back."""
    system = make_system()
    worker = system.start_worker(name="cut")
    deadline = time.monotonic() + 30
    while system.services.workers_note() is not None:  # marked itself once at least
        assert time.monotonic() < deadline, system.services.workers_note()
        time.sleep(0.2)
    redis_server.stop()  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 30
        while "cannot reach Redis (" not in worker.log_path.read_text():
            assert time.monotonic() < deadline, worker.log_tail(20)
            time.sleep(0.2)
    finally:
        redis_server.restart()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while "Redis answers this worker again (unreachable for" not in worker.log_path.read_text():
        assert time.monotonic() < deadline, worker.log_tail(20)
        time.sleep(0.2)
    said = worker.log_path.read_text()
    assert said.count("cannot reach Redis (") == 1  # once an outage, not each 5 s
    assert "check this host's route to Redis" in said
