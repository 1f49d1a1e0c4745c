"""Following batches: ``batches`` (the list) and ``status`` (one batch, once or live)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import typer

from clonequeue.batch import Batch
from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_JOBS_FAILED, EXIT_OK
from clonequeue.cli.progress import BatchWatch, pause_text, summary
from clonequeue.services import Services
from clonequeue.store.batches import BatchInfo
from clonequeue.wording import plural

EXIT_INTERRUPTED = 130


def _batch(batch_id: str) -> Batch:
    return Batch(batch_id, services=Services(context.settings()))


def batches(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Newest this many batches."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per batch."),
) -> None:
    """List batches, newest first, with their counts per state."""
    services = Services(context.settings())
    infos = services.batches.list_batches(limit=limit)
    if as_json:
        for info in infos:
            typer.echo(json.dumps(info.to_dict()))
        return
    if not infos:
        typer.echo("no batches (records expire CLONEQUEUE_RETENTION_S after they finish)")
        return
    width = max(5, *(len(i.batch_id) for i in infos))
    typer.echo(f"{'BATCH':<{width}}  {'CREATED':<19}  {'STATE':<8}  COUNTS")
    for info in infos:
        created = datetime.fromtimestamp(info.created_at).strftime("%Y-%m-%d %H:%M:%S")
        state = "finished" if info.is_finished else "running"
        typer.echo(f"{info.batch_id:<{width}}  {created}  {state:<8}  {summary(info)}")


def status(
    batch: str = typer.Argument(..., help="Batch id (printed by `clonequeue submit`)."),
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Block until every job is finished, showing progress."
    ),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="A live view (counts, bar, rate, ETA, pause) until finished or Ctrl-C.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    interval: float = typer.Option(
        2.0, "--interval", min=0.1, help="Seconds between checks with --wait/--watch."
    ),
) -> None:
    """Show how many jobs of a batch are in each state.

    With --wait or --watch: exit 0 when every job completed, 4 when any failed, is
    unknown or was cancelled, as `errors` would list it (130 if --watch is stopped with
    Ctrl-C).
    """
    handle = _batch(batch)
    info = handle.status()
    if wait or watch:
        info = _follow(handle, interval, quiet=as_json)
    paused = handle.pause_reason()
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "paused": paused}))
    else:
        typer.echo(f"{batch}: {summary(info)}")
        unknown = info.counts.get("unknown", 0)
        if unknown:
            typer.echo(_unknown_next_step(batch, unknown), err=True)
        if paused:
            typer.echo(pause_text(paused), err=True)
    if wait or watch:
        bad = sum(info.counts.get(state, 0) for state in ("failed", "unknown", "cancelled"))
        raise typer.Exit(EXIT_JOBS_FAILED if bad else EXIT_OK)


def _unknown_next_step(batch: str, count: int) -> str:
    """Unknown jobs are never sent again by us: the operator decides, so say with what."""
    return (
        f"{plural(count, 'job')} unknown (a create went out and no answer came back: it may be "
        f"billed); check `clonequeue errors {batch}`, then `clonequeue retry {batch} --unknown` "
        "sends again"
    )


def _follow(handle: Batch, interval: float, *, quiet: bool) -> BatchInfo:
    view = BatchWatch(enabled=not quiet)
    info = handle.status()
    try:
        with view:
            while True:
                view.update(info, handle.pause_reason(), handle.api_rate())
                if info.is_finished:
                    return info
                time.sleep(interval)
                info = handle.status()
    except KeyboardInterrupt:
        typer.echo(f"{handle.id}: {summary(info)}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
