"""The pipeline end to end: real Redis, real worker processes, the simulator over HTTP."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clonequeue.local import free_port
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System, make_rows

pytestmark = pytest.mark.e2e


def test_a_small_batch_completes_with_results_in_redis(
    make_system: type[System], broker: dict[str, str], simulator: SimulatorAdmin
) -> None:
    system = make_system(**broker)
    rows = make_rows(5, audios=2, subtitles=True)
    rows.append({"custom_id": "no-audios", "clone": {"fileUrl": "https://v.example.com/x.wav"}})
    system.start_worker()
    batch = system.submit(rows)
    info = system.wait(batch, 60)
    assert info.counts["completed"] == 6
    report = system.audit(batch)
    assert report.ok, report.problems()
    assert report.creates == 6 + 10
    docs = {d["id"]: d for d in system.docs(batch)}
    audio = docs["job-00000"]["audios"][1]
    assert audio["audio_url"].endswith(".wav")  # served by the simulator itself
    assert audio["subtitle_file"].endswith(".srt")
    assert docs["no-audios"]["clone"]["model_id"].startswith("model_")
    events = system.services.redis.xrange(system.services.jobs.keys.events)
    assert sorted(e[1]["job"] for e in events) == sorted(docs)
    # our records are the store: Celery writes no result of any task
    assert not list(system.services.redis.scan_iter(match="celery-task-meta-*"))


def test_faulty_api_every_job_ends_right_and_nothing_is_paid_twice(
    make_system: type[System], broker: dict[str, str], simulator: SimulatorAdmin
) -> None:
    """200 jobs with failures, 5xx, 429, slow answers and lost answers all switched on."""
    system = make_system(http_read_timeout_s="1.5", api_rate_limit="150/second", **broker)
    simulator.configure(
        failure_rate=0.1,
        error_5xx_rate=0.1,
        rate_limit_per_s=60,
        slow_rate=0.02,
        slow_s=2.0,
        lost_response_rate=0.02,
        seed=11,
    )
    system.start_worker()
    system.start_worker()
    batch = system.submit(make_rows(200, audios=1))
    info = system.wait(batch, 180)
    report = system.audit(batch)
    assert report.ok, report.problems()
    assert report.jobs == 200
    summary = simulator.summary()
    assert summary["http_429"] > 0
    assert summary["http_5xx"] > 0
    assert summary["lost_responses"] > 0
    # every unknown job is one whose create went out and got no answer
    assert info.counts["unknown"] >= 1
    assert report.unknown_creates >= summary["lost_responses"] - 1
    assert info.counts["failed"] >= 10  # ~10% of clones and audios fail remotely
    for doc in system.docs(batch):
        if doc["state"] == "failed":
            errors = [doc["clone"].get("error")] + [a.get("error") for a in doc.get("audios", [])]
            assert any(e and e.get("msg") for e in errors), doc
        if doc["state"] == "unknown":
            kinds = {
                (s.get("error") or {}).get("kind")
                for s in [doc["clone"], *doc.get("audios", [])]
                if s["state"] == "unknown"
            }
            assert kinds <= {"no_answer", "lost_worker"}, doc


@pytest.mark.timing
def test_polling_cadence_stays_within_the_configured_bounds(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    system = make_system(poll_interval_min_s="1", poll_interval_max_s="2")
    simulator.configure(clone_queue_s=2, clone_processing_s=10, jitter_ratio=0)
    system.start_worker()
    batch = system.submit(make_rows(10, audios=0))
    system.wait(batch, 60)
    intervals = []
    for task_id, times in simulator.ledger()["polls"].items():
        assert len(times) >= 5, task_id
        intervals += [b - a for a, b in itertools.pairwise(times)]
    mean = statistics.mean(intervals)
    assert 1.0 <= mean <= 2.0 * 1.2, intervals
    assert min(intervals) >= 1.0 * 0.8
    assert max(intervals) <= 2.0 * 1.2 + 0.5


def test_kill_9_of_a_worker_loses_nothing(
    make_system: type[System], broker: dict[str, str], simulator: SimulatorAdmin
) -> None:
    system = make_system(**broker)
    simulator.configure(clone_processing_s=2, audio_processing_s=2)
    victim = system.start_worker(name="victim")
    batch = system.submit(make_rows(120, audios=1))
    system.wait(batch, 60, until="producing")
    time.sleep(1.0)
    victim.kill()
    system.start_worker(name="rescuer")
    info = system.wait(batch, 120)
    report = system.audit(batch)
    assert report.ok, report.problems()
    assert info.counts.get("completed", 0) + info.counts.get("unknown", 0) == 120


def test_redis_restart_mid_batch_is_recovered_by_the_watchdog(
    system: System, simulator: SimulatorAdmin, redis_server: object
) -> None:
    simulator.configure(clone_processing_s=2, audio_processing_s=2)
    system.start_worker()
    batch = system.submit(make_rows(80, audios=1))
    system.wait(batch, 60, until="producing")
    redis_server.restart()  # type: ignore[attr-defined]
    info = system.wait(batch, 150)
    report = system.audit(batch)
    assert report.ok, report.problems()
    assert info.counts.get("completed", 0) + info.counts.get("unknown", 0) == 80


def test_balance_runs_out_then_is_topped_up(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    system = make_system()
    simulator.set_balance(0.05)  # enough for a few jobs only
    system.start_worker()
    batch = system.submit(make_rows(30, audios=1))
    deadline = time.monotonic() + 30
    while system.services.fleet.pause_reason() is None:
        assert time.monotonic() < deadline, "the fleet never paused"
        time.sleep(0.2)
    assert system.services.fleet.pause_reason()["kind"] == "balance"  # type: ignore[index]
    simulator.set_balance(1_000_000)
    info = system.wait(batch, 90)  # the probe lifts the pause on its own
    assert info.counts["completed"] == 30
    report = system.audit(batch)
    assert report.ok, report.problems()
    assert system.services.fleet.pause_reason() is None


def test_expired_model_fails_audios_clearly_and_retry_clones_again(
    system: System, simulator: SimulatorAdmin
) -> None:
    simulator.configure(clone_processing_s=3)
    system.start_worker()
    batch = system.submit(make_rows(2, audios=1))
    deadline = time.monotonic() + 30
    while system.info(batch).counts.get("cloning", 0) < 2:  # both clones sent
        assert time.monotonic() < deadline
        time.sleep(0.1)
    system.services.fleet.pause("hold the audios", now=time.time())
    while system.info(batch).counts.get("producing", 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    simulator.advance_clock(3 * 24 * 3600 + 60)
    system.services.dispatch(system.services.fleet.resume(now=time.time()))
    info = system.wait(batch, 60)
    assert info.counts["failed"] == 2
    error = system.docs(batch)[0]["audios"][0]["error"]
    assert error["kind"] == "model_expired"
    assert "expire" in error["msg"].lower()
    assert error["code"] == 40010
    retried = system.services.batches.retry(batch, "failed", now=time.time())
    jobs, steps = retried.jobs, retried.dispatches
    system.services.dispatch(steps)
    assert jobs == 2
    assert all(s.is_clone for s in steps)
    info = system.wait(batch, 60)
    assert info.counts["completed"] == 2


def test_cli_submit_status_results(system: System, simulator: SimulatorAdmin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    jobs_file = tmp_path / "jobs.jsonl"
    rows = make_rows(3, audios=1)
    jobs_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    system.start_worker()
    env = system.stack.env()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clonequeue", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    submitted = cli("submit", str(jobs_file), "--batch", "cli")
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip().splitlines()[-1] == "cli"
    waited = cli("status", "cli", "--wait", "--interval", "0.5")
    assert waited.returncode == 0, waited.stderr
    results = cli("results", "cli", "--format", "jsonl")
    records = [json.loads(line) for line in results.stdout.splitlines()]
    assert [r["custom_id"] for r in records] == [r["custom_id"] for r in rows]
    assert all(
        r["status"] == "completed" and r["modelId"] and r["audios"][0]["audioUrl"] for r in records
    )
    again = cli("submit", str(jobs_file), "--batch", "cli")
    assert again.returncode == 0
    assert "already submitted 3" in again.stderr
    assert simulator.summary()["clones_total"] == 3


@pytest.mark.timing
def test_rate_limit_is_global_across_workers(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    """Two workers share one limit: below the API's own, so it never answers 429."""
    system = make_system(api_rate_limit="25/second")
    simulator.configure(rate_limit_per_s=30)
    system.start_worker()
    system.start_worker()
    batch = system.submit(make_rows(40, audios=1))
    system.wait(batch, 120)
    summary = simulator.summary()
    assert summary["http_429"] == 0
    assert system.info(batch).counts["completed"] == 40


