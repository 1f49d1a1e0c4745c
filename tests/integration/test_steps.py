"""What a create or poll message does, without Celery: a fake API, the real store."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from clonequeue.api.models import RemoteTask
from clonequeue.api.responses import classify
from clonequeue.config import load_settings
from clonequeue.constants import MODEL_ID_TTL_S
from clonequeue.dispatch.bounds import TURN_WAIT_S
from clonequeue.errors import (
    ApiUnavailableError,
    InsufficientBalanceError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
)
from clonequeue.jobspec import JobSpec
from clonequeue.store.batches import BatchStore
from clonequeue.store.connect import job_store
from clonequeue.store.jobs import Dispatch
from clonequeue.store.records import new_job_doc
from clonequeue.workers import steps
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.gate import FleetGate
from clonequeue.workers.limiter import SPARE_WAIT_S, ApiRateLimiter

NOW = 1_900_000_000.0


@dataclass
class FakeApi:
    """Answers from a script: a RemoteTask, or an exception to raise."""

    answers: list[Any] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _next(self, kind: str, arg: Any) -> RemoteTask:
        self.calls.append((kind, arg))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def create_clone(self, request: Any) -> RemoteTask:
        return self._next("clone", request)

    def create_audio(self, request: Any) -> RemoteTask:
        return self._next("audio", request)

    def get_task(self, task_id: str) -> RemoteTask:
        return self._next("get", task_id)


@dataclass
class Recorder:
    sent: list[tuple[str, Dispatch, float | None]] = field(default_factory=list)

    def create(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self.sent.append(("create", step, countdown))

    def poll(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self.sent.append(("poll", step, countdown))

    def queue_depths(self) -> dict[str, int]:
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ctx(
    redis_client: redis.Redis, redis_url: str, tmp_path, monkeypatch
) -> Iterator[WorkerContext]:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        env_file=None,
        redis_url=redis_url,
        namespace="s",
        api_token="t",
        api_rate_limit="1000/second",
    )
    jobs = job_store(settings)
    context = WorkerContext(
        settings=settings,
        jobs=jobs,
        client=FakeApi(),  # type: ignore[arg-type]
        limiter=ApiRateLimiter(jobs.client, jobs.keys, settings.api_rate_limit),
        gate=FleetGate(jobs.client, jobs.keys, settings.max_in_flight),
        dispatcher=Recorder(),
        clock=Clock(),
        rng=random.Random(0),
    )
    spec = JobSpec.model_validate(
        {
            "custom_id": "j",
            "clone": {"fileUrl": "https://e.com/a.mp3"},
            "audios": [{"contentText": "Hi there"}],
        }
    )
    BatchStore(jobs).create_jobs("b", [("j", json.dumps(new_job_doc(spec, "b", NOW)))], now=NOW)
    yield context
    jobs.client.close()


def api(ctx: WorkerContext) -> FakeApi:
    return ctx.client  # type: ignore[return-value]


def sent(ctx: WorkerContext) -> list[tuple[str, Dispatch, float | None]]:
    return ctx.dispatcher.sent  # type: ignore[attr-defined,no-any-return]


def doc(ctx: WorkerContext) -> dict[str, Any]:
    return json.loads(ctx.jobs.client.get(ctx.jobs.keys.job("j")))  # type: ignore[arg-type]


def task(status: str = "queued", **fields: Any) -> RemoteTask:
    return RemoteTask(id=fields.pop("id", "audio_r1"), status=status, **fields)


def test_create_stores_the_id_and_schedules_the_first_poll(ctx: WorkerContext) -> None:
    api(ctx).answers = [task()]
    assert steps.run_create(ctx, Dispatch("j", "c", 0)) == "created audio_r1"
    ((kind, step, countdown),) = sent(ctx)
    assert (kind, step) == ("poll", Dispatch("j", "c", 1, "audio_r1"))
    assert 5.0 <= (countdown or 0) <= 5.5
    assert doc(ctx)["clone"]["remote_id"] == "audio_r1"


def test_a_duplicate_message_sends_nothing(ctx: WorkerContext) -> None:
    api(ctx).answers = [task()]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert steps.run_create(ctx, Dispatch("j", "c", 0)) == "stale"
    assert len(api(ctx).calls) == 1


def test_transient_error_retries_with_a_countdown(ctx: WorkerContext) -> None:
    api(ctx).answers = [ApiUnavailableError("boom", http_status=503)]
    outcome = steps.run_create(ctx, Dispatch("j", "c", 0))
    assert "retry in" in outcome
    ((kind, step, countdown),) = sent(ctx)
    assert (kind, step.gen) == ("create", 1)
    assert countdown is not None
    assert countdown > 0
    assert doc(ctx)["clone"]["state"] == "pending"
    # retried, not refused: a pipeline reading results meanwhile must not see "rejected"
    assert doc(ctx)["clone"]["error"]["kind"] == "unavailable"


def test_429_honours_retry_after_fleet_wide(ctx: WorkerContext) -> None:
    api(ctx).answers = [RateLimitedError("slow down", retry_after_s=7.0, http_status=429)]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ((_, _, countdown),) = sent(ctx)
    assert countdown is not None
    assert countdown >= 7.0
    assert int(ctx.jobs.client.pttl(ctx.jobs.keys.cooldown)) > 6000  # type: ignore[arg-type]
    assert doc(ctx)["clone"]["error"]["kind"] == "rate_limited"


def test_a_long_retry_after_holds_the_fleet_and_its_step_looks_again_within_30_s(
    ctx: WorkerContext,
) -> None:
    """The fleet's cooldown holds every call for the 300 s; the step that met the 429 was
    due again only after them, so `clonequeue resume` ended the wait for every step but
    that one (QA pass: it stayed pending ~12 minutes)."""
    api(ctx).answers = [RateLimitedError("slow down", retry_after_s=300.0, http_status=429)]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert int(ctx.jobs.client.pttl(ctx.jobs.keys.cooldown)) > 290_000  # type: ignore[arg-type]
    due = ctx.jobs.client.zscore(ctx.jobs.keys.due, "c|j")
    assert due is not None
    assert due <= NOW + 30


def test_rejection_fails_with_the_apis_words(ctx: WorkerContext) -> None:
    api(ctx).answers = [RejectedError("fileUrl unreachable", code=40001, http_status=200)]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    error = doc(ctx)["clone"]["error"]
    assert error == {
        "kind": "rejected",
        "msg": "fileUrl unreachable",
        "code": 40001,
        "http_status": 200,
    }
    assert doc(ctx)["state"] == "failed"


def test_lost_answer_is_unknown_and_never_resent(ctx: WorkerContext) -> None:
    api(ctx).answers = [OutcomeUnknownError("read timeout")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert doc(ctx)["state"] == "unknown"
    assert doc(ctx)["clone"]["error"]["kind"] == "no_answer"
    assert sent(ctx) == []


def test_an_unknown_create_names_the_command_that_sends_it_again(ctx: WorkerContext) -> None:
    api(ctx).answers = [OutcomeUnknownError("no answer came back (ReadTimeoutError)")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert doc(ctx)["clone"]["error"]["msg"] == (
        "no answer came back (ReadTimeoutError); check the provider's records, then "
        "`clonequeue retry b --unknown` sends it again"
    )


def test_a_balance_pause_names_the_command_that_lifts_it(ctx: WorkerContext) -> None:
    refused = classify(
        status=402,
        code=40200,
        msg="insufficient balance",
        endpoint="POST /clones",
        retry_after=None,
        is_create=True,
    )
    api(ctx).answers = [refused]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    pause = json.loads(ctx.jobs.client.get(ctx.jobs.keys.paused))  # type: ignore[arg-type]
    assert pause["reason"].endswith("or at once with `clonequeue resume`")
    assert doc(ctx)["clone"]["error"]["msg"].endswith("or at once with `clonequeue resume`")


def test_balance_pauses_the_fleet_and_parks_the_job(ctx: WorkerContext) -> None:
    api(ctx).answers = [InsufficientBalanceError("insufficient balance", http_status=402)]
    assert steps.run_create(ctx, Dispatch("j", "c", 0)).startswith("parked")
    pause = json.loads(ctx.jobs.client.get(ctx.jobs.keys.paused))  # type: ignore[arg-type]
    assert pause["kind"] == "balance"
    assert ctx.jobs.client.zcard(ctx.jobs.keys.parked("clone")) == 1


def test_id_is_stored_through_a_short_redis_outage(ctx: WorkerContext, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = ctx.jobs.record_created
    failures = [redis.exceptions.ConnectionError("down")] * 2

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(ctx.jobs, "record_created", flaky)
    monkeypatch.setattr(steps.time, "sleep", lambda s: None)
    api(ctx).answers = [task()]
    assert steps.run_create(ctx, Dispatch("j", "c", 0)) == "created audio_r1"
    assert doc(ctx)["clone"]["remote_id"] == "audio_r1"


def test_id_is_held_while_redis_refuses_writes_then_stored(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: with Redis full (maxmemory, noeviction) the answer's write got -OOM, the error
    went up, and the step ended unknown though the worker had the task id in hand."""
    client = ctx.jobs.client
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    real_create = api(ctx).create_clone

    def create_then_fill(request: Any) -> RemoteTask:
        answer = real_create(request)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # full: every write is refused with -OOM
        threading.Timer(1.5, lambda: client.config_set("maxmemory", 0)).start()
        return answer

    monkeypatch.setattr(api(ctx), "create_clone", create_then_fill)
    api(ctx).answers = [task()]
    try:
        with caplog.at_level("WARNING", logger=steps.__name__):
            assert steps.run_create(ctx, Dispatch("j", "c", 0)) == "created audio_r1"
    finally:
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", policy)
    assert doc(ctx)["clone"]["remote_id"] == "audio_r1"
    said = [r.getMessage() for r in caplog.records if "does not take its id" in r.getMessage()]
    assert len(said) == 1, said
    assert "audio_r1" in said[0]


