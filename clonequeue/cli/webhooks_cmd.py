"""``clonequeue webhooks BATCH``: every delivery and its attempts; ``--redeliver`` sends again."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import redis
import redis.exceptions
import typer

from clonequeue.batch import Batch
from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_JOBS_FAILED
from clonequeue.config.redis_urls import shown_url
from clonequeue.logs import mask_query_values
from clonequeue.outputs.keys import GROUP, ResultKeys
from clonequeue.services import Services
from clonequeue.wording import plural


def webhooks(
    batch: str = typer.Argument(..., help="Batch id."),
    redeliver: bool = typer.Option(
        False,
        "--redeliver",
        help="Send the failed deliveries again (and those to an endpoint that answered 410, "
        "which is enabled again), each with the webhook-id it had (receivers dedupe on it).",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="One JSON object per delivery (JSON Lines; none: no line, and a note on stderr "
        "says why).",
    ),
) -> None:
    """List a batch's webhook deliveries: event, job, state, attempts, the last answer.

    States: pending (next attempt due at `next`), sending, done, failed (gave up or a
    4xx: see `error`), disabled (the endpoint answered 410 Gone). Exit code 4 when any
    delivery is failed or disabled (after `--redeliver`: any still listed so).
    """
    services = Services(context.settings())
    handle = Batch(batch, services=services)
    if redeliver:
        ids = handle.redeliver()
        typer.echo(f"{plural(len(ids), 'delivery', 'deliveries')} queued again", err=True)
    listed = 0
    ended = Counter[str]()
    for doc in map(_shown, handle.webhooks()):
        listed += 1
        ended[doc["state"]] += 1
        typer.echo(json.dumps(doc) if as_json else _line(doc))
    if not listed:  # say why the list is empty; --json keeps stdout to deliveries only
        why = _why_none(handle.id, services)
        typer.echo(f"note: {why}" if as_json else why, err=as_json)
    if ended["failed"] or ended["disabled"]:
        typer.echo(_redeliver_hint(handle.id, ended["failed"], ended["disabled"]), err=True)
        raise typer.Exit(EXIT_JOBS_FAILED)  # a script that checks deliveries must see it


def _redeliver_hint(batch: str, failed: int, disabled: int) -> str:
    """Deliveries that ended failed or disabled are never sent again on their own: name
    the command that does (on stderr, so --json's stdout stays one delivery a line)."""
    parts = []
    if failed:
        parts.append(f"{plural(failed, 'delivery', 'deliveries')} failed")
    if disabled:
        its = "its endpoint" if disabled == 1 else "their endpoints"
        count = f"{disabled:,}" if failed else plural(disabled, "delivery", "deliveries")
        parts.append(f"{count} disabled ({its} answered 410 Gone)")
    them = "it" if failed + disabled == 1 else "them"
    return f"{', '.join(parts)}: `clonequeue webhooks {batch} --redeliver` sends {them} again"


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as it may be printed: its URL's userinfo and query values masked, as in
    the logs (a webhook carries its token in ``?token=…``), and any URL in an error too."""
    if isinstance(doc.get("url"), str):
        doc["url"] = shown_url(doc["url"])
    for attempt in doc.get("attempts") or []:
        if isinstance(attempt, dict) and isinstance(attempt.get("error"), str):
            attempt["error"] = mask_query_values(attempt["error"])
    if isinstance(doc.get("error"), str):
        doc["error"] = mask_query_values(doc["error"])
    return doc


def _line(doc: dict[str, Any]) -> str:
    last = doc["attempts"][-1] if doc["attempts"] else {}
    answer = last.get("status") or last.get("error") or "-"
    due = ""
    if doc["state"] == "pending" and doc.get("next_at"):
        due = f" next in {max(0.0, doc['next_at'] - time.time()):.0f} s"
    return (
        f"{doc['id']}  {doc['type']:<16} {doc.get('job') or '-':<24} {doc['state']:<9} "
        f"tries {doc.get('tries', 0)}  last {answer}{due}"
    )


def _why_none(batch: str, services: Services) -> str:
    """No delivery: the batch has no webhook, none of its jobs has finished yet, or its
    webhook was set after they had all finished (none will ever be made).

    Only the batch's own URL (``submit --webhook``) can be read here: the fleet default
    is the workers' CLONEQUEUE_WEBHOOK_URL, which this shell neither sees nor sets. A
    URL given later applies to jobs that finish after it: a finished job sends no event.
    """
    from clonequeue.outputs.plan import BATCH_WEBHOOK_FIELD

    keys = ResultKeys(services.settings.namespace)
    info = services.batches.info(batch)
    finished = info is not None and info.is_finished
    if services.redis.hget(keys.batch(batch), BATCH_WEBHOOK_FIELD):
        if finished and not _events_waiting(services.redis, keys):
            return (
                f"batch {batch} has a webhook but no deliveries, and none will be made: its "
                "jobs had all finished before the webhook was set, and a job's event is sent "
                "only as it finishes (--redeliver sends again only deliveries that were "
                f"made); `clonequeue results {batch}` has their records"
            )
        return f"batch {batch}: no deliveries yet (one is made as each job finishes)"
    fleet = "the workers' CLONEQUEUE_WEBHOOK_URL (this shell's is not used)"
    resubmit = f"`clonequeue submit FILE --batch {batch} --webhook URL`"
    if finished:
        return (
            f"batch {batch} has no webhook: it was submitted without --webhook, and no "
            f"delivery was made under the fleet default, {fleet}. Its jobs have all "
            f"finished, and a finished job is not sent: {resubmit} would apply to new rows only"
        )
    return (
        f"batch {batch} has no webhook of its own: it was submitted without --webhook, and "
        f"the fleet default is {fleet}, if they have one. {resubmit} gives it one for the "
        "jobs that finish after it (new rows, and rows still running); jobs already finished "
        "are not sent"
    )


def _events_waiting(client: redis.Redis, keys: ResultKeys) -> bool:
    """Whether finished jobs' events are still to be turned into deliveries (the workers'
    results pass has not read them all, or not acknowledged them): a batch that has
    just finished, or was cancelled while no worker runs, may get its deliveries yet."""
    try:
        stream = client.xinfo_stream(keys.events)
        groups = client.xinfo_groups(keys.events)
    except redis.exceptions.ResponseError:  # no stream: no job has finished yet
        return False
    group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
    if group is None:
        return bool(stream.get("length"))
    last = _text(stream.get("last-generated-id"))
    return bool(group.get("pending")) or _text(group.get("last-delivered-id")) != last


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
