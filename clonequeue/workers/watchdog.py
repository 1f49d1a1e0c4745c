"""The watchdog (run by Celery beat, on a queue of its own): nothing accepted may stall.

Each pass:
1. re-drives steps overdue in the due-index (a message lost with a killed worker, a
   Redis crash, a task that raised before its claim, a producer that died before
   publishing): a fresh message with a new generation, so a late original is dropped
   as stale; a step still `submitting` past its lease becomes `unknown`;
2. while the fleet is paused for balance or the token, lets one parked step
   through as a probe (its success lifts the pause);
3. releases parked steps into free slots.

One pass at a time: the lock carries a fencing token that every re-drive checks in
its own script, so a pass that outlived its lock changes nothing, and each re-drive
checks the step is still overdue, so two passes never re-drive a step twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from clonequeue.dispatch.bounds import watchdog_lock_s
from clonequeue.dispatch.dispatcher import send_all
from clonequeue.dispatch.due import HEAD_SLACK_S
from clonequeue.dispatch.queues import QueueNames
from clonequeue.metrics import STEPS_FINISHED
from clonequeue.store.presence import Presence
from clonequeue.store.safety import DataMarker
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.steps import step_kind

log = logging.getLogger(__name__)

REDRIVE_BATCH = 1000  # steps re-driven per pass, at most
BUSY_QUEUE_DEPTH = 100  # a queue longer than this is backlogged, not losing messages


def run_watchdog(ctx: WorkerContext, queues: QueueNames, *, min_gap_s: float | None = None) -> str:
    """One watchdog pass, unless one runs or ran less than ``min_gap_s`` ago.

    The gap (half the interval by default) makes beat messages that piled up while no
    worker ran cost one pass, not one each.
    """
    s = ctx.settings
    gap_s = s.watchdog_interval_s / 2 if min_gap_s is None else min_gap_s
    token = ctx.jobs.lock_watchdog(now=ctx.clock(), lock_ms=int(watchdog_lock_s(s) * 1000))
    if token is None:
        return "another watchdog pass is running or just ran"
    try:
        Presence(ctx.jobs.client, ctx.jobs.keys).watchdog_ran(now=ctx.clock())
        _say_if_data_lost(ctx)
        counts = _redrive_overdue(ctx, queues, token)
        now = ctx.clock()
        probes = ctx.jobs.probe(now=now, interval_s=s.pause_probe_interval_s)
        send_all(ctx.dispatcher, probes)
        unparked = ctx.jobs.unpark(now=now)
        send_all(ctx.dispatcher, unparked)
    finally:
        ctx.jobs.unlock_watchdog(token, now=ctx.clock(), min_gap_ms=int(gap_s * 1000))
    counts.update(probed=len(probes), unparked=len(unparked))
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    if summary:
        log.info("watchdog: %s", summary)
    return summary or "all on time"


_markers: dict[str, DataMarker] = {}  # per namespace: what this process saw


def _say_if_data_lost(ctx: WorkerContext) -> None:
    """An error when Redis came back without the data this process saw (QA pass: a Redis
    restarted empty mid-batch went unnoticed; the batch's jobs were gone in silence)."""
    keys = ctx.jobs.keys
    marker = _markers.setdefault(keys.ns, DataMarker(ctx.jobs.client, keys.data_marker))
    seen = marker.lost(ctx.clock())
    if seen is None:
        return
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(seen.split(":")[0])))
    log.error(
        "Redis no longer holds the data this worker saw (its marker, set %s, is gone): it "
        "restarted without its AOF or snapshot, or another Redis answers at this address. "
        "The job records written before are gone with it; work in flight stops here. Check "
        'its persistence (README, "Redis: the settings that matter"), then submit the '
        "lost rows again (creates already made were paid)",
        since,
    )


def _busy_queues(ctx: WorkerContext, queues: QueueNames) -> list[str]:
    depths = ctx.dispatcher.queue_depths()
    named = (("submit", queues.submit), ("produce", queues.produce), ("poll", queues.poll))
    return [short for short, name in named if depths.get(name, 0) > BUSY_QUEUE_DEPTH]


def _redrive_overdue(ctx: WorkerContext, queues: QueueNames, token: str) -> Counter[str]:
    busy = _busy_queues(ctx, queues)
    counts: Counter[str] = Counter()
    now = ctx.clock()
    lease = ctx.settings.poll_interval_max_s
    for overdue in ctx.due.overdue(now=now, limit=REDRIVE_BATCH):
        what, step = ctx.jobs.redrive(
            overdue.job_id,
            overdue.item,
            now=now,
            lease_s=lease,
            busy_queues=busy,
            token=token,
            slack_s=HEAD_SLACK_S,
        )
        counts[what] += 1
        if what == "fenced":
            log.warning("watchdog: this pass outlived its lock; the next one takes over")
            break
        if step is not None:
            send_all(ctx.dispatcher, [step])
        if what == "unknown":  # counted as a worker's own unknown is (the alert reads it)
            STEPS_FINISHED.labels(step_kind(overdue.item), "unknown").inc()
            log.error(
                "job %s: the worker sending its create was lost; outcome unknown",
                overdue.job_id,
                extra={"job": overdue.job_id},
            )
    return counts
