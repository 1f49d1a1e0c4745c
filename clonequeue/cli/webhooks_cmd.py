"""``clonequeue webhooks BATCH``: every delivery and its attempts; ``--redeliver`` sends again."""

from __future__ import annotations

import json
import time

import typer

from clonequeue.batch import Batch
from clonequeue.cli import context
from clonequeue.services import Services


def webhooks(
    batch: str = typer.Argument(..., help="Batch id."),
    redeliver: bool = typer.Option(
        False,
        "--redeliver",
        help="Send the failed deliveries again (and those to an endpoint that answered 410, "
        "which is enabled again), with their own webhook-id.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per delivery."),
) -> None:
    """List a batch's webhook deliveries: event, job, state, attempts, the last answer.

    States: pending (next attempt due at `next`), sending, done, failed (gave up or a
    4xx: see `error`), disabled (the endpoint answered 410 Gone).
    """
    handle = Batch(batch, services=Services(context.settings()))
    if redeliver:
        ids = handle.redeliver()
        typer.echo(f"{len(ids):,} deliveries queued again", err=True)
    for doc in handle.webhooks():
        if as_json:
            typer.echo(json.dumps(doc))
            continue
        last = doc["attempts"][-1] if doc["attempts"] else {}
        answer = last.get("status") or last.get("error") or "-"
        due = ""
        if doc["state"] == "pending" and doc.get("next_at"):
            due = f" next in {max(0.0, doc['next_at'] - time.time()):.0f} s"
        typer.echo(
            f"{doc['id']}  {doc['type']:<16} {doc.get('job') or '-':<24} {doc['state']:<9} "
            f"tries {doc.get('tries', 0)}  last {answer}{due}"
        )