def complete_clone(ctx: WorkerContext) -> None:
    api(ctx).answers = [task(), task("completed", modelId="m1", audioUrl="https://cdn/p.mp3")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))


def test_poll_reschedules_then_completion_fans_out(ctx: WorkerContext) -> None:
    api(ctx).answers = [
        task(),
        task("processing"),
        task("completed", modelId="m1", audioUrl="https://cdn/p.mp3"),
    ]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")).startswith("processing")
    assert sent(ctx)[-1][1] == Dispatch("j", "c", 2, "audio_r1")
    assert sent(ctx)[-1][2] == 7.5
    assert steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1")) == "completed"
    assert sent(ctx)[-1][:2] == ("create", Dispatch("j", "0", 1))
    assert doc(ctx)["clone"]["model_id"] == "m1"


def test_audio_create_sends_the_model_id(ctx: WorkerContext) -> None:
    complete_clone(ctx)
    api(ctx).answers = [task(id="audio_a1")]
    steps.run_create(ctx, Dispatch("j", "0", 1))
    kind, request = api(ctx).calls[-1]
    assert kind == "audio"
    assert request.modelId == "m1"
    assert request.contentText == "Hi there"


def test_expired_model_fails_without_a_call(ctx: WorkerContext) -> None:
    complete_clone(ctx)
    ctx.clock.now = NOW + MODEL_ID_TTL_S + 60  # type: ignore[attr-defined]
    calls = len(api(ctx).calls)
    steps.run_create(ctx, Dispatch("j", "0", 1))
    assert len(api(ctx).calls) == calls
    assert doc(ctx)["audios"][0]["error"]["kind"] == "model_expired"


