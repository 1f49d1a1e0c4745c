"""The watchdog (run by Celery beat): nothing accepted may stall.

Each run:
1. re-drives steps overdue in `due` (a message lost with a killed worker or a
   Redis restart): a fresh message with a new generation, so a late original is
   dropped as stale; a step still `submitting` past its lease becomes `unknown`;
2. while the fleet is paused for balance or the token, lets one parked step
   through as a probe (its success lifts the pause);
3. releases parked steps into free slots;
4. re-publishes create messages a crashed producer never sent (batch repair).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter

from clonequeue.store.records import CLONE_ITEM
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.queues import QueueNames
from clonequeue.workers.steps import dispatch_all

log = logging.getLogger(__name__)

REDRIVE_BATCH = 1000  # steps re-driven per run, at most
BUSY_QUEUE_DEPTH = 100  # a queue longer than this is backlogged, not losing messages


def run_watchdog(ctx: WorkerContext, queues: QueueNames) -> str:
    """One watchdog pass; a Redis lock keeps two from overlapping."""
    client, keys = ctx.jobs.client, ctx.jobs.keys
    token = uuid.uuid4().hex
    lock_ms = int(max(ctx.settings.watchdog_interval_s * 3, 30) * 1000)
    if not client.set(keys.watchdog_lock, token, nx=True, px=lock_ms):
        return "another watchdog pass is running"
    try:
        counts = _redrive_overdue(ctx, queues)
        now = ctx.clock()
        probes = ctx.jobs.probe(now=now, interval_s=ctx.settings.pause_probe_interval_s)
        dispatch_all(ctx, probes)
        unparked = ctx.jobs.unpark(now=now)
        dispatch_all(ctx, unparked)
        repaired = repair_batches(ctx)
    finally:
        if client.get(keys.watchdog_lock) == token:
            client.delete(keys.watchdog_lock)
    counts.update(probed=len(probes), unparked=len(unparked), repaired=repaired)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    if summary:
        log.info("watchdog: %s", summary)
    return summary or "all on time"


def _redrive_overdue(ctx: WorkerContext, queues: QueueNames) -> Counter[str]:
    depths = ctx.dispatcher.queue_depths()
    busy = {name: depth > BUSY_QUEUE_DEPTH for name, depth in depths.items()}
    counts: Counter[str] = Counter()
    now = ctx.clock()
    lease = ctx.settings.poll_interval_max_s
    for job_id, item, due_at in ctx.jobs.overdue(now=now, limit=REDRIVE_BATCH):
        # A backlog explains a late message, but only for so long: one held by a
        # killed worker is not in the queue, and by the visibility timeout it would
        # have come back from the broker had it been going to.
        queue_busy = now - due_at < ctx.settings.visibility_timeout_s and (
            busy.get(queues.poll, False) or busy.get(queues.for_create(item == CLONE_ITEM), False)
        )
        what, step = ctx.jobs.redrive(job_id, item, now=now, lease_s=lease, queue_busy=queue_busy)
        counts[what] += 1
        if step is not None:
            dispatch_all(ctx, [step])
        if what == "unknown":
            log.error(
                "job %s: the worker sending its create was lost; outcome unknown",
                job_id,
                extra={"job": job_id},
            )
    return counts


def repair_batches(ctx: WorkerContext) -> int:
    """Publish creates that a crashed producer recorded but never sent (see producers)."""
    from clonequeue.producers.repair import repair_unsent

    return repair_unsent(ctx.batches, ctx.dispatcher, now=ctx.clock())
