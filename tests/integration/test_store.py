"""The job state machine in Redis (Lua), against the suite's real Redis server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from clonequeue.dispatch.due import DueIndex
from clonequeue.jobspec import JobSpec
from clonequeue.store.batches import BatchStore
from clonequeue.store.fleet import Fleet
from clonequeue.store.jobs import Claimed, Dispatch, JobStore, Polled, Skipped, StoreLimits
from clonequeue.store.keys import Keys
from clonequeue.store.records import new_job_doc, result_record
from clonequeue.workers.schedule import poll_delay

NOW = 1_800_000_000.0
URL = "https://ex.com/voice.mp3"


def make_store(url: str, **limits: Any) -> JobStore:
    defaults: dict[str, Any] = {
        "max_in_flight": 100,
        "budget_chars": 0,
        "retention_s": 3600,
        "grace_s": 30.0,
        "job_deadline_s": 600.0,
        "submit_max_attempts": 3,
    }
    client = redis.Redis.from_url(url, decode_responses=True)
    _clients.append(client)
    return JobStore(client, Keys("t"), StoreLimits(**{**defaults, **limits}))


_clients: list[redis.Redis] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


@pytest.fixture
def jobs(redis_client: redis.Redis, redis_url: str) -> JobStore:
    return make_store(redis_url)


def spec(job_id: str, audios: int = 1, text: str = "Hello there") -> JobSpec:
    return JobSpec.model_validate(
        {
            "custom_id": job_id,
            "clone": {"fileUrl": URL},
            "audios": [{"contentText": f"{text} {i}"} for i in range(audios)],
        }
    )


def add(jobs: JobStore, *specs: JobSpec, batch: str = "b1") -> BatchStore:
    batches = BatchStore(jobs)
    batches.create_jobs(
        batch, [(s.custom_id, json.dumps(new_job_doc(s, batch, NOW))) for s in specs], now=NOW
    )
    return batches


def doc(jobs: JobStore, job_id: str) -> dict[str, Any]:
    raw = jobs.client.get(jobs.keys.job(job_id))
    assert raw is not None
    return json.loads(raw)  # type: ignore[arg-type]


def counts(jobs: JobStore, batch: str = "b1") -> dict[str, int]:
    raw = jobs.client.hgetall(jobs.keys.batch(batch))
    return {
        k: int(float(v))
        for k, v in raw.items()  # type: ignore[union-attr]
        if k not in ("created_at", "finished_at", "cancelled_at") and int(float(v))
    }


def run_clone(jobs: JobStore, job_id: str, *, now: float = NOW) -> Polled:
    claim = jobs.claim_create(job_id, "c", 0, now=now, lease_s=60)
    assert isinstance(claim, Claimed)
    gen = jobs.record_created(job_id, "c", 0, f"remote-{job_id}", now=now, next_due=now + 5).gen
    assert gen == 1
    return jobs.record_poll(
        job_id,
        "c",
        1,
        "completed",
        {"model_id": "m1", "audio_url": "https://cdn/p.mp3"},
        now=now + 5,
        next_due=now + 15,
    )


def test_create_records_jobs_and_reports_existing_ones(jobs: JobStore) -> None:
    batches = add(jobs, spec("a"), spec("b"))
    assert counts(jobs) == {"total": 2, "pending": 2}
    again = batches.create_jobs(
        "b2",
        [
            ("a", json.dumps(new_job_doc(spec("a"), "b2", NOW))),
            ("b", json.dumps(new_job_doc(spec("b", text="other"), "b2", NOW))),
            ("c", json.dumps(new_job_doc(spec("c"), "b2", NOW))),
        ],
        now=NOW,
    )
    assert again.created == ["c"]
    assert sorted(again.existing) == [("a", "b1", True), ("b", "b1", False)]
    assert doc(jobs, "a")["batch"] == "b1"
    assert jobs.client.zrange(jobs.keys.due, 0, -1, withscores=True) == [
        ("c|a", NOW),
        ("c|b", NOW),
        ("c|c", NOW),
    ]  # the first creates are due at once, and re-driven if their message is lost


def test_only_one_claim_wins(jobs: JobStore) -> None:
    add(jobs, spec("a"))
    first = jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    second = jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    assert isinstance(first, Claimed)
    assert first.request == {"fileUrl": URL}
    assert second == Skipped("stale")
    assert counts(jobs) == {"total": 1, "submitting": 1}


def test_a_claim_run_again_after_its_reply_was_lost_is_still_its_own(jobs: JobStore) -> None:
    """A failover can lose a claim's reply after its write reached the replica that is
    promoted: the script runs again (scripts.py) and must get its claim back. Answered
    'stale', the worker dropped a create it never sent, and the step ended `unknown`
    (QA pass: 10 steps at once after SENTINEL FAILOVER, none in the API's ledger)."""
    add(jobs, spec("a"))
    claim = ("a", "c", 0, 60, 0, 0, 3600)
    first = jobs._run("claim_create", NOW, *claim, "token-1")
    again = jobs._run("claim_create", NOW, *claim, "token-1")
    other = jobs._run("claim_create", NOW, *claim, "token-2")
    assert first[0] == "ok"
    assert again == first  # the same claim: attempts not counted twice
    assert other == ["stale"]  # another worker's claim stays its own
    assert counts(jobs) == {"total": 1, "submitting": 1}
    assert doc(jobs, "a")["clone"]["attempts"] == 1


def test_full_lifecycle_with_fan_out(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=2))
    polled = run_clone(jobs, "a")
    assert polled.result == "done"
    assert sorted((d.item, d.gen) for d in polled.dispatches) == [("0", 1), ("1", 1)]
    assert counts(jobs) == {"total": 1, "producing": 1}
    for index in ("0", "1"):
        claim = jobs.claim_create("a", index, 1, now=NOW + 6, lease_s=60)
        assert isinstance(claim, Claimed)
        assert claim.model_id == "m1"
        gen = jobs.record_created("a", index, 1, f"r{index}", now=NOW + 6, next_due=NOW + 11).gen
        assert gen == 2
        done = jobs.record_poll(
            "a",
            index,
            2,
            "completed",
            {"audio_url": f"https://cdn/{index}.mp3", "subtitle_file": "s"},
            now=NOW + 11,
            next_due=NOW + 21,
        )
        assert done.result == "done"
    assert counts(jobs) == {"total": 1, "completed": 1}
    record = result_record(doc(jobs, "a"))
    assert record["status"] == "completed"
    assert record["modelId"] == "m1"
    assert [a["audioUrl"] for a in record["audios"]] == ["https://cdn/0.mp3", "https://cdn/1.mp3"]
    events = jobs.client.xrange(jobs.keys.events)
    assert [e[1]["state"] for e in events] == ["completed"]
    assert 0 < jobs.client.ttl(jobs.keys.job("a")) <= 3600
    assert jobs.client.scard(jobs.keys.inflight) == 0
    assert jobs.client.zcard(jobs.keys.due) == 0


