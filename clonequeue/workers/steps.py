"""What a create and a poll message do: plain functions, testable without Celery.

The pay-once protocol (README, "Paying once"): a create is sent only by the
worker whose claim moved the step from pending to submitting; the remote id is
stored the moment it arrives; a create whose answer never came is `unknown` and
is never re-sent automatically.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any

import redis
from pydantic import ValidationError

from clonequeue.api.billing import billed_chars, preview_chars
from clonequeue.api.models import (
    AudioRequest,
    CloneRequest,
    RemoteTask,
    TaskStatus,
    describe_validation_error,
)
from clonequeue.constants import MODEL_ID_TTL_S
from clonequeue.dispatch.bounds import (
    LIMITER_WAIT_S,
    TURN_WAIT_S,
    create_lease_s,
    max_countdown_s,
)
from clonequeue.dispatch.dispatcher import send_all
from clonequeue.errors import (
    ApiError,
    AuthenticationError,
    ClonequeueError,
    ConfigError,
    FleetBlockedError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    TransientApiError,
)
from clonequeue.logs import add_log_context
from clonequeue.metrics import CHARS_SUBMITTED, CREATE_RETRIES, STEPS_FINISHED
from clonequeue.redis_refusals import clip, error_line, refuses_writes
from clonequeue.store.jobs import Claimed, Created, Dispatch, PollCheck, Skipped
from clonequeue.store.records import ErrorKind
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.limiter import COOLDOWN_RECHECK_S, SPARE_WAIT_S
from clonequeue.workers.schedule import first_poll_delay, poll_delay, retry_delay

log = logging.getLogger(__name__)

# How long a worker holds a created task's id while Redis is out of reach or refuses
# writes: an operator freeing memory or disk takes minutes, and the step continues
# even after the watchdog called it unknown (record_created.lua).
PERSIST_FOR_S = 600.0
REPOLL_SCARCE_S = 5.0  # polls of running tasks go at the slow end if calls were scarce this lately


def run_create(ctx: WorkerContext, step: Dispatch) -> str:
    """Send the create for a pending step, exactly once. Returns a short outcome for Flower.

    A stale or duplicate message stops at the first check, before it takes a rate slot;
    the claim then decides for real. Waiting for a slot is our own pacing: it never
    counts as an attempt, nor as an error.
    """
    verdict = ctx.jobs.check_step(step, now=ctx.clock())
    if verdict in ("stale", "gone"):
        return verdict
    holds_rate_slot = False
    if verdict == "ok" and ctx.gate.is_open():
        wait = ctx.limiter.acquire(TURN_WAIT_S)  # as long as a poll: the fetch order decides
        if wait:
            return _paced(ctx, step, wait)
        holds_rate_slot = True
    lease = create_lease_s(ctx.settings)
    claim = ctx.jobs.claim_create(step.job_id, step.item, step.gen, now=ctx.clock(), lease_s=lease)
    if isinstance(claim, Skipped):
        return claim.reason
    add_log_context(batch=claim.batch)
    try:
        prepared = _prepare_create(ctx, step, claim, holds_rate_slot=holds_rate_slot)
    except Exception as exc:
        # Left `submitting`, the step would become `unknown` ("the API may hold it")
        # though no byte went out: hand it back for a retry instead.
        log.exception("create of job %s failed before it was sent; it is retried", step.job_id)
        error = {"kind": ErrorKind.REJECTED, "msg": f"not sent: {type(exc).__name__}: {exc}"}
        delay = retry_delay(
            claim.attempts, base_s=ctx.settings.retry_base_s, max_s=ctx.settings.retry_max_s
        )
        return _release(ctx, step, "retry", error, delay=delay)
    if isinstance(prepared, str):
        return prepared
    request = prepared
    try:
        if isinstance(request, CloneRequest):
            task = ctx.client.create_clone(request)
        else:
            task = ctx.client.create_audio(request)
    except ApiError as exc:
        return _handle_create_error(ctx, step, claim, exc)
    except ConfigError as exc:
        log.error("creates paused fleet-wide until `clonequeue resume`: %s", exc)
        return _release(
            ctx,
            step,
            "blocked",
            {"kind": "config", "msg": str(exc)},
            pause={"kind": "config", "reason": str(exc), "since": ctx.clock()},
        )
    _count_chars(request)
    ctx.limiter.useful()
    other = _task_id_owner(ctx, step, task.id)
    if other is not None:
        error = {
            "kind": ErrorKind.TASK_ID_REUSED.value,
            "msg": f"the API answered with task id {task.id[:100]}, which it had given to "
            f"{other} before: which task this create made cannot be told; check the "
            f"provider's records, then `clonequeue retry {claim.batch} --unknown` sends it again",
        }
        log.error("create of job %s: %s", step.job_id, error["msg"], extra={"job": step.job_id})
        return _release(ctx, step, "unknown", error)
    return _record_created(ctx, step, task)


def _task_id_owner(ctx: WorkerContext, step: Dispatch, remote_id: str) -> str | None:
    """The other step the API gave ``remote_id`` to, if any (the id is this step's now).

    The API reference promises nothing about ids; one handed out twice gave a second job
    the first job's voice, without a word. The same step again (a create re-run after a
    lost reply) is its own."""
    member = f"{step.job_id}|{step.item}"
    key = ctx.jobs.keys.task_owner(remote_id)
    retention = max(int(ctx.settings.retention_s), 1)
    client = ctx.jobs.client
    try:
        if client.set(key, member, nx=True, ex=retention):
            return None
        owner = client.get(key)
    except redis.exceptions.RedisError as exc:  # storing the id comes first: it is paid
        log.warning("task id %s not checked for reuse (%s)", remote_id[:100], type(exc).__name__)
        return None
    if owner is None or owner == member:
        return None
    job, _, item = str(owner).partition("|")
    return f"job {job} ({'its clone' if item == 'c' else f'its audio {item}'})"


def _prepare_create(
    ctx: WorkerContext, step: Dispatch, claim: Claimed, *, holds_rate_slot: bool
) -> CloneRequest | AudioRequest | str:
    """The request to send for a claimed step, or the outcome when it is not to be sent."""
    if not holds_rate_slot:  # the gate looked closed a moment ago: rare
        wait = ctx.limiter.acquire(LIMITER_WAIT_S)
        if wait:
            paced = {"kind": ErrorKind.REJECTED, "msg": "rate limit: no slot free"}
            return _release(ctx, step, "paced", paced, delay=wait)
    try:
        request = _request_for(step, claim)
    except ValidationError as exc:
        reason = "; ".join(describe_validation_error(exc))
        return _release(ctx, step, "rejected", {"kind": ErrorKind.REJECTED, "msg": reason})
    if isinstance(request, AudioRequest) and _model_expired(ctx, claim):
        return _release(
            ctx,
            step,
            "rejected",
            {
                "kind": ErrorKind.MODEL_EXPIRED,
                "msg": "the modelId expired: the voice was cloned more than 3 days ago and never "
                f"used; `clonequeue retry {claim.batch} --failed` clones it again",
            },
        )
    return request


def _count_chars(request: CloneRequest | AudioRequest) -> None:
    if isinstance(request, CloneRequest):
        CHARS_SUBMITTED.labels("preview").inc(preview_chars(request.contentText))
    else:
        CHARS_SUBMITTED.labels("production").inc(billed_chars(request.contentText))


def _request_for(step: Dispatch, claim: Claimed) -> CloneRequest | AudioRequest:
    if step.is_clone:
        return CloneRequest.model_validate(claim.request)
    return AudioRequest.model_validate({**claim.request, "modelId": claim.model_id})


def _model_expired(ctx: WorkerContext, claim: Claimed) -> bool:
    return not claim.activated and ctx.clock() > claim.clone_completed_at + MODEL_ID_TTL_S


def _record_created(ctx: WorkerContext, step: Dispatch, task: RemoteTask) -> str:
    add_log_context(remote_id=task.id)
    now = ctx.clock()
    latest_first_poll = now + max_countdown_s(ctx.settings)  # `due` only needs a bound
    created = _persist_created(ctx, step, task.id, now=now, next_due=latest_first_poll)
    if created.gen is None:
        log.warning(
            "created remote task %s but job %s moved on (sent again meanwhile): a paid task "
            "its record keeps only as untracked_tasks",
            task.id,
            step.job_id,
            extra={"job": step.job_id, "remote_id": task.id},
        )
        return f"created {task.id}, but the job moved on"
    s = ctx.settings
    delay = first_poll_delay(  # early while calls are scarce: it waits for a spare slot
        created.first_poll_s,
        min_s=s.poll_interval_min_s,
        max_s=max_countdown_s(s),
        jitter=s.poll_jitter_ratio,
        rng=ctx.rng,
    )
    ctx.dispatcher.poll(Dispatch(step.job_id, step.item, created.gen, task.id), countdown=delay)
    log.info("%s created", _kind(step))
    if created.resumed:
        log.info("creates work again: the fleet pause is lifted")
        send_all(ctx.dispatcher, ctx.jobs.unpark(now=now))
    return f"created {task.id}"


def _persist_created(
    ctx: WorkerContext, step: Dispatch, remote_id: str, *, now: float, next_due: float
) -> Created:
    """Store the task id, trying through a Redis outage or a Redis that refuses writes
    (out of memory, its AOF's disk full): it is the only handle on a paid task. An OOM
    went up as an error, and the step ended `unknown` though the answer was in hand."""
    delay, deadline, said = 0.5, time.monotonic() + PERSIST_FOR_S, False
    while True:
        try:
            return ctx.jobs.record_created(
                step.job_id, step.item, step.gen, remote_id, now=now, next_due=next_due
            )
        except redis.exceptions.RedisError as exc:
            if not refuses_writes(exc):
                raise
            if time.monotonic() >= deadline:
                log.error(
                    "created remote task %s for job %s (step %s) but Redis did not take it "
                    "for %.0f s (%s); the watchdog will report the job unknown: this is its "
                    "remote id",
                    remote_id,
                    step.job_id,
                    step.item,
                    PERSIST_FOR_S,
                    type(exc).__name__,
                )
                raise
            if not said:
                said = True
                log.warning(
                    "created remote task %s but Redis does not take its id (%s: %s); "
                    "holding it and trying again for up to %.0f s",
                    remote_id,
                    type(exc).__name__,
                    clip(error_line(exc), 200),
                    PERSIST_FOR_S,
                )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _handle_create_error(ctx: WorkerContext, step: Dispatch, claim: Claimed, exc: ApiError) -> str:
    error = api_error_record(exc)
    if isinstance(exc, OutcomeUnknownError):
        ctx.limiter.failed()
        error["kind"] = ErrorKind.NO_ANSWER
        error["msg"] = (  # never re-sent by us: the operator decides, so name the command
            f"{exc.msg}; check the provider's records, then "
            f"`clonequeue retry {claim.batch} --unknown` sends it again"
        )
        log.error(
            "create of job %s: outcome unknown (%s)",
            step.job_id,
            exc.msg,
            extra={"job": step.job_id},
        )
        return _release(ctx, step, "unknown", error)
    if isinstance(exc, TransientApiError):
        if isinstance(exc, RateLimitedError):
            ctx.limiter.cool_down(exc.retry_after_s or 1.0)
        else:
            ctx.limiter.failed()
        limited = isinstance(exc, RateLimitedError)
        kind = (ErrorKind.RATE_LIMITED if limited else ErrorKind.UNAVAILABLE).value
        error["kind"] = kind  # retried, not refused (a pipeline reads the kind)
        CREATE_RETRIES.labels(kind).inc()
        # A 429 is our pacing's miss, not the provider failing: after its Retry-After,
        # with no exponential backoff (the adaptive rate slows the whole fleet instead).
        delay = retry_delay(
            1 if isinstance(exc, RateLimitedError) else claim.attempts,
            base_s=ctx.settings.retry_base_s,
            max_s=ctx.settings.retry_max_s,
            retry_after_s=exc.retry_after_s,
            rng=ctx.rng,
        )
        if limited:  # the fleet's cooldown holds it; `clonequeue resume` may end that early
            delay = min(delay, COOLDOWN_RECHECK_S)
        else:  # a 429 is the pace's business (said by the limiter); an outage is not
            _say_create_retried(exc, delay)
        return _release(ctx, step, "retry", error, delay=delay)
    if isinstance(exc, FleetBlockedError):
        kind = "auth" if isinstance(exc, AuthenticationError) else "balance"
        log.error("creates paused fleet-wide: %s", exc)
        return _release(
            ctx,
            step,
            "blocked",
            error,
            pause={"kind": kind, "reason": str(exc), "since": ctx.clock()},
        )
    if isinstance(exc, RejectedError) and "expire" in exc.msg.lower() and not step.is_clone:
        error["kind"] = ErrorKind.MODEL_EXPIRED
    return _release(ctx, step, "rejected", error)


def api_error_record(exc: ApiError) -> dict[str, Any]:
    """The API's words, verbatim, for the job record."""
    record: dict[str, Any] = {"kind": ErrorKind.REJECTED.value, "msg": exc.msg}
    if exc.code is not None:
        record["code"] = exc.code
    if exc.http_status is not None:
        record["http_status"] = exc.http_status
    return record


def _release(
    ctx: WorkerContext,
    step: Dispatch,
    outcome: Any,
    error: dict[str, Any],
    *,
    delay: float = 0.0,
    pause: dict[str, Any] | None = None,
) -> str:
    now = ctx.clock()
    queued = outcome in ("retry", "paced") and delay <= max_countdown_s(ctx.settings)
    released = ctx.jobs.release_create(
        step.job_id,
        step.item,
        step.gen,
        outcome,
        error,
        now=now,
        retry_at=now + delay,
        queued=queued,
        pause=pause,
    )
    if released.result == "retry" and queued:
        ctx.dispatcher.create(Dispatch(step.job_id, step.item, released.gen), countdown=delay)
    send_all(ctx.dispatcher, released.dispatches)
    if released.paused:  # a run of unknown creates began a pause (release_create.lua)
        log.error("creates paused fleet-wide: %s", released.paused)
    if released.result in ("failed", "unknown"):
        STEPS_FINISHED.labels(_kind(step), released.result).inc()
    if released.result == "failed":
        log.warning("%s failed: %s", _kind(step), _reason(error))
    if released.result == "retry":
        return f"{error['msg']}; retry in {delay:.1f} s"
    return f"{released.result}: {error['msg']}"


def _paced(ctx: WorkerContext, step: Dispatch, wait: float) -> str:
    """No rate slot free soon: the same message again later; its due entry moves with it."""
    ctx.due.defer(step, until=ctx.clock() + wait)
    if step.remote_id is None:
        ctx.dispatcher.create(step, countdown=wait)
    else:
        ctx.dispatcher.poll(step, countdown=wait)
    return f"rate limit: again in {wait:.1f} s"


def run_poll(ctx: WorkerContext, step: Dispatch) -> str:
    """Query a running remote task once and store what it says.

    A stale or duplicate poll stops before it takes a rate slot or calls the API.
    """
    assert step.remote_id is not None
    check = ctx.jobs.check_poll(step, now=ctx.clock())
    if check.verdict != "ok":
        return check.verdict
    early_by = _early_by(ctx, check)
    spare = early_by > 0 and ctx.limiter.scarce()
    if spare:
        # Likely early while calls are scarce: only a slot nobody else is waiting for.
        if ctx.limiter.acquire(SPARE_WAIT_S):
            return _paced(ctx, step, max(early_by, SPARE_WAIT_S))
    else:
        wait = ctx.limiter.acquire(TURN_WAIT_S)
        if wait:
            return _paced(ctx, step, wait)
    status, result, retry_after_s = _poll_once(ctx, step)
    now = ctx.clock()
    polled = ctx.jobs.record_poll(
        step.job_id,
        step.item,
        step.gen,
        status,
        result,
        now=now,
        next_due=now + ctx.settings.poll_interval_max_s,
    )
    add_log_context(batch=polled.batch or None)
    if polled.refused == 1:  # the first refusal: say so once, not at every poll
        log.warning(
            "%s %s: the API refused the poll (%s); polling on, it fails as task_lost after "
            "%g s of refusals",
            _kind(step),
            step.remote_id,
            result["last_status"],
            ctx.settings.task_lost_after_s,
        )
    if polled.result == "again":
        if retry_after_s is not None:  # a 429 said nothing of the task: ask again then
            # (at most the cadence's slow end, where its `due` entry expects it; a long
            # Retry-After pauses the fleet, and the poll then waits that out for a slot)
            delay = min(retry_after_s, ctx.settings.poll_interval_max_s)
        else:
            delay = _poll_delay(ctx, polled.polls, spare_early_by=early_by if spare else 0.0)
        ctx.dispatcher.poll(
            Dispatch(step.job_id, step.item, polled.gen, step.remote_id), countdown=delay
        )
        return f"{result['last_status']}; next poll in {delay:.1f} s"
    send_all(ctx.dispatcher, polled.dispatches)
    if polled.result == "done":
        if status == "running":  # the store ended it (record_poll.lua says how)
            status, result = "failed", {"error": _ended_by_store(ctx, result)}
        ctx.limiter.useful()
        STEPS_FINISHED.labels(_kind(step), status).inc()
        if status == "failed":
            log.warning("%s failed: %s", _kind(step), _reason(result.get("error")))
        else:
            log.info("%s %s", _kind(step), status)
        return str(status)
    return polled.result


def _ended_by_store(ctx: WorkerContext, result: dict[str, Any]) -> dict[str, str]:
    """What ended a step whose task was still running, for the log line."""
    if result.get("refused"):
        lost_s = ctx.settings.task_lost_after_s
        msg = f"every poll refused for {lost_s:g} s ({result['last_status']}): the API lost it"
        return {"kind": ErrorKind.TASK_LOST.value, "msg": msg}
    msg = f"still {result['last_status']} when CLONEQUEUE_JOB_DEADLINE_S passed"
    return {"kind": ErrorKind.DEADLINE.value, "msg": msg}


def _reason(error: dict[str, Any] | None) -> str:
    """The API's reason for a failed step, with its code when it gave one."""
    error = error or {}
    msg = str(error.get("msg") or "no reason given")
    return f"{msg} (code {error['code']})" if error.get("code") is not None else msg


def step_kind(item: str) -> str:
    """``clone`` or ``audio``: a step's kind as logs and metrics name it."""
    return "clone" if item == "c" else "audio"


def _kind(step: Dispatch) -> str:
    return step_kind(step.item)


# The query answer's ``model`` for each kind of task (the API reference's names).
TASK_MODELS = {True: "soundCloningClone", False: "soundCloningAudio"}


def _poll_once(ctx: WorkerContext, step: Dispatch) -> tuple[Any, dict[str, Any], float | None]:
    """The task's status and what to record; and for a 429, its Retry-After (the poll
    comes again then, not at the cadence: issue 15's bench, a batch's last audio
    polled 10 s after the 429 that turned its first poll away).

    A refusal (a 404 "not found", any other rejection) and an answer about another
    task are recorded as ``refused``, never as this task's result: a restarted stand-in
    API handed a task's id out again, and its answer gave one job another's voice."""
    assert step.remote_id is not None
    try:
        task = ctx.client.get_task(step.remote_id)
    except RejectedError as exc:
        return _refused(str(exc))
    except ClonequeueError as exc:  # ApiError or ConfigError: poll again; the deadline ends it
        retry_after_s = None
        if isinstance(exc, RateLimitedError):
            retry_after_s = exc.retry_after_s or 1.0
            ctx.limiter.cool_down(retry_after_s)
        else:
            ctx.limiter.failed()
            _say_unanswered(exc)
            if isinstance(exc, AuthenticationError):
                _pause_for_refused_polls(ctx, exc)
        return "running", {"last_status": f"error: {exc}"[:200], "unanswered": True}, retry_after_s
    _lift_pause_of_refused_polls(ctx)
    other = _other_task(task, step)
    if other:
        return _refused(other)
    result: dict[str, Any] = {"last_status": task.status}
    if task.is_completed:
        result.update(
            model_id=task.modelId, audio_url=task.audioUrl, subtitle_file=task.subtitleFile
        )
        return "completed", {k: v for k, v in result.items() if v is not None}, None
    if task.is_failed:
        result["error"] = {"kind": ErrorKind.REMOTE.value, "msg": task.error_text()}
        return "failed", result, None
    _note_undocumented(step, task.status)
    return "running", result, None


_DOCUMENTED = frozenset(TaskStatus)
_undocumented_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
UNDOCUMENTED_KEPT = 10_000  # (task, status) pairs remembered per process, to say each once


def _note_undocumented(step: Dispatch, status: str) -> None:
    """Say once per process and task that a status is not in the reference: polled on
    as running (README, "Assumptions"), but an operator should know why it waits."""
    if status.lower() in _DOCUMENTED:
        return
    key = (str(step.remote_id), status)
    if key in _undocumented_seen:
        return
    _undocumented_seen[key] = None
    if len(_undocumented_seen) > UNDOCUMENTED_KEPT:
        _undocumented_seen.popitem(last=False)
    log.warning(
        "%s %s: status %r, which the API reference does not list; polling on as running "
        "until it ends or CLONEQUEUE_JOB_DEADLINE_S passes",
        _kind(step),
        step.remote_id,
        status[:100],
    )


POLL_PAUSE_CHECK_S = 5.0  # how often an answered poll looks for a pause the polls set
_poll_pause_checked: dict[str, float] = {}  # namespace -> when this process last looked
_LIFT_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _pause_for_refused_polls(ctx: WorkerContext, exc: AuthenticationError) -> None:
    """A token revoked once every create was made: only polls meet it, and the fleet
    went on in silence until the job deadline failed tasks that may be done (QA pass).
    Pause creates as a create's 401 does: `status` and the exporter's alert show it,
    and a create that gets its task, `resume`, or a poll answered again lifts it."""
    keys = ctx.jobs.keys
    reason = f"polls are refused: {exc}"
    pause = {"kind": "auth", "reason": reason, "since": ctx.clock(), "by": "polls"}
    if ctx.jobs.client.set(keys.paused, json.dumps(pause), nx=True):
        log.error("creates paused fleet-wide: %s", reason)


def _lift_pause_of_refused_polls(ctx: WorkerContext) -> None:
    """A poll answered: a pause the polls set is lifted, whichever process set it (only
    that kind: a create's, or `clonequeue pause`, stays). Looked for every few seconds
    per process, not on each poll: polls are the hot path."""
    keys = ctx.jobs.keys
    now = time.monotonic()
    if now - _poll_pause_checked.get(keys.ns, -POLL_PAUSE_CHECK_S) < POLL_PAUSE_CHECK_S:
        return
    _poll_pause_checked[keys.ns] = now
    raw = ctx.jobs.client.get(keys.paused)
    if not raw or json.loads(raw).get("by") != "polls":
        return
    if ctx.jobs.client.eval(_LIFT_IF_SAME, 1, keys.paused, raw):
        log.info("polls are answered again: the fleet pause is lifted")
        send_all(ctx.dispatcher, ctx.jobs.unpark(now=ctx.clock()))


SAY_EVERY_S = 60.0  # a repeated warning (polls or creates getting no answer) at most this often
_said: dict[str, list[float]] = {}  # what -> [when last said, how many since]


def _due_to_say(key: str) -> tuple[int, float] | None:
    """Count one more of ``key``; at most once a minute per key, (how many, over how many
    seconds) to say now, else None."""
    now = time.monotonic()
    said = _said.setdefault(key, [-SAY_EVERY_S, 0])
    said[1] += 1
    if now - said[0] < SAY_EVERY_S:
        return None
    due = (int(said[1]), min(now - said[0], SAY_EVERY_S))
    said[0], said[1] = now, 0
    return due


def _say_unanswered(exc: ClonequeueError) -> None:
    """Say, at most once a minute per kind of error, that polls get no usable answer: a
    token revoked once every create was made (401 on every poll) or an answer we cannot
    read left tasks polled in silence until the job deadline failed them."""
    due = _due_to_say(f"poll:{type(exc).__name__}")
    if due is not None:
        log.warning(
            "polls get no usable answer (%d in the last %.0f s; this one: %s); the tasks are "
            "polled on until they answer or CLONEQUEUE_JOB_DEADLINE_S ends them",
            *due,
            exc,
        )


def _say_create_retried(exc: ClonequeueError, delay: float) -> None:
    """Say, at most once a minute per kind, that creates are being retried: an API down
    (5xx, refused) left every job `pending` with nothing in any log (operator QA pass)."""
    due = _due_to_say(f"create:{type(exc).__name__}")
    if due is not None:
        log.warning(
            "creates get no task and are retried (%d in the last %.0f s; this one: %s; "
            "next in %.0f s); each job gives up after CLONEQUEUE_SUBMIT_MAX_ATTEMPTS tries",
            *due,
            exc,
            delay,
        )


def _refused(why: str) -> tuple[str, dict[str, Any], None]:
    """A poll that says nothing of the task but that the API no longer answers for it."""
    return "running", {"last_status": f"refused: {why}"[:200], "refused": True}, None


def _other_task(task: RemoteTask, step: Dispatch) -> str:
    """Why an answer is about another task than the one asked for ('' if it is ours).
    A ``model`` the reference does not name is let through (unknown values are tolerated)."""
    if task.id != step.remote_id:
        return f"the API answered for task {task.id}, not {step.remote_id}"
    expected = TASK_MODELS[step.is_clone]
    if task.model in TASK_MODELS.values() and task.model != expected:
        return f"the API answered with a {task.model} task, not a {expected} one"
    return ""


def _early_by(ctx: WorkerContext, check: PollCheck) -> float:
    """How long before its task is likely done a poll comes (<= 0: not early).

    Likely done: older than the batch's learned first-poll delay and than the slow
    end of the cadence (a task still running then is polled at that interval anyway).
    A task of unknown age counts as done.
    """
    if check.age_s is None:
        return 0.0
    likely_done_s = max(ctx.settings.poll_interval_max_s, check.first_poll_s or 0.0)
    return likely_done_s - check.age_s


def _cadence_min_s(ctx: WorkerContext) -> float:
    """The shortest interval between polls of a running task: the cadence's slow end
    while API calls are scarce (see ApiRateLimiter.scarce), judged over the last
    ``REPOLL_SCARCE_S``, not the minute first polls go by: once calls are spare again
    (a batch's last tasks) a task polled a little early is not left 10 s more (issue
    15's bench: the last audios, done a second after their first poll, ended the batch
    9 s later)."""
    s = ctx.settings
    scarce = ctx.limiter.scarce(REPOLL_SCARCE_S)
    return s.poll_interval_max_s if scarce else s.poll_interval_min_s


def _poll_delay(ctx: WorkerContext, polls_done: int, *, spare_early_by: float) -> float:
    """The next poll of a task still running. One that went on a spare slot before its
    task was likely done (``spare_early_by`` > 0) comes again after the provider's
    shortest interval, or when the task is likely done if that is later: that poll
    finds the end either way, so a longer wait saves no call, only leaves a batch's
    last tasks waiting (issue 15's bench: polled a second before its end, an audio
    was polled again 10 s on, 7.5 s with the cadence's back-off)."""
    s = ctx.settings
    if spare_early_by > 0:
        return max(s.poll_interval_min_s, spare_early_by)
    return poll_delay(
        polls_done,
        min_s=_cadence_min_s(ctx),
        max_s=s.poll_interval_max_s,
        factor=s.poll_backoff_factor,
        jitter=s.poll_jitter_ratio,
        rng=ctx.rng,
    )