def test_in_flight_cap_is_never_exceeded(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    system = make_system(max_in_flight="5")
    system.start_worker()
    batch = system.submit(make_rows(30, audios=1))
    keys, client = system.services.jobs.keys, system.services.redis
    most, parked_seen = 0, 0
    while not system.info(batch).is_finished:
        most = max(most, int(client.scard(keys.inflight)))
        parked_seen = max(parked_seen, int(client.zcard(keys.parked("clone"))))
        time.sleep(0.05)
    assert most == 5
    assert parked_seen > 0
    assert system.info(batch).counts["completed"] == 30


def test_an_api_restarted_without_its_tasks_ends_them_as_lost_and_mixes_up_no_job(
    tmp_path: Path, redis_url: str
) -> None:
    """A provider (here the simulator) restarted and forgot its tasks: polls of the old
    ones are answered 404 "not found". They fail as ``task_lost`` once every poll was
    refused for CLONEQUEUE_TASK_LOST_AFTER_S (not 2 h later at the deadline), and the
    new API's tasks, created meanwhile for other jobs, give no old job their answers
    (a restarted simulator handed the same ids out again, and a clone took an audio's)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def api(name: str) -> ManagedProcess:
        argv = [sys.executable, "-m", "clonequeue", "simulator", "--port", str(port)]
        process = ManagedProcess(argv, log_path=tmp_path / f"{name}.log", name=name)
        process.start()
        process.wait_ready(line="simulator listening on", timeout_s=30)
        SimulatorAdmin(url).set_balance(1_000_000)
        return process

    system = System(tmp_path / "system", redis_url, url, task_lost_after_s="3")
    first = api("api-1")
    try:
        system.admin.configure(clone_queue_s=0.2, clone_processing_s=60, audio_processing_s=0.5)
        worker = system.start_worker()
        old = system.submit(make_rows(4, audios=1), batch="old")
        system.wait(old, 30, until="cloning")
        deadline = time.monotonic() + 30
        while system.info(old).counts.get("cloning", 0) < 4:
            assert time.monotonic() < deadline, system.info(old).counts
            time.sleep(0.1)
        first.terminate()
        second = api("api-2")
        try:
            system.admin.configure(clone_processing_s=0.5, audio_processing_s=0.5)
            new = system.submit(make_rows(4, audios=1, prefix="new"), batch="new")
            assert system.wait(new, 60).counts["completed"] == 4
            info = system.wait(old, 60)
        finally:
            second.terminate()
    finally:
        first.terminate()
        system.stop()
    assert info.counts["failed"] == 4
    for doc in system.docs(old):
        assert doc["clone"]["error"]["kind"] == "task_lost", doc["clone"]
        assert "not found" in doc["clone"]["error"]["msg"]
        assert "model_id" not in doc["clone"]
    log = worker.log_path.read_text(errors="replace")
    assert log.count("the API refused the poll") == 4  # once per lost task