def test_api_saying_expired_is_recognised(ctx: WorkerContext) -> None:
    complete_clone(ctx)
    api(ctx).answers = [RejectedError("modelId expired, clone again", code=40010)]
    steps.run_create(ctx, Dispatch("j", "0", 1))
    assert doc(ctx)["audios"][0]["error"]["kind"] == "model_expired"


def test_poll_errors_keep_polling(ctx: WorkerContext) -> None:
    api(ctx).answers = [task(), ApiUnavailableError("boom", http_status=503)]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    outcome = steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    assert outcome.startswith("error:")
    assert sent(ctx)[-1][1] == Dispatch("j", "c", 2, "audio_r1")
    assert sent(ctx)[-1][2] == 7.5  # the cadence: the API's trouble


def test_a_poll_answered_429_comes_again_after_its_retry_after(ctx: WorkerContext) -> None:
    """A 429 says nothing of the task: the poll comes again after the Retry-After, not
    at the cadence (10 s while calls are scarce, which a 429 makes them: a batch's
    last audio waited that long after the 429 that turned its first poll away)."""
    api(ctx).answers = [task(), RateLimitedError("x", retry_after_s=2.0)]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.clock.now = NOW + 20.0  # type: ignore[attr-defined]
    outcome = steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    assert outcome.startswith("error:")
    assert sent(ctx)[-1] == ("poll", Dispatch("j", "c", 2, "audio_r1"), 2.0)
    api(ctx).answers = [RateLimitedError("x", retry_after_s=300.0)]
    steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1"))
    # never past where its `due` entry expects it (the fleet's pause holds it meanwhile)
    assert sent(ctx)[-1] == ("poll", Dispatch("j", "c", 3, "audio_r1"), 10.0)


