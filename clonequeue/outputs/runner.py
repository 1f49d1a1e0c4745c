"""What the results tasks do, as plain functions over a context (testable without Celery).

* :func:`run_pass` (beat, every ``RESULTS_INTERVAL_S``): read new terminal-job entries
  from ``<ns>:events`` with the consumer group ``results`` (and, with XAUTOCLAIM,
  those a dead consumer read but never acknowledged), record their deliveries and
  downloads, publish their tasks, acknowledge; then re-drive every item whose next
  attempt is overdue.
* :func:`deliver_webhook` and :func:`fetch_artifact`: claim one item, make one
  attempt, record it, schedule the next (a countdown when it is short; the pass
  otherwise). At most ``WEBHOOK_CONCURRENCY`` / ``ARTIFACT_CONCURRENCY`` of each run
  at once in a worker process; one more waits outside, holding no claim.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import urllib3

from clonequeue.config import Settings
from clonequeue.config.settings import webhook_secrets
from clonequeue.logs import log_context
from clonequeue.outputs import artifacts as art
from clonequeue.outputs import webhooks as wh
from clonequeue.outputs.items import ItemStore
from clonequeue.outputs.keys import ARTIFACT, GROUP, WEBHOOK, ResultKeys
from clonequeue.outputs.metrics import ARTIFACT_BYTES, ARTIFACT_DOWNLOADS, WEBHOOK_ATTEMPTS
from clonequeue.outputs.plan import BatchTargets, Planner
from clonequeue.outputs.targets import endpoint_host

log = logging.getLogger(__name__)

READ_COUNT = 500  # stream entries per read...
PASS_READ_S = 1.0  # ...read again while a read comes back full, for up to this long
REDRIVE_LIMIT = 500  # overdue items re-driven per kind and pass
CLAIM_IDLE_MS = 60_000  # an entry read this long ago and not acknowledged: its reader died
MAX_COUNTDOWN_S = 60.0  # longer waits are left to the pass

# publish(kind, item id, countdown or None)
Publish = Callable[[str, str, "float | None"], None]


@dataclass
class ResultsContext:
    settings: Settings
    client: redis.Redis
    publish: Publish
    clock: Callable[[], float] = time.time
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(maxsize=16))
    slots: threading.BoundedSemaphore | None = None  # downloads at once
    claim_idle_ms: int = CLAIM_IDLE_MS
    webhook_slots: threading.BoundedSemaphore | None = None  # webhook attempts at once

    def __post_init__(self) -> None:
        self.keys = ResultKeys(self.settings.namespace)
        retention = int(self.settings.retention_s)
        self.webhooks = ItemStore(self.client, self.keys, WEBHOOK, retention)
        self.artifacts = ItemStore(self.client, self.keys, ARTIFACT, retention)
        self.planner = Planner(self.client, self.keys, self.settings, self.webhooks, self.artifacts)
        if self.slots is None:
            self.slots = threading.BoundedSemaphore(self.settings.artifact_concurrency)
        if self.webhook_slots is None:
            self.webhook_slots = threading.BoundedSemaphore(self.settings.webhook_concurrency)

    def store(self, kind: str) -> ItemStore:
        return self.webhooks if kind == WEBHOOK else self.artifacts

    @property
    def grace_s(self) -> float:
        """How long past its time a message may run before the pass sends another."""
        return max(3 * self.settings.results_interval_s, 1.0)

    @property
    def max_countdown_s(self) -> float:
        """Longest countdown given: a fifth of the visibility timeout (a Redis-broker
        message held longer is delivered twice, kombu #337), at most a minute."""
        return min(MAX_COUNTDOWN_S, self.settings.visibility_timeout_s / 5)

    @property
    def download_budget_s(self) -> float:
        """How long one download may run: its lease less a read's timeout (the longest a
        check between reads can come late) and 5 s to record it, at least half the lease."""
        lease = self.settings.artifact_lease_s
        return max(lease - self.settings.artifact_timeout_s - 5, lease / 2)

    def lease_s(self, kind: str) -> float:
        """A claim's lease. A webhook attempt ends within WEBHOOK_TIMEOUT_S whatever the
        receiver does (webhooks.send: one deadline), so twice that plus 5 s is left for
        the claim, the record and a busy machine; a lease that runs out means a dead
        worker, never a slow receiver (whose delivery was then sent again)."""
        if kind == WEBHOOK:
            return 2 * self.settings.webhook_timeout_s + 5
        return self.settings.artifact_lease_s


# --- the pass ---------------------------------------------------------------------------------


def ensure_group(ctx: ResultsContext) -> None:
    """The consumer group, from the stream's start: no finished job is missed."""
    try:
        ctx.client.xgroup_create(ctx.keys.events, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def run_pass(ctx: ResultsContext) -> str:
    """Take in new terminal-job entries for up to ``PASS_READ_S`` (``READ_COUNT`` at a
    time), then re-drive what is overdue. One pass of 500 entries every 2 s took a
    cancelled 100,000-job batch's ~130,000 entries 9 minutes, and every other batch's
    webhooks waited behind them (QA pass)."""
    counts: Counter[str] = Counter()
    ensure_group(ctx)
    stream = ctx.keys.events
    _, claimed, *_ = ctx.client.xautoclaim(
        stream, GROUP, ctx.consumer, ctx.claim_idle_ms, "0-0", count=READ_COUNT
    )
    counts["reclaimed"] = len(claimed)
    known: dict[str, BatchTargets] = {}
    take_in(ctx, list(claimed), known, counts)
    stop_at = time.monotonic() + PASS_READ_S
    while True:
        entries: list[Any] = []
        for _, batch in cast(
            list[Any],
            ctx.client.xreadgroup(GROUP, ctx.consumer, {stream: ">"}, count=READ_COUNT) or [],
        ):
            entries += batch
        take_in(ctx, entries, known, counts)
        if len(entries) < READ_COUNT or time.monotonic() >= stop_at:
            break
    for kind in (WEBHOOK, ARTIFACT):
        counts[f"{kind}s re-driven"] = redrive(ctx, kind)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    if summary:
        log.info("results pass: %s", summary)
    return summary or "nothing to do"


def take_in(
    ctx: ResultsContext,
    entries: list[Any],
    known: dict[str, BatchTargets],
    counts: Counter[str],
) -> None:
    """Record what each entry calls for, publish it, then acknowledge them all at once
    (an entry taken in twice, its reader having died before the XACK, adds nothing:
    its items exist already)."""
    for entry_id, fields in entries:
        if fields:  # an entry trimmed from the stream comes back empty
            finished = ctx.planner.job_finished(entry_id, fields, now=ctx.clock(), known=known)
            for kind, item_id in finished:
                ctx.publish(kind, item_id, None)
                counts[f"{kind}s recorded"] += 1
    if entries:
        ctx.client.xack(ctx.keys.events, GROUP, *(entry_id for entry_id, _ in entries))
    counts["events"] += len(entries)


def redrive(ctx: ResultsContext, kind: str) -> int:
    """Publish a message for every item whose attempt is due and has none on its way."""
    store = ctx.store(kind)
    now = ctx.clock()
    driven = 0
    for item_id in store.overdue(now=now, limit=REDRIVE_LIMIT):
        if store.get(item_id) is None:
            store.forget(item_id)
            continue
        if store.postpone_if_overdue(
            item_id, now=now, due_at=now + ctx.grace_s + ctx.lease_s(kind)
        ):
            ctx.publish(kind, item_id, None)
            driven += 1
    return driven


def _retry_later(
    ctx: ResultsContext,
    kind: str,
    item_id: str,
    claim: int,
    record: dict[str, Any],
    wait: float,
    error: str | None,
) -> None:
    """Record the attempt and make the item due again after ``wait``: a short wait is also
    published as a countdown (its due score then leaves the message a grace period), a
    long one only waits in the due set for the re-drive."""
    next_at = ctx.clock() + wait
    countdown = wait <= ctx.max_countdown_s
    due = next_at + ctx.grace_s if countdown else next_at
    ctx.store(kind).finish(
        item_id, record, claim=claim, state="pending", next_at=next_at, due_at=due,
        fields={"error": error},
    )  # fmt: skip
    if countdown:
        ctx.publish(kind, item_id, wait)


# --- one webhook attempt ---------------------------------------------------------------------


def deliver_webhook(ctx: ResultsContext, item_id: str) -> str:
    """One attempt of a delivery, if a slot is free: past ``WEBHOOK_CONCURRENCY`` it
    waits outside, unclaimed (no lease runs out while it waits), and comes back in a
    second. Uncapped, 24 deliveries to a receiver that slept 8 s took a worker's
    threads and delayed every other batch's polls (QA)."""
    return _within_cap(ctx, ctx.webhook_slots, WEBHOOK, item_id, _deliver)


def _deliver(ctx: ResultsContext, item_id: str) -> str:
    store = ctx.webhooks
    doc = store.claim(item_id, now=ctx.clock(), lease_s=ctx.lease_s(WEBHOOK), grace_s=ctx.grace_s)
    if doc is None:
        return "not mine (done, busy or not yet due)"
    with log_context(job=doc.get("job"), batch=doc.get("batch")):
        return _attempt_and_record(ctx, item_id, doc)


def _attempt_and_record(ctx: ResultsContext, item_id: str, doc: dict[str, Any]) -> str:
    store = ctx.webhooks
    settings = ctx.settings
    url = doc["url"]
    to = f"webhook {item_id} to {endpoint_host(url)}"
    started = ctx.clock()
    if ctx.client.sismember(ctx.keys.disabled_endpoints, url):
        # Nothing is sent: recorded as disabled, with no attempt and no try counted.
        reason = "endpoint disabled: it answered 410 Gone before"
        store.finish(
            item_id, {}, claim=doc["claim"], state="disabled",
            fields={"error": f"{reason}; nothing sent", "tries": doc.get("tries", 0),
                    "round_tries": doc.get("round_tries", 0), "attempts": doc.get("attempts")},
        )  # fmt: skip
        return f"skipped: {reason}"
    try:
        attempt = _attempt(ctx, item_id, doc, started)
    except Exception as exc:  # recorded, not raised: else `sending` for ever
        # Not the receiver's answer (webhooks.send judges those): a record or a URL no
        # attempt can send fails the same way again, so it stops; an OSError of this
        # machine's (no file descriptor left) can pass, so it follows the schedule.
        log.exception("%s: the attempt raised", to)
        transient = isinstance(exc, OSError)
        attempt = wh.Attempt(
            "retry" if transient else "stop",
            error=f"{type(exc).__name__}: {exc} (an error in clonequeue, not an answer of "
            f"the receiver; {'retried' if transient else 'not retried'}: see the worker's log)",
        )
    record = attempt.record(started)
    verdict: wh.Verdict = attempt.verdict
    if attempt.verdict == "delivered":
        store.finish(  # the body is not needed any more: ~0.5-20 KB less per job
            item_id,
            record,
            claim=doc["claim"],
            state="done",
            fields={"delivered_at": ctx.clock(), "body": None},
        )
    elif attempt.verdict == "disable":
        ctx.client.sadd(ctx.keys.disabled_endpoints, url)
        store.finish(
            item_id, record, claim=doc["claim"], state="disabled", fields={"error": attempt.error}
        )
        log.warning("%s: endpoint disabled (410 Gone); nothing more is sent to it", to)
    elif attempt.verdict == "stop":
        store.finish(
            item_id, record, claim=doc["claim"], state="failed", fields={"error": attempt.error}
        )
        log.warning("%s: not delivered: %s", to, attempt.error)
    else:
        wait = wh.next_wait(
            settings.webhook_retry_schedule_s, doc.get("round_tries", 0) + 1, attempt.retry_after_s
        )
        if wait is None:
            verdict = record["verdict"] = "gave_up"
            reason = f"gave up after {doc.get('tries', 0) + 1} attempts; last: {attempt.error}"
            store.finish(
                item_id, record, claim=doc["claim"], state="failed", fields={"error": reason}
            )
            log.warning("%s: %s", to, reason)
        else:
            _retry_later(ctx, WEBHOOK, item_id, doc["claim"], record, wait, attempt.error)
    WEBHOOK_ATTEMPTS.labels(verdict).inc()
    return f"{verdict} {attempt.status or attempt.error or ''}".strip()


def _attempt(ctx: ResultsContext, item_id: str, doc: dict[str, Any], started: float) -> wh.Attempt:
    settings = ctx.settings
    secret = settings.webhook_secret
    return wh.send(
        doc["url"],
        item_id,
        doc["body"],
        webhook_secrets(secret.get_secret_value()) if secret else [],
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.webhook_allow_private,
        now=started,
        batch=doc["batch"],
    )


# --- one download ----------------------------------------------------------------------------


def fetch_artifact(ctx: ResultsContext, item_id: str) -> str:
    return _within_cap(ctx, ctx.slots, ARTIFACT, item_id, _fetch)


def _within_cap(
    ctx: ResultsContext,
    slots: threading.BoundedSemaphore | None,
    kind: str,
    item_id: str,
    attempt: Callable[[ResultsContext, str], str],
) -> str:
    """``attempt`` if one of ``slots`` is free; else the item waits outside, holding no
    claim (no lease runs out meanwhile), and comes back in a second."""
    assert slots is not None
    if not slots.acquire(blocking=False):
        ctx.publish(kind, item_id, 1.0)
        return f"all {kind} slots busy; again in 1 s"
    try:
        return attempt(ctx, item_id)
    finally:
        slots.release()


def _fetch(ctx: ResultsContext, item_id: str) -> str:
    store = ctx.artifacts
    doc = store.claim(item_id, now=ctx.clock(), lease_s=ctx.lease_s(ARTIFACT), grace_s=ctx.grace_s)
    if doc is None:
        return "not mine (done, busy or not yet due)"
    started = ctx.clock()
    if (
        doc.get("sha256")
        and doc.get("url") == doc["dest"]
        and art.is_stored(doc["dest"], doc["sha256"], doc["bytes"])
    ):
        store.finish(
            item_id,
            {
                "at": round(started, 3),
                "verdict": "stored",
                "note": "already stored, checksum matches",
            },
            claim=doc["claim"],
            state="done",
        )
        ARTIFACT_DOWNLOADS.labels("kept").inc()
        return "already stored"
    try:
        stored = art.download(
            ctx.http,
            doc["source"],
            doc["dest"],
            timeout_s=ctx.settings.artifact_timeout_s,
            give_up_after_s=ctx.download_budget_s,
        )
    except art.DownloadError as exc:
        record = {
            "at": round(started, 3),
            "verdict": "retry" if exc.retry else "stop",
            "error": exc.reason,
        }
        wait = (
            wh.next_wait(
                ctx.settings.artifact_retry_schedule_s, doc.get("round_tries", 0) + 1, None
            )
            if exc.retry
            else None
        )
        if wait is None:
            reason = (
                exc.reason
                if not exc.retry
                else f"gave up after {doc.get('tries', 0) + 1} attempts; last: {exc.reason}"
            )
            store.finish(
                item_id, record, claim=doc["claim"], state="failed", fields={"error": reason}
            )
            log.warning("artifact %s: failed: %s", item_id, reason)
            ARTIFACT_DOWNLOADS.labels("failed").inc()
            return f"failed: {reason}"
        _retry_later(ctx, ARTIFACT, item_id, doc["claim"], record, wait, exc.reason)
        ARTIFACT_DOWNLOADS.labels("retry").inc()
        return f"retry in {wait:g} s: {exc.reason}"
    except (ImportError, ValueError) as exc:  # a store this worker cannot open (no s3fs?)
        reason = f"store: {exc}"
        store.finish(item_id, {"at": round(started, 3), "verdict": "stop", "error": reason},
                     claim=doc["claim"], state="failed", fields={"error": reason})  # fmt: skip
        ARTIFACT_DOWNLOADS.labels("failed").inc()
        log.error("artifact %s: %s", item_id, reason)
        return f"failed: {reason}"
    except OSError as exc:  # the store itself (disk full, S3 refused): retried like the source
        record = {"at": round(started, 3), "verdict": "retry", "error": f"store: {exc}"}
        wait = wh.next_wait(
            ctx.settings.artifact_retry_schedule_s, doc.get("round_tries", 0) + 1, None
        )
        if wait is None:
            store.finish(
                item_id,
                record,
                claim=doc["claim"],
                state="failed",
                fields={"error": f"store: {exc}"},
            )
            ARTIFACT_DOWNLOADS.labels("failed").inc()
            return "failed: store"
        _retry_later(ctx, ARTIFACT, item_id, doc["claim"], record, wait, f"store: {exc}")
        ARTIFACT_DOWNLOADS.labels("retry").inc()
        return "retry: store"
    record = {
        "at": round(started, 3),
        "verdict": "stored",
        "bytes": stored.bytes,
        "ms": int(stored.seconds * 1000),
    }
    store.finish(
        item_id, record, claim=doc["claim"], state="done", fields={**stored.fields(), "error": None}
    )
    ARTIFACT_DOWNLOADS.labels("stored").inc()
    ARTIFACT_BYTES.inc(stored.bytes)
    return f"stored {stored.bytes} bytes"