def test_poll_reschedules_and_drops_stale_generations(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    again = jobs.record_poll(
        "a", "c", 1, "running", {"last_status": "queued"}, now=NOW + 5, next_due=NOW + 15
    )
    assert (again.result, again.gen, again.polls) == ("again", 2, 1)
    assert (
        jobs.record_poll(
            "a", "c", 1, "completed", {"model_id": "m"}, now=NOW + 6, next_due=NOW + 16
        ).result
        == "stale"
    )
    assert jobs.client.zscore(jobs.keys.due, "c|a") == NOW + 15


def test_job_without_audios_completes_with_its_clone(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    assert run_clone(jobs, "a").dispatches == []
    assert counts(jobs) == {"total": 1, "completed": 1}


def test_capacity_parks_and_a_freed_slot_releases(
    redis_client: redis.Redis, redis_url: str
) -> None:
    jobs = make_store(redis_url, max_in_flight=1)
    add(jobs, spec("a", audios=0), spec("b", audios=0))
    assert isinstance(jobs.claim_create("a", "c", 0, now=NOW, lease_s=60), Claimed)
    assert jobs.claim_create("b", "c", 0, now=NOW, lease_s=60) == Skipped("parked:capacity")
    assert doc(jobs, "b")["clone"]["parked"] is True
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    done = jobs.record_poll(
        "a", "c", 1, "completed", {"model_id": "m"}, now=NOW + 5, next_due=NOW + 15
    )
    assert done.dispatches == [Dispatch("b", "c", 0)]
    assert isinstance(jobs.claim_create("b", "c", 0, now=NOW + 5, lease_s=60), Claimed)


def test_pause_parks_probe_passes_and_success_lifts_it(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0), spec("b", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    pause = {"kind": "balance", "reason": "insufficient balance", "since": NOW}
    released = jobs.release_create(
        "a", "c", 0, "blocked", {"kind": "rejected", "msg": "balance"}, now=NOW, pause=pause
    )
    assert released.result == "parked"
    assert jobs.claim_create("b", "c", 0, now=NOW, lease_s=60) == Skipped("parked:paused")
    assert jobs.unpark(now=NOW) == []
    assert jobs.probe(now=NOW + 10, interval_s=60) == []  # too early
    probe = jobs.probe(now=NOW + 61, interval_s=60)
    assert len(probe) == 1
    claim = jobs.claim_create(probe[0].job_id, "c", probe[0].gen, now=NOW + 61, lease_s=60)
    assert isinstance(claim, Claimed)
    resumed = jobs.record_created(
        probe[0].job_id, "c", probe[0].gen, "r", now=NOW + 62, next_due=NOW + 67
    ).resumed
    assert resumed is True
    assert Fleet(jobs).pause_reason() is None
    assert len(jobs.unpark(now=NOW + 62)) == 1


def test_budget_pauses_creates_before_spending(redis_client: redis.Redis, redis_url: str) -> None:
    jobs = make_store(redis_url, budget_chars=100)
    add(jobs, spec("a", audios=0), spec("b", audios=0))  # ~76 default preview chars each
    assert isinstance(jobs.claim_create("a", "c", 0, now=NOW, lease_s=60), Claimed)
    assert jobs.claim_create("b", "c", 0, now=NOW, lease_s=60) == Skipped("parked:budget")
    assert Fleet(jobs).pause_reason()["kind"] == "budget"  # type: ignore[index]


def test_transient_error_retries_then_gives_up(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    gen = 0
    for attempt in (1, 2):
        jobs.claim_create("a", "c", gen, now=NOW, lease_s=60)
        released = jobs.release_create(
            "a",
            "c",
            gen,
            "retry",
            {"kind": "rejected", "msg": "503"},
            now=NOW,
            retry_at=NOW + attempt,
            queued=True,
        )
        assert released.result == "retry"
        assert released.gen == gen + 1
        gen = released.gen
    jobs.claim_create("a", "c", gen, now=NOW, lease_s=60)
    released = jobs.release_create(
        "a", "c", gen, "retry", {"kind": "rejected", "msg": "503"}, now=NOW
    )
    assert released.result == "failed"
    assert doc(jobs, "a")["clone"]["error"]["msg"].startswith("gave up after 3 attempts")
    assert doc(jobs, "a")["clone"]["error"]["kind"] == "gave_up"
    assert jobs.client.hget(jobs.keys.stats, "chars_submitted") == "0"
    # `retry --failed` gives the job a new attempt with tries of its own: the first 5xx
    # after it had failed the job again at once (QA pass)
    retried = BatchStore(jobs).retry(doc(jobs, "a")["batch"], "failed", now=NOW)
    assert retried.jobs == 1
    gen = doc(jobs, "a")["clone"]["gen"]
    claim = jobs.claim_create("a", "c", gen, now=NOW, lease_s=60)
    assert isinstance(claim, Claimed)
    assert claim.attempts == 1  # the backoff starts over too
    released = jobs.release_create(
        "a", "c", gen, "retry", {"kind": "rejected", "msg": "503"}, now=NOW, retry_at=NOW + 1
    )
    assert released.result == "retry"
    assert doc(jobs, "a")["clone"]["attempts"] == 4  # the job's whole count goes on


def test_an_undone_claim_survives_a_failover_that_lost_the_undo(
    redis_client: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A claim too few replicas acknowledged is undone; if the master then dies before
    the undo replicates, a replica promoted with the claim must not keep the step
    `submitting` (it would end `unknown`, yet no create was sent: test_failover). Here
    no replica answers any WAIT, and the first undo is lost as such a failover loses
    it (every key back to just after the claim); the worker applies it again."""
    jobs = make_store(redis_url, min_replicas=1, wait_timeout_ms=20, replica_window_s=0)
    add(jobs, spec("a", audios=0))
    scripts = jobs._scripts
    lost: list[str] = []

    def losing_the_first_undo(run: Any) -> Any:
        def wrapped(name: str, *args: Any, **kwargs: Any) -> Any:
            if name != "release_create" or lost:
                return run(name, *args, **kwargs)
            keys = jobs.client.keys(f"{jobs.keys.ns}:*")
            before = {key: jobs.client.dump(key) for key in keys}
            out = run(name, *args, **kwargs)
            lost.append(name)
            jobs.client.delete(*jobs.client.keys(f"{jobs.keys.ns}:*"))
            for key, value in before.items():
                jobs.client.restore(key, 0, value)
            return out

        return wrapped

    monkeypatch.setattr(scripts, "run", losing_the_first_undo(scripts.run))
    monkeypatch.setattr(scripts, "run_replicated", losing_the_first_undo(scripts.run_replicated))
    assert jobs.claim_create("a", "c", 0, now=NOW, lease_s=60) == Skipped("unreplicated")
    assert lost == ["release_create"]
    step = doc(jobs, "a")["clone"]
    assert step["state"] == "pending"  # not left `submitting` for the watchdog's "unknown"
    assert step["error"]["kind"] == "unreplicated"
    assert jobs.client.sismember(jobs.keys.inflight, "c|a") == 0
    assert "master only" in caplog.text  # no replica ever had it: said so


def test_unknown_outcome_is_kept_and_a_late_answer_recovers_it(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.release_create(
        "a", "c", 0, "unknown", {"kind": "no_answer", "msg": "read timeout"}, now=NOW
    )
    assert counts(jobs) == {"total": 1, "unknown": 1}
    assert jobs.client.xlen(jobs.keys.events) == 1
    gen = jobs.record_created("a", "c", 0, "late", now=NOW + 1, next_due=NOW + 6).gen
    assert gen == 1
    assert counts(jobs) == {"total": 1, "cloning": 1}


def test_deadline_fails_a_task_that_never_finishes(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    done = jobs.record_poll(
        "a", "c", 1, "running", {"last_status": "processing"}, now=NOW + 601, next_due=NOW + 611
    )
    assert done.result == "done"
    error = doc(jobs, "a")["clone"]["error"]
    assert error["kind"] == "deadline"
    assert "still processing" in error["msg"]


def test_a_task_the_api_refuses_every_poll_of_for_long_enough_is_lost(
    redis_client: redis.Redis, redis_url: str
) -> None:
    jobs = make_store(redis_url, task_lost_after_s=60.0)
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    refused = {"last_status": "refused: HTTP 404 code 40400: task not found", "refused": True}
    unanswered = {"last_status": "error: read timeout", "unanswered": True}
    gen, t = 1, NOW + 5

    def poll(result: dict[str, Any], at: float, status: str = "running") -> Polled:
        nonlocal gen
        polled = jobs.record_poll("a", "c", gen, status, result, now=at, next_due=at + 10)  # type: ignore[arg-type]
        gen = polled.gen
        return polled

    assert poll(refused, t).refused == 1  # the first refusal: the worker says so once
    assert poll(unanswered, t + 30).refused == 1  # proves nothing either way
    assert poll({"last_status": "processing"}, t + 40).refused == 0  # it is there after all
    assert poll(refused, t + 50).refused == 1  # the clock starts again
    assert poll(refused, t + 100).refused == 2  # 50 s of refusals: still polled
    done = poll(refused, t + 110)
    assert done.result == "done"
    error = doc(jobs, "a")["clone"]["error"]
    assert error["kind"] == "task_lost"
    assert "for 60 s" in error["msg"]
    assert "task not found" in error["msg"]
    assert "clonequeue retry b1 --failed" in error["msg"]
    assert "refused_since" not in doc(jobs, "a")["clone"]
    assert "refused" not in doc(jobs, "a")["clone"]
    assert counts(jobs) == {"total": 1, "failed": 1}


def test_remote_failure_is_refunded_in_the_budget(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    jobs.record_poll(
        "a",
        "c",
        1,
        "failed",
        {"error": {"kind": "remote", "msg": "too short"}},
        now=NOW + 5,
        next_due=NOW + 15,
    )
    stats = jobs.client.hgetall(jobs.keys.stats)
    assert stats["chars_submitted"] == stats["chars_refunded"] != "0"  # type: ignore[index]
    assert result_record(doc(jobs, "a"))["error"] == {"kind": "remote", "msg": "too short"}


def due(jobs: JobStore) -> DueIndex:
    return DueIndex(jobs.client, jobs.keys, jobs.limits.grace_s)


def redrive(
    jobs: JobStore, job_id: str, item: str = "c", *, now: float, busy: tuple[str, ...] = ()
) -> tuple[str, Dispatch | None]:
    """One re-drive, as a watchdog pass holding the lock makes it."""
    token = jobs.lock_watchdog(now=now, lock_ms=10_000)
    assert token is not None
    try:
        return jobs.redrive(
            job_id, item, now=now, lease_s=10, busy_queues=busy, token=token, slack_s=10
        )
    finally:
        assert jobs.unlock_watchdog(token, now=now, min_gap_ms=0)


def test_redrive_makes_old_messages_stale(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    assert [(o.job_id, o.item) for o in due(jobs).overdue(now=NOW + 100, limit=10)] == [("a", "c")]
    what, step = redrive(jobs, "a", now=NOW + 100)
    assert what == "poll"
    assert step == Dispatch("a", "c", 2, "r")
    assert (
        jobs.record_poll("a", "c", 1, "running", {}, now=NOW + 101, next_due=NOW + 111).result
        == "stale"
    )
    assert (
        jobs.record_poll("a", "c", 2, "running", {}, now=NOW + 101, next_due=NOW + 111).result
        == "again"
    )


def test_a_first_create_whose_message_was_lost_is_redriven(jobs: JobStore) -> None:
    """The producer recorded the job; its message never ran (lost with Redis, or
    acknowledged after its task raised): the due-index still has it."""
    add(jobs, spec("a", audios=0))
    assert due(jobs).overdue(now=NOW + 10, limit=10) == []  # not late yet
    what, step = redrive(jobs, "a", now=NOW + 100)
    assert (what, step) == ("create", Dispatch("a", "c", 1))
    assert isinstance(jobs.claim_create("a", "c", 0, now=NOW + 101, lease_s=60), Skipped)
    assert isinstance(jobs.claim_create("a", "c", 1, now=NOW + 101, lease_s=60), Claimed)


def test_a_backlog_postpones_a_redrive_only_while_the_message_can_be_in_its_queue(
    jobs: JobStore,
) -> None:
    add(jobs, spec("a", audios=0), spec("b", audios=0))
    busy = ("submit",)
    assert redrive(jobs, "a", now=NOW + 100, busy=("poll", "produce")) == (
        "create",
        Dispatch("a", "c", 1),
    )  # a backlog in another queue says nothing about this one
    assert redrive(jobs, "b", now=NOW + 100, busy=busy) == ("postponed", None)
    assert jobs.client.zscore(jobs.keys.due, "c|b") == NOW  # left as it was
    # a worker takes a message queued after b's (a's re-drive): b's has left the queue
    assert jobs.check_step(Dispatch("a", "c", 1), now=NOW + 101) == "ok"
    assert redrive(jobs, "b", now=NOW + 102, busy=busy) == ("create", Dispatch("b", "c", 1))


def test_two_passes_never_redrive_one_step_twice(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    first = jobs.lock_watchdog(now=NOW, lock_ms=10_000)
    assert first is not None
    assert jobs.lock_watchdog(now=NOW, lock_ms=10_000) is None  # one pass at a time
    jobs.client.delete(jobs.keys.watchdog_lock)  # its lock expired mid-pass
    second = jobs.lock_watchdog(now=NOW, lock_ms=10_000)
    assert second is not None
    assert second != first
    args: dict[str, Any] = {"now": NOW + 100, "lease_s": 10, "busy_queues": (), "slack_s": 10}
    assert jobs.redrive("a", "c", token=first, **args) == ("fenced", None)
    assert jobs.redrive("a", "c", token=second, **args)[0] == "create"
    assert jobs.redrive("a", "c", token=second, **args) == ("ontime", None)
    assert not jobs.unlock_watchdog(first, now=NOW, min_gap_ms=0)  # not its lock any more
    assert jobs.client.get(jobs.keys.watchdog_lock) == second
    assert jobs.unlock_watchdog(second, now=NOW, min_gap_ms=0)
    assert doc(jobs, "a")["clone"]["gen"] == 1


def test_check_step_answers_before_a_slot_or_a_call_is_spent(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    assert jobs.check_step(Dispatch("a", "c", 0), now=NOW) == "ok"
    assert jobs.check_step(Dispatch("a", "c", 1), now=NOW) == "stale"
    assert jobs.check_step(Dispatch("zz", "c", 0), now=NOW) == "gone"
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    assert jobs.check_step(Dispatch("a", "c", 0), now=NOW) == "stale"  # the create's copy
    assert jobs.check_step(Dispatch("a", "c", 1, "r"), now=NOW) == "ok"
    assert jobs.check_step(Dispatch("a", "c", 0, "r"), now=NOW) == "stale"


def test_our_own_pacing_is_no_attempt_and_no_error(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    released = jobs.release_create(
        "a", "c", 0, "paced", {"kind": "rejected", "msg": "no slot"}, now=NOW, retry_at=NOW + 3,
        queued=True,
    )  # fmt: skip
    assert (released.result, released.gen) == ("retry", 1)
    clone = doc(jobs, "a")["clone"]
    assert (clone["state"], clone["attempts"], clone.get("error")) == ("pending", 0, None)
    assert jobs.client.zscore(jobs.keys.due, "c|a") == NOW + 3


def test_redrive_of_a_stuck_submit_is_unknown(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    assert redrive(jobs, "a", now=NOW + 200) == ("unknown", None)
    assert doc(jobs, "a")["clone"]["error"]["kind"] == "lost_worker"
    assert jobs.client.scard(jobs.keys.inflight) == 0


def test_retry_failed_audio_keeps_completed_work(jobs: JobStore) -> None:
    batches = add(jobs, spec("a", audios=2))
    run_clone(jobs, "a")
    for index, outcome in (("0", "completed"), ("1", "failed")):
        jobs.claim_create("a", index, 1, now=NOW, lease_s=60)
        jobs.record_created("a", index, 1, f"r{index}", now=NOW, next_due=NOW + 5)
        jobs.record_poll(
            "a",
            index,
            2,
            outcome,  # type: ignore[arg-type]
            {"audio_url": "https://cdn/x.mp3", "error": {"kind": "remote", "msg": "bad"}},
            now=NOW + 5,
            next_due=NOW + 15,
        )
    assert counts(jobs) == {"total": 1, "failed": 1}
    assert batches.retry("b1", "unknown", now=NOW).jobs == 0
    retried = batches.retry("b1", "failed", now=NOW + 10)
    jobs_count, steps = retried.jobs, retried.dispatches
    assert jobs_count == 1
    assert [(s.item, s.gen) for s in steps] == [("1", 3)]
    current = doc(jobs, "a")
    assert current["audios"][0]["state"] == "completed"
    assert current["retries"] == 1
    assert counts(jobs) == {"total": 1, "producing": 1}


def test_retry_of_an_expired_model_clones_again(jobs: JobStore) -> None:
    batches = add(jobs, spec("a", audios=1))
    run_clone(jobs, "a")
    jobs.claim_create("a", "0", 1, now=NOW, lease_s=60)
    jobs.release_create(
        "a", "0", 1, "rejected", {"kind": "model_expired", "msg": "expired"}, now=NOW
    )
    steps = batches.retry("b1", "failed", now=NOW).dispatches
    assert [(s.item, s.gen) for s in steps] == [("c", 2)]
    current = doc(jobs, "a")
    assert current["clone"]["state"] == "pending"
    assert "model_id" not in current["clone"]


def test_cancel_stops_pending_and_lets_in_flight_finish_without_audios(jobs: JobStore) -> None:
    batches = add(jobs, spec("a"), spec("b"))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    assert batches.cancel("b1", now=NOW) == {"cancelled": 1, "requested": 1}
    assert jobs.claim_create("b", "c", 0, now=NOW, lease_s=60) == Skipped("stale")
    done = jobs.record_poll(
        "a", "c", 1, "completed", {"model_id": "m"}, now=NOW + 5, next_due=NOW + 15
    )
    assert done.dispatches == []
    assert counts(jobs) == {"total": 2, "cancelled": 2}
    assert jobs.client.hget(jobs.keys.batch("b1"), "finished_at") is not None


def test_a_cancelled_job_says_so_not_the_last_error_of_a_retry(jobs: JobStore) -> None:
    """A 429 left its (transient) error on the steps waiting for their retry; cancelled
    then, the results said `rejected 42900 too many requests` for good."""
    batches = add(jobs, spec("a"), spec("b"))
    run_clone(jobs, "b")  # b's clone completed: its audio is pending
    limited = {"kind": "rate_limited", "msg": "too many requests", "code": 42900}
    for job, item, gen in (("a", "c", 0), ("b", "0", 1)):
        jobs.claim_create(job, item, gen, now=NOW, lease_s=60)
        jobs.release_create(job, item, gen, "retry", limited, now=NOW, retry_at=NOW + 9)
    assert result_record(doc(jobs, "a"))["error"]["kind"] == "rate_limited"  # while it waits
    batches.cancel("b1", now=NOW)
    record_a, record_b = (result_record(doc(jobs, job)) for job in ("a", "b"))
    assert record_a["status"] == "cancelled"
    assert record_a["error"]["kind"] == "cancelled"
    assert record_b["audios"][0]["status"] == "cancelled"
    assert record_b["audios"][0]["error"]["kind"] == "cancelled"


def test_purge_removes_the_batch(jobs: JobStore) -> None:
    batches = add(jobs, spec("a"), spec("b"))
    assert batches.purge("b1") == 2
    assert batches.info("b1") is None
    assert batches.get("a") is None


def test_document_stays_small(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=1))
    run_clone(jobs, "a")
    assert int(jobs.client.memory_usage(jobs.keys.job("a"))) < 1024


def learn_store(url: str) -> JobStore:
    return make_store(
        url,
        first_poll_target=0.8,
        first_poll_min_s=5.0,
        first_poll_max_s=60.0,
        first_poll_lag_s=10.0,
    )


def poll_offsets(first_s: float, duration_s: float) -> list[float]:
    """Poll times after the create, on the worker's schedule, up to the one that finds it done."""
    times = [first_s]
    while times[-1] < duration_s:
        times.append(times[-1] + poll_delay(len(times), min_s=5, max_s=10, factor=1.5, jitter=0))
    return times


def create(jobs: JobStore, job_id: str, at: float) -> float:
    """Claim and create the clone of ``job_id`` at ``at``; the first-poll delay it gets."""
    jobs.claim_create(job_id, "c", 0, now=at, lease_s=60)
    created = jobs.record_created(job_id, "c", 0, f"r-{job_id}", now=at, next_due=at + 5)
    return created.first_poll_s or 5.0


def finish(jobs: JobStore, job_id: str, *, at: float, polls: list[float]) -> None:
    """Poll a clone created at ``at`` at ``polls`` (offsets); the last one finds it done."""
    gen = 1
    for offset in polls[:-1]:
        gen = jobs.record_poll(job_id, "c", gen, "running", {}, now=at + offset, next_due=at).gen
    jobs.record_poll(
        job_id, "c", gen, "completed", {"model_id": "m"}, now=at + polls[-1], next_due=at
    )


def learned(jobs: JobStore) -> float:
    return float(jobs.client.hget(jobs.keys.batch("b1"), "first_poll_clone") or 0)


def run_one_after_another(jobs: JobStore, durations: list[float]) -> list[float]:
    """Each job created after the one before finished, so it gets the delay learned so far."""
    delays = []
    add(jobs, *[spec(f"j{i}", audios=0) for i in range(len(durations))])
    for i, duration in enumerate(durations):
        at = NOW + 100 * i
        first = create(jobs, f"j{i}", at)
        delays.append(first)
        finish(jobs, f"j{i}", at=at, polls=poll_offsets(first, duration))
    return delays


def test_first_poll_delay_moves_to_where_the_tasks_finish(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """10 s tasks: from 5 s (two polls each) to about 10 s, where one poll finds most done."""
    jobs = learn_store(redis_url)
    delays = run_one_after_another(jobs, [10.0] * 80)
    assert delays[0] == 5.0
    assert 9.0 <= learned(jobs) <= 11.5
    hits = sum(d >= 10.0 for d in delays[-40:])
    assert 0.6 * 40 <= hits <= 0.95 * 40


def test_a_burst_of_stale_misses_does_not_drive_the_delay_away(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """A whole batch created before any finished: every first poll (5 s) came too early.

    Each answer only says its 10 s task ended between 5 and 12.5 s after the create;
    however many arrive, the delay must stay within that (it once ran to the 60 s cap,
    and the batch's polls went quiet for a minute).
    """
    jobs = learn_store(redis_url)
    add(jobs, *[spec(f"j{i}", audios=0) for i in range(300)])
    firsts = [create(jobs, f"j{i}", NOW) for i in range(300)]
    assert set(firsts) == {5.0}
    for i in range(300):
        finish(jobs, f"j{i}", at=NOW, polls=poll_offsets(5.0, 10.0))
    assert 5.0 < learned(jobs) <= 12.5


def test_spread_durations_keep_the_first_results_within_one_poll_interval(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Tasks of 20-80 s: most are done only after ~70 s, but the earliest must not wait
    for that: the delay stays near the first finishes plus the 10 s poll interval."""
    jobs = learn_store(redis_url)
    durations = [20.0 + (i * 37 % 61) for i in range(300)]  # 20..80 s, spread evenly
    delays = run_one_after_another(jobs, durations)
    assert 20.0 <= max(delays[-100:]) <= 20.0 + 10.0
    assert min(delays[-100:]) >= 10.0  # and it learned to skip the polls that always miss


def test_polls_that_waited_their_turn_are_not_learned_from(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Calls scarce: 5 s tasks' first polls ran ~40 s after their creates. Each answer
    says only "done within 40 s"; learned from, it pushed the delay up, and every later
    poll came later still. The delay stays where the on-time answers put it."""
    jobs = learn_store(redis_url)
    add(jobs, *[spec(f"j{i}", audios=0) for i in range(60)])
    for i in range(60):
        at = NOW + 100 * i
        create(jobs, f"j{i}", at)
        finish(jobs, f"j{i}", at=at, polls=[40.0])
    assert learned(jobs) == 0  # nothing learned: the batch keeps the 5 s default
    add(jobs, *[spec(f"k{i}", audios=0) for i in range(20)])
    for i in range(20):  # on-time answers still teach it
        at = NOW + 10_000 + 100 * i
        first = create(jobs, f"k{i}", at)
        assert first <= 6.0
        finish(jobs, f"k{i}", at=at, polls=poll_offsets(first, 4.0))
    assert 0 < learned(jobs) <= 6.0


def test_no_learning_when_switched_off(jobs: JobStore) -> None:
    add(jobs, spec("a", audios=0))
    create(jobs, "a", NOW)
    finish(jobs, "a", at=NOW, polls=[5.0, 12.5, 22.5])
    assert jobs.client.hget(jobs.keys.batch("b1"), "first_poll_clone") is None


def test_retrying_cancelled_work_sends_only_what_never_went_out(jobs: JobStore) -> None:
    """A cancelled batch could not be taken back: resubmitting sent nothing (every row
    known), and purge-then-submit paid again for clones already made."""
    batches = add(jobs, spec("a"), spec("b"))
    jobs.claim_create("a", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("a", "c", 0, "r", now=NOW, next_due=NOW + 5)
    assert batches.cancel("b1", now=NOW, by="ops") == {"cancelled": 1, "requested": 1}
    jobs.record_poll("a", "c", 1, "completed", {"model_id": "m"}, now=NOW + 5, next_due=NOW + 15)
    assert counts(jobs) == {"total": 2, "cancelled": 2}

    retried = batches.retry("b1", "cancelled", now=NOW + 20)
    count, steps = retried.jobs, retried.dispatches
    assert count == 2
    # a's clone was made before the cancel: only its audio goes; b was never sent
    assert sorted((s.job_id, s.item) for s in steps) == [("a", "0"), ("b", "c")]
    for job in ("a", "b"):
        current = doc(jobs, job)
        assert "cancelled" not in current
        assert result_record(current)["error"] is None
    assert doc(jobs, "a")["clone"]["model_id"] == "m"
    again = batches.retry("b1", "cancelled", now=NOW + 30)
    assert (again.jobs, again.dispatches) == (0, [])  # nothing left


def test_retry_cancelled_takes_back_a_cancel_whose_clone_is_still_in_flight(
    jobs: JobStore,
) -> None:
    """QA: `cancel` then `retry --cancelled` at once left every job whose clone was in
    flight cancelled: its audios were cancelled when the clone was done, and the clone
    paid for and unused (142 of 200 jobs)."""
    batches = add(jobs, spec("f", audios=2))
    jobs.claim_create("f", "c", 0, now=NOW, lease_s=60)
    jobs.record_created("f", "c", 0, "r", now=NOW, next_due=NOW + 5)
    assert batches.cancel("b1", now=NOW + 1, by="ops") == {"cancelled": 0, "requested": 1}
    assert [a["state"] for a in doc(jobs, "f")["audios"]] == ["cancelled", "cancelled"]
    retried = batches.retry("b1", "cancelled", now=NOW + 2)
    assert (retried.jobs, retried.dispatches) == (1, [])  # nothing to send yet
    assert "cancelled" not in doc(jobs, "f")
    polled = jobs.record_poll(
        "f", "c", 1, "completed", {"model_id": "m"}, now=NOW + 5, next_due=NOW + 15
    )
    assert sorted(s.item for s in polled.dispatches) == ["0", "1"]  # its audios go
    assert doc(jobs, "f")["state"] == "producing"
    assert counts(jobs) == {"total": 1, "producing": 1}


def test_an_unknown_probe_restarts_the_probe_interval_of_an_unknown_answers_pause(
    jobs: JobStore,
) -> None:
    """A probe that also ended unknown left the pause's `since` as it was, so the next
    watchdog pass probed again: creates that may each be billed, every 2 s (QA pass)."""
    add(jobs, *(spec(f"u{i}", audios=0) for i in range(6)))
    for i in range(5):
        jobs.claim_create(f"u{i}", "c", 0, now=NOW + i, lease_s=60)
        released = jobs.release_create(
            f"u{i}", "c", 0, "unknown", {"kind": "no_answer", "msg": "x"}, now=NOW + i
        )
        # the release that began the pause says so (the worker logs it; no read after)
        assert released.paused.startswith("5 creates in a row") == (i == 4), released
    pause = json.loads(jobs.client.get(jobs.keys.paused) or "{}")
    assert (pause["kind"], pause["since"]) == ("unknown_answers", NOW + 4)
    assert isinstance(jobs.claim_create("u5", "c", 0, now=NOW + 5, lease_s=60), Skipped)
    (probe,) = jobs.probe(now=NOW + 30, interval_s=10)  # the parked create, as a probe
    assert isinstance(jobs.claim_create("u5", "c", probe.gen, now=NOW + 30, lease_s=60), Claimed)
    jobs.release_create(
        "u5", "c", probe.gen, "unknown", {"kind": "no_answer", "msg": "x"}, now=NOW + 30
    )
    assert jobs.probe(now=NOW + 32, interval_s=10) == []  # nothing within the interval
    pause = json.loads(jobs.client.get(jobs.keys.paused) or "{}")
    assert pause["since"] == NOW + 30
    assert pause["reason"].startswith("6 creates in a row")


def test_unknowns_sent_before_a_create_that_got_its_task_are_not_in_a_row(jobs: JobStore) -> None:
    """QA: slow creates time out 30 s after they went; at a batch's end (or a cancel) the
    last of them ended one after another with no success between, though creates sent
    after each had got their tasks, and a healthy fleet paused as 'unknown answers'."""
    add(jobs, *(spec(f"s{i}", audios=0) for i in range(12)))
    for i in range(6):  # six slow creates go out, then six that get their tasks at once
        jobs.claim_create(f"s{i}", "c", 0, now=NOW + i, lease_s=60)
    for i in range(6, 12):
        jobs.claim_create(f"s{i}", "c", 0, now=NOW + i, lease_s=60)
        jobs.record_created(f"s{i}", "c", 0, f"r{i}", now=NOW + i, next_due=NOW + 60)
    for i in range(6):  # the slow ones time out, in a row by when they ended
        released = jobs.release_create(
            f"s{i}", "c", 0, "unknown", {"kind": "no_answer", "msg": "read timeout"},
            now=NOW + 30 + i,
        )  # fmt: skip
        assert released.paused == ""
    assert jobs.client.get(jobs.keys.paused) is None
    # creates sent after the last success that all end unknown still pause the fleet
    add(jobs, *(spec(f"t{i}", audios=0) for i in range(5)))
    for i in range(5):
        jobs.claim_create(f"t{i}", "c", 0, now=NOW + 40 + i, lease_s=60)
    for i in range(5):
        released = jobs.release_create(
            f"t{i}", "c", 0, "unknown", {"kind": "no_answer", "msg": "x"}, now=NOW + 70 + i
        )
    assert released.paused.startswith("5 creates in a row")


def test_a_reclone_by_retry_failed_leaves_an_unknown_audio_for_retry_unknown(
    jobs: JobStore,
) -> None:
    """The re-clone of an expired model reset every audio not completed, and the new
    clone's completion queued them all: an unknown one (its create may exist and be
    billed) went out again without --unknown, and inside the settle window."""
    add(jobs, spec("k", audios=2))
    d = doc(jobs, "k")
    d["state"] = "failed"
    d["clone"].update(state="completed", model_id="m1", activated=False)
    d["audios"][0].update(state="failed", error={"kind": "model_expired", "msg": "expired"})
    d["audios"][1].update(state="unknown", error={"kind": "lost_worker", "at": NOW, "msg": "x"})
    jobs.client.set(jobs.keys.job("k"), json.dumps(d))
    batches = BatchStore(jobs)
    recloned = batches.retry("b1", "failed", now=NOW + 10, settle_s=600)
    assert [(s.item, s.gen) for s in recloned.dispatches] == [("c", 1)]
    assert recloned.settling == 0  # nothing unknown is sent: nothing to wait for
    assert doc(jobs, "k")["audios"][1]["state"] == "unknown"
    claim = jobs.claim_create("k", "c", 1, now=NOW + 10, lease_s=60)
    assert isinstance(claim, Claimed)
    jobs.record_created("k", "c", 1, "clone-2", now=NOW + 10, next_due=NOW + 15)
    done = jobs.record_poll(
        "k", "c", 2, "completed", {"model_id": "m2", "audio_url": "https://cdn/p.mp3"},
        now=NOW + 15, next_due=NOW + 25,
    )  # fmt: skip
    (audio,) = done.dispatches
    assert audio.item == "0"  # the failed audio only
    assert doc(jobs, "k")["audios"][1]["state"] == "unknown"
    jobs.claim_create("k", "0", audio.gen, now=NOW + 15, lease_s=60)
    jobs.record_created("k", "0", audio.gen, "audio-0", now=NOW + 15, next_due=NOW + 20)
    jobs.record_poll(
        "k", "0", audio.gen + 1, "completed", {"audio_url": "https://cdn/0.mp3"},
        now=NOW + 20, next_due=NOW + 30,
    )  # fmt: skip
    assert doc(jobs, "k")["state"] == "unknown"
    waiting = batches.retry("b1", "unknown", now=NOW + 20, settle_s=600)
    assert (waiting.jobs, waiting.settling, waiting.settled_at) == (0, 1, NOW + 600)
    settling = batches.settling_unknowns("b1", now=NOW + 20, settle_s=600)
    assert (settling.settling, settling.settled_at) == (1, NOW + 600)
    later = batches.retry("b1", "unknown", now=NOW + 601, settle_s=600)
    assert [s.item for s in later.dispatches] == ["1"]


def test_finished_jobs_expire_with_their_batch_not_before_it(jobs: JobStore) -> None:
    """A job's record expired RETENTION_S after the job finished, its batch's after the
    batch did: a retry days later finished the batch again, and results() returned fewer
    records than status counted, without a word (QA pass)."""
    batches = add(jobs, spec("early", audios=0), spec("late", audios=0))
    jobs.claim_create("early", "c", 0, now=NOW, lease_s=60)
    jobs.release_create("early", "c", 0, "rejected", {"kind": "remote", "msg": "no"}, now=NOW)
    assert jobs.client.ttl(jobs.keys.job("early")) == -1  # kept while its batch runs
    run_clone(jobs, "late", now=NOW + 100)
    ttls = {j: jobs.client.ttl(jobs.keys.job(j)) for j in ("early", "late")}
    assert all(3590 < ttl <= 3600 for ttl in ttls.values()), ttls  # both with the batch
    assert 3590 < jobs.client.ttl(jobs.keys.batch("b1")) <= 3600
    # a retry un-finishes the batch: the finished job's record no longer runs out
    jobs.client.expire(jobs.keys.job("late"), 5)  # (as if the retention had nearly run)
    again = batches.retry("b1", "failed", now=NOW + 200)
    assert again.jobs == 1
    assert jobs.client.ttl(jobs.keys.job("late")) == -1
    assert jobs.client.ttl(jobs.keys.batch("b1")) == -1
    (step,) = again.dispatches
    jobs.claim_create("early", "c", step.gen, now=NOW + 200, lease_s=60)
    jobs.release_create(
        "early", "c", step.gen, "rejected", {"kind": "remote", "msg": "no"}, now=NOW + 200
    )
    assert all(3590 < jobs.client.ttl(jobs.keys.job(j)) <= 3600 for j in ("early", "late"))


def test_a_create_answered_after_its_step_moved_on_is_kept_on_the_record(jobs: JobStore) -> None:
    """A forced retry sent the create again while the first one's answer was still to come
    (a frozen worker): the first task, paid, was only a log line (money QA pass)."""
    batches = add(jobs, spec("f", audios=0))
    jobs.claim_create("f", "c", 0, now=NOW, lease_s=60)
    assert redrive(jobs, "f", now=NOW + 200) == ("unknown", None)  # lost_worker
    sent_again = batches.retry("b1", "unknown", now=NOW + 210)  # --force: no settle time
    (step,) = sent_again.dispatches
    assert step.gen > 0
    late = jobs.record_created("f", "c", 0, "task-first", now=NOW + 220, next_due=NOW + 225)
    assert late.gen is None  # stale: the job moved on
    assert result_record(doc(jobs, "f"))["untracked_tasks"] == ["task-first"]
    assert doc(jobs, "f")["clone"]["state"] == "pending"  # the retry's create goes on
    add(jobs, spec("g", audios=0), batch="b2")
    run_clone(jobs, "g")
    assert "untracked_tasks" not in result_record(doc(jobs, "g"))  # only when there are any


def test_a_script_refused_for_want_of_replicas_runs_again_until_they_are_back(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """A master with fewer replicas than its min-replicas-to-write (an old master woken
    from a hang, its replicas gone to the new one) refuses a script's writes with
    NOREPLICAS: run again through the ride-out (on a new connection, which asks the
    sentinels), never a task's exception, and never a write the demotion then drops."""
    from clonequeue.config import load_settings
    from clonequeue.store.connect import job_store, store_client

    settings = load_settings(env_file=None, redis_url=redis_url, namespace="nr")
    jobs = job_store(settings, store_client(settings))
    redis_client.config_set("min-replicas-to-write", 1)
    back = threading.Timer(1.0, redis_client.config_set, ("min-replicas-to-write", 0))
    back.start()
    try:
        started = time.monotonic()
        assert jobs.lock_watchdog(now=1000.0, lock_ms=5000) is not None
        assert time.monotonic() - started >= 0.9  # it waited for the replicas
    finally:
        back.join()
        redis_client.config_set("min-replicas-to-write", 0)