@pytest.mark.parametrize(
    "answer",
    [
        task("completed", id="audio_other", modelId="m9", audioUrl="https://cdn/x.mp3"),
        task("completed", model="soundCloningAudio", audioUrl="https://cdn/x.mp3"),
    ],
    ids=["another id", "another kind"],
)
def test_an_answer_about_another_task_is_never_taken_as_this_ones(
    ctx: WorkerContext, answer: RemoteTask, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted stand-in API handed out a task's id again: the clone's poll got an
    audio task's answer, and the job would have made its audios with another voice."""
    api(ctx).answers = [task(), answer, answer]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    outcome = steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    assert outcome.startswith("refused: the API answered")
    assert sent(ctx)[-1][1] == Dispatch("j", "c", 2, "audio_r1")  # polled again
    assert "model_id" not in doc(ctx)["clone"]
    assert doc(ctx)["clone"]["state"] == "running"
    steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1"))
    assert caplog.text.count("the API refused the poll") == 1  # said once, not per poll


def lost_after_refused_polls(ctx: WorkerContext, answer: object) -> dict[str, Any]:
    """Create, then polls answered ``answer`` until the task counts as lost: its error."""
    api(ctx).answers = [task(), answer, answer]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")).startswith("refused:")
    ctx.clock.now = NOW + ctx.settings.task_lost_after_s + 1  # type: ignore[attr-defined]
    assert steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1")) == "failed"
    assert doc(ctx)["state"] == "failed"
    error: dict[str, Any] = doc(ctx)["clone"]["error"]
    assert error["kind"] == "task_lost"
    return error


def test_a_task_the_api_no_longer_knows_fails_as_lost(ctx: WorkerContext) -> None:
    not_found = RejectedError("task not found", http_status=404, code=40400)
    error = lost_after_refused_polls(ctx, not_found)
    assert "task not found" in error["msg"]
    assert "it no longer holds it" in error["msg"]


def test_a_task_only_ever_answered_about_another_is_not_said_to_be_gone(
    ctx: WorkerContext,
) -> None:
    """QA: ids that came back without their prefix were said "no longer held", with
    `retry --failed` (billed again) as the next step, though every poll was answered."""
    error = lost_after_refused_polls(ctx, task(id="R1"))  # its id in another form, perhaps
    assert error["msg"].startswith("every poll of this task for ")
    assert (
        "was answered about another (last: refused: the API answered for task R1" in (error["msg"])
    )
    assert "ask the provider about it before `clonequeue retry" in error["msg"]


def test_remote_failure_keeps_the_reason(ctx: WorkerContext) -> None:
    api(ctx).answers = [task(), task("failed", error="audio shorter than 15 s")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")) == "failed"
    assert doc(ctx)["clone"]["error"] == {"kind": "remote", "msg": "audio shorter than 15 s"}
    assert doc(ctx)["state"] == "failed"


def test_first_poll_waits_as_long_as_the_batch_learned(ctx: WorkerContext) -> None:
    ctx.jobs.client.hset(ctx.jobs.keys.batch("b"), "first_poll_clone", 42.0)
    api(ctx).answers = [task()]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ((_, _, countdown),) = sent(ctx)
    assert countdown is not None
    assert 42.0 <= countdown <= 42.0 * 1.1


def test_a_first_poll_that_finds_the_task_done_shortens_the_batchs_delay(
    ctx: WorkerContext,
) -> None:
    fields = ("first_poll_clone", "first_poll_clone_hi", "first_poll_clone_lo")
    ctx.jobs.client.hset(ctx.jobs.keys.batch("b"), mapping=dict.fromkeys(fields, 42.0))
    complete_clone(ctx)  # completed at its first poll
    assert float(ctx.jobs.client.hget(ctx.jobs.keys.batch("b"), "first_poll_clone")) < 42.0


def test_a_backlog_postpones_a_redrive_only_while_the_poll_can_be_in_its_queue(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late poll behind a poll backlog is waited for; once a worker took a poll queued
    after it (queues are FIFO), it has left the queue, so the watchdog re-drives it. A
    backlog in the submit queue says nothing about polls."""
    from clonequeue.dispatch.queues import QueueNames
    from clonequeue.workers.watchdog import run_watchdog

    queues = QueueNames.for_namespace("s")
    api(ctx).answers = [task()]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    sent(ctx).clear()
    due_at = float(ctx.jobs.client.zscore(ctx.jobs.keys.due, "c|j"))  # type: ignore[arg-type]
    clock: Clock = ctx.clock  # type: ignore[assignment]
    clock.now = due_at + ctx.settings.watchdog_grace_s + 1
    monkeypatch.setattr(ctx.dispatcher, "queue_depths", lambda: {queues.poll: 5000})
    assert "postponed 1" in run_watchdog(ctx, queues, min_gap_s=0)
    assert sent(ctx) == []
    ctx.jobs.client.hset(ctx.jobs.keys.ns + ":queue_head", "poll", clock.now)  # polls ran
    assert "poll 1" in run_watchdog(ctx, queues, min_gap_s=0)
    ((kind, step, _),) = sent(ctx)
    assert (kind, step.remote_id, step.gen) == ("poll", "audio_r1", 2)


def test_a_submit_backlog_does_not_postpone_a_lost_poll(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clonequeue.dispatch.queues import QueueNames
    from clonequeue.workers.watchdog import run_watchdog

    queues = QueueNames.for_namespace("s")
    api(ctx).answers = [task()]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    sent(ctx).clear()
    monkeypatch.setattr(ctx.dispatcher, "queue_depths", lambda: {queues.submit: 5000})
    ctx.clock.now += 200  # type: ignore[attr-defined]
    assert "poll 1" in run_watchdog(ctx, queues, min_gap_s=0)


def test_watchdog_passes_right_after_each_other_cost_one(ctx: WorkerContext) -> None:
    """Beat messages that piled up while no worker ran: the first runs, the rest skip."""
    from clonequeue.dispatch.queues import QueueNames
    from clonequeue.workers.watchdog import run_watchdog

    queues = QueueNames.for_namespace("s")
    ctx.clock.now += 200  # type: ignore[attr-defined]
    assert "create 1" in run_watchdog(ctx, queues)  # the job's first create, never run
    assert run_watchdog(ctx, queues) == "another watchdog pass is running or just ran"
    assert [(k, s.gen) for k, s, _ in sent(ctx)] == [("create", 1)]


def count_slots(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch, wait: float = 0.0
) -> list[float]:
    """Record every rate slot taken; each answers ``wait`` (0: a slot now)."""
    taken: list[float] = []

    def acquire(max_wait_s: float) -> float:
        taken.append(max_wait_s)
        return wait

    monkeypatch.setattr(ctx.limiter, "acquire", acquire)
    return taken


def test_a_stale_poll_takes_no_rate_slot_and_makes_no_call(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    calls, taken = len(api(ctx).calls), count_slots(ctx, monkeypatch)
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")) == "stale"  # a duplicate
    assert (len(api(ctx).calls), taken) == (calls, [])


def test_a_stale_create_takes_no_rate_slot(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    api(ctx).answers = [task()]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    taken = count_slots(ctx, monkeypatch)
    assert steps.run_create(ctx, Dispatch("j", "c", 0)) == "stale"
    assert taken == []


def test_waiting_for_a_rate_slot_is_no_attempt(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No slot free soon: the message comes again later and its due entry moves with it."""
    count_slots(ctx, monkeypatch, wait=3.0)
    assert steps.run_create(ctx, Dispatch("j", "c", 0)).startswith("rate limit")
    assert sent(ctx) == [("create", Dispatch("j", "c", 0), 3.0)]
    assert ctx.jobs.client.zscore(ctx.jobs.keys.due, "c|j") == NOW + 3.0
    clone = doc(ctx)["clone"]
    assert (clone["state"], clone["attempts"], clone.get("error")) == ("pending", 0, None)


def test_no_slot_after_a_claim_through_a_closed_gate_is_no_rejection(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate looked closed, the claim went through, then no rate slot was free: our
    own pacing, not an attempt, and no error on the record."""
    monkeypatch.setattr(ctx.gate, "is_open", lambda: False)
    count_slots(ctx, monkeypatch, wait=3.0)
    steps.run_create(ctx, Dispatch("j", "c", 0))
    clone = doc(ctx)["clone"]
    assert (clone["state"], clone["attempts"], clone.get("error")) == ("pending", 0, None)
    assert sent(ctx) == [("create", Dispatch("j", "c", 1), 3.0)]
    assert api(ctx).calls == []


def test_while_calls_are_scarce_a_poll_that_finds_its_task_running_waits_the_slow_end(
    ctx: WorkerContext,
) -> None:
    """The first poll is scheduled as usual (5-5.5 s); the next ones every 10 s, not 7.5 s."""
    assert not ctx.limiter.scarce()
    ctx.limiter.cool_down(0.3)  # a 429 just now: the create waits it out, and calls are scarce
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))  # a spare slot was free: it went
    (_, _, first), (_, _, second) = sent(ctx)
    assert 5.0 <= (first or 0) <= 5.5
    assert second == 10.0


def test_a_poll_on_a_spare_slot_that_finds_its_task_running_comes_again_at_the_fast_end(
    ctx: WorkerContext,
) -> None:
    """Calls scarce, a task 7.5 s old (likely done at 10 s): its poll went on a spare
    slot and found it running. The next poll finds the end whenever it comes after
    10 s of age, so it comes after the provider's shortest interval (5 s), not the
    slow end (10 s): the batch's last audios, done just after such a poll, waited
    10 s more."""
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.limiter.cool_down(0.01)  # calls are scarce
    ctx.clock.now = NOW + 7.5  # type: ignore[attr-defined]
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")).startswith("processing")
    assert sent(ctx)[-1][2] == 5.0
    ctx.clock.now = NOW + 25.0  # type: ignore[attr-defined]
    api(ctx).answers = [task("processing")]
    # likely done long ago, still running: the slow end while calls are scarce
    assert steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1")).startswith("processing")
    assert sent(ctx)[-1][2] == 10.0


def test_once_calls_are_spare_again_a_running_task_is_polled_at_the_fast_end(
    ctx: WorkerContext,
) -> None:
    """Calls were scarce until 6 s ago (a batch's last tasks): the next poll of a task
    that was still running comes at the usual cadence (7.5 s), not the slow end."""
    ctx.limiter.cool_down(0.01)
    ctx.limiter._scarce_at -= steps.REPOLL_SCARCE_S + 1  # as if 6 s had passed since
    assert ctx.limiter.scarce()
    assert not ctx.limiter.scarce(steps.REPOLL_SCARCE_S)
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.clock.now = NOW + 10.0  # type: ignore[attr-defined]
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    assert sent(ctx)[-1][2] == 7.5


def test_while_calls_are_scarce_an_early_poll_takes_only_a_spare_slot(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll before its task is likely done (10 s old, the cadence's slow end) asks only
    for a slot nobody waits for; with none free it waits until the task is likely done,
    spending no call; then it queues for a slot like a create."""
    api(ctx).answers = [task(), task("completed", modelId="m1")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.limiter.cool_down(0.3)  # calls are scarce
    asked: list[float] = []

    def acquire(max_wait_s: float) -> float:
        asked.append(max_wait_s)
        return 0.4 if max_wait_s <= SPARE_WAIT_S else 0.0  # the queue is 0.4 s deep

    monkeypatch.setattr(ctx.limiter, "acquire", acquire)
    ctx.clock.now = NOW + 4.0  # type: ignore[attr-defined]
    poll = Dispatch("j", "c", 1, "audio_r1")
    assert steps.run_poll(ctx, poll).startswith("rate limit")
    assert asked == [SPARE_WAIT_S]
    assert len(api(ctx).calls) == 1  # the create only
    assert sent(ctx)[-1] == ("poll", poll, pytest.approx(6.0))  # at 10 s of age
    assert ctx.jobs.client.zscore(ctx.jobs.keys.due, "c|j") == pytest.approx(NOW + 10.0)
    ctx.clock.now = NOW + 10.0  # type: ignore[attr-defined]
    assert steps.run_poll(ctx, poll) == "completed"
    assert asked == [SPARE_WAIT_S, TURN_WAIT_S]


def test_an_early_poll_goes_at_once_while_calls_are_plentiful(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    assert not ctx.limiter.scarce()
    taken = count_slots(ctx, monkeypatch)
    ctx.clock.now = NOW + 5.0  # type: ignore[attr-defined]
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")).startswith("processing")
    assert taken == [TURN_WAIT_S]


def test_a_create_and_a_likely_done_poll_wait_their_turn_alike(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both wait in one queue per process, so the fetch order decides their shares; a
    create that waited less was turned away whenever 2 processes' threads queued longer
    (2.6 s at 38/s) and the polls took its share (issue 15's bench, 2 workers)."""
    taken = count_slots(ctx, monkeypatch)
    api(ctx).answers = [task(), task("completed", modelId="m1")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.clock.now = NOW + 11.0  # type: ignore[attr-defined]
    assert steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1")) == "completed"
    assert taken == [TURN_WAIT_S, TURN_WAIT_S]
    assert TURN_WAIT_S >= 2 * 50 / 38  # 2 workers' threads in turn at 38/s


def test_an_error_after_the_claim_before_sending_is_retried_never_unknown(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed, then something of ours raised before a byte went out: a retry, not unknown.

    Left `submitting`, the watchdog would report the step `unknown` ("the API may hold
    it"; seen with libfaketime making every time.sleep fail) though the API has nothing.
    """

    def broken(step: Dispatch, claim: Any) -> Any:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(steps, "_request_for", broken)
    outcome = steps.run_create(ctx, Dispatch("j", "c", 0))
    assert "not sent: OSError" in outcome
    assert api(ctx).calls == []
    clone = doc(ctx)["clone"]
    assert (clone["state"], clone["gen"]) == ("pending", 1)
    assert clone["error"]["msg"].startswith("not sent: OSError")
    ((kind, step, _),) = sent(ctx)
    assert (kind, step) == ("create", Dispatch("j", "c", 1))


def test_a_status_the_reference_does_not_list_is_polled_on_and_said_once(
    ctx: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    """An undocumented status (``expired``) is taken as still running, as documented, but
    not in silence: it sat in the raw record only, for up to the 2 h deadline."""
    api(ctx).answers = [task(), task("expired"), task("expired"), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    for gen in (1, 2, 3):
        assert steps.run_poll(ctx, Dispatch("j", "c", gen, "audio_r1")).startswith(
            ("expired", "processing")
        )
    assert doc(ctx)["clone"]["state"] == "running"
    assert caplog.text.count("status 'expired', which the API reference does not list") == 1


def test_a_redis_that_came_back_without_its_data_is_said_by_the_watchdog(
    ctx: WorkerContext, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis restarted empty mid-batch (its AOF lost, or a binary that cannot read it)
    went unnoticed: the workers carried on, the batch's jobs gone without a word."""
    from clonequeue.dispatch.queues import QueueNames
    from clonequeue.workers import watchdog
    from clonequeue.workers.watchdog import run_watchdog

    monkeypatch.setattr(watchdog, "_markers", {})  # what this process saw: nothing yet

    queues = QueueNames.for_namespace("s")
    with caplog.at_level(logging.ERROR, logger="clonequeue.workers.watchdog"):
        run_watchdog(ctx, queues, min_gap_s=0)
        run_watchdog(ctx, queues, min_gap_s=0)
        assert not caplog.records  # the same Redis, with its data
        ctx.jobs.client.delete(ctx.jobs.keys.data_marker)  # what an empty Redis holds of it
        run_watchdog(ctx, queues, min_gap_s=0)
    (said,) = caplog.records
    assert said.getMessage().startswith("Redis no longer holds the data this worker saw")
    caplog.clear()
    run_watchdog(ctx, queues, min_gap_s=0)
    assert not caplog.records  # said once: the new marker is what it sees now


def test_polls_refused_for_the_token_pause_creates_until_one_is_answered(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token revoked once every create was made: polls met 401 in silence until the job
    deadline failed tasks that may be done (QA pass); now creates pause as for a create's
    401, which `status` and the exporter's alert show."""
    from clonequeue.errors import AuthenticationError

    monkeypatch.setattr(steps, "_poll_pause_checked", {})
    refused = AuthenticationError("token revoked — check CLONEQUEUE_API_TOKEN", http_status=401)
    api(ctx).answers = [task(), refused]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    pause = json.loads(ctx.jobs.client.get(ctx.jobs.keys.paused) or "{}")
    assert pause["kind"] == "auth"
    assert pause["reason"].startswith("polls are refused: ")
    assert "check CLONEQUEUE_API_TOKEN" in pause["reason"]
    api(ctx).answers = [task("processing")]
    steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1"))
    assert ctx.jobs.client.get(ctx.jobs.keys.paused) is None  # answered again: lifted


def test_a_pause_the_polls_did_not_set_is_left_by_an_answered_poll(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "_poll_pause_checked", {})
    api(ctx).answers = [task(), task("processing")]
    steps.run_create(ctx, Dispatch("j", "c", 0))
    ctx.jobs.client.set(ctx.jobs.keys.paused, json.dumps({"kind": "manual", "reason": "x"}))
    steps.run_poll(ctx, Dispatch("j", "c", 1, "audio_r1"))
    assert ctx.jobs.client.get(ctx.jobs.keys.paused) is not None
    # one the polls of another worker process set is lifted by this one's answered poll
    # (QA pass: it stayed once the process that set it had stopped)
    by_polls = {"kind": "auth", "reason": "polls are refused: x", "by": "polls"}
    ctx.jobs.client.set(ctx.jobs.keys.paused, json.dumps(by_polls))
    monkeypatch.setattr(steps, "_poll_pause_checked", {})
    api(ctx).answers = [task("processing")]
    steps.run_poll(ctx, Dispatch("j", "c", 2, "audio_r1"))
    assert ctx.jobs.client.get(ctx.jobs.keys.paused) is None


def test_a_create_the_watchdog_calls_unknown_is_counted_for_the_alert(ctx: WorkerContext) -> None:
    """ClonequeueOutcomeUnknown reads clonequeue_steps_finished_total{state="unknown"}: a
    killed worker's creates, ended by the watchdog, were never counted (operator QA pass)."""
    from clonequeue.dispatch.queues import QueueNames
    from clonequeue.metrics import STEPS_FINISHED
    from clonequeue.workers.watchdog import run_watchdog

    counter = STEPS_FINISHED.labels("clone", "unknown")
    before = counter._value.get()
    now = ctx.clock.now  # type: ignore[attr-defined]
    ctx.jobs.claim_create("j", "c", 0, now=now, lease_s=60)  # sent; its worker died
    ctx.clock.now = now + 200  # type: ignore[attr-defined]
    assert "unknown 1" in run_watchdog(ctx, QueueNames.for_namespace("s"), min_gap_s=0)
    assert counter._value.get() == before + 1


def test_creates_retried_through_an_outage_are_said_once_a_minute(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An API down (503, refused) left every job pending with nothing in any log; status
    read as if all were well (operator QA pass)."""
    monkeypatch.setattr(steps, "_said", {})
    api(ctx).answers = [ApiUnavailableError("service unavailable", http_status=503)] * 2
    with caplog.at_level("WARNING", logger=steps.__name__):
        steps.run_create(ctx, Dispatch("j", "c", 0))
        steps.run_create(ctx, Dispatch("j", "c", 1))
    said = [r.getMessage() for r in caplog.records if "creates get no task" in r.getMessage()]
    assert len(said) == 1, said  # once a minute, not per create
    assert "service unavailable" in said[0]
    assert "CLONEQUEUE_SUBMIT_MAX_ATTEMPTS" in said[0]
