"""Following batches: ``batches`` (the list) and ``status`` (one batch, once or live)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from functools import cached_property

import redis
import typer

from clonequeue.batch import Batch, settling_clause
from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_JOBS_FAILED, EXIT_OK
from clonequeue.cli.progress import BatchWatch, pause_text, summary
from clonequeue.services import Services
from clonequeue.store.batches import BatchInfo
from clonequeue.store.connect import store_client
from clonequeue.store.outage import REDIS_DOWN, RedisOutage
from clonequeue.store.presence import NoteChanges
from clonequeue.wording import plural

EXIT_INTERRUPTED = 130

# `status --wait/--watch` follows a batch through a Redis outage for this long before
# it gives up. Twice the REDIS_RIDE_OUT_S (30 s) that producers and workers ride out,
# so a pipeline's wait outlasts any restart the fleet itself survives (one that loads
# a large AOF too), yet a Redis gone for good still ends it in about a minute, not never.
FOLLOW_REDIS_OUTAGE_S = 60.0
# Each read while following gives up after redis-py's few quick retries (~1.5 s), not
# the store's 30 s: the outage is said at once and the bound above is the only one.
FOLLOW_READ_RIDE_OUT_S = 0.0


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

    Without --wait/--watch it exits 0 whatever the counts (1: no such batch). With
    --wait or --watch: exit 0 when every job completed, 4 when any failed, is
    unknown or was cancelled, as `errors` would list it (130 if --watch is stopped with
    Ctrl-C). A Redis restart or outage is ridden out for up to 60 s (said on stderr),
    then exit 1.
    """
    services = Services(context.settings())
    handle = Batch(batch, services=services)  # one client: a refusal is said once
    info = handle.status()  # Redis not there at all: the usual error at once
    if wait or watch:
        follower = Batch(batch, services=_FollowServices(context.settings()))
        info = _follow(follower, info, interval, quiet=as_json)
    paused = handle.pause_reason()
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "paused": paused}))
    else:
        typer.echo(f"{batch}: {summary(info)}")
        failed = info.counts.get("failed", 0)
        if failed:  # as unknown jobs get theirs: what to run next
            typer.echo(
                f"{plural(failed, 'job')} failed: `clonequeue errors {batch}` says why, "
                f"`clonequeue retry {batch}` sends {'it' if failed == 1 else 'them'} again",
                err=True,
            )
        unknown = info.counts.get("unknown", 0)
        if unknown:
            typer.echo(_unknown_next_step(batch, unknown, *handle.settling_unknowns()), err=True)
        if not info.is_finished:
            _say_workers(services)
        if paused:
            typer.echo(pause_text(paused), err=True)
        elif not info.is_finished:
            _say_parked(services)
    if wait or watch:
        bad = sum(info.counts.get(state, 0) for state in ("failed", "unknown", "cancelled"))
        raise typer.Exit(EXIT_JOBS_FAILED if bad else EXIT_OK)


def _say_workers(services: Services) -> None:
    """Jobs pending with no worker to run them look like a slow fleet (QA pass)."""
    note = services.workers_note()
    if note:
        typer.echo(note, err=True)


def _say_parked(services: Services) -> None:
    """Creates held for a free slot look like jobs pending for no reason (QA pass)."""
    fleet = services.fleet.snapshot()
    if fleet["parked"]:
        typer.echo(
            f"{plural(fleet['parked'], 'create')} of the fleet "
            f"{'waits' if fleet['parked'] == 1 else 'wait'} for a free slot: "
            f"{plural(fleet['in_flight'], 'task')} in flight, the workers' "
            "CLONEQUEUE_MAX_IN_FLIGHT; they go as those finish",
            err=True,
        )


def _unknown_next_step(batch: str, count: int, settling: int, settled_at: float) -> str:
    """Unknown jobs are never sent again by us: the operator decides, so say with what,
    and which of them that still leaves for now (their worker may only be frozen)."""
    return (
        f"{plural(count, 'job')} unknown (a create went out and no answer we could take "
        f"came back: it may be billed); check `clonequeue errors {batch}`, then "
        f"`clonequeue retry {batch} --unknown` "
        "sends again" + settling_clause(count, settling, settled_at, "`--force` too")
    )


class _FollowServices(Services):
    """Services whose Redis reads fail fast, so :func:`_follow` hears of an outage at once
    and rides it out itself (saying so), instead of hanging silently in each read."""

    @cached_property
    def redis(self) -> redis.Redis:
        return store_client(self.settings, ride_out_s=FOLLOW_READ_RIDE_OUT_S)


def _follow(handle: Batch, info: BatchInfo, interval: float, *, quiet: bool) -> BatchInfo:
    """Show the batch until every job is finished; a Redis outage is ridden out (said once
    on stderr) for up to FOLLOW_REDIS_OUTAGE_S, then its error ends the command."""
    view = BatchWatch(enabled=not quiet)
    outage = _outage_said_on(handle.id, view)
    notes = NoteChanges()  # on workers, said when it changes
    try:
        with view:
            while True:
                try:
                    info = handle.status()
                    view.update(info, handle.pause_reason(), handle.api_rate())
                    news = notes.news(None if info.is_finished else handle.workers_note())
                    if news and not (quiet or info.is_finished):
                        view.print(news)
                except REDIS_DOWN as exc:
                    try:
                        time.sleep(outage.next_wait(exc))
                    except REDIS_DOWN:  # past the bound: say what this does and does not mean
                        view.print(
                            f"gave up following batch {handle.id} after "
                            f"{FOLLOW_REDIS_OUTAGE_S:.0f} s without Redis; the batch itself "
                            "goes on once the workers reach Redis again: follow it again "
                            f"with `clonequeue status {handle.id} --watch`"
                        )
                        raise
                    continue
                outage.end()
                if info.is_finished:
                    return info
                time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo(f"{handle.id}: {summary(info)}")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _outage_said_on(batch_id: str, view: BatchWatch) -> RedisOutage:
    """A Redis outage while following: said once on stderr, its end too."""
    from clonequeue.redaction import redact

    def started(exc: BaseException) -> None:
        reason = (str(exc).strip().splitlines() or [""])[0]
        view.print(
            redact(
                f"warning: cannot reach Redis ({exc.__class__.__name__}: {reason}); "
                f"still following batch {batch_id}, trying again for up to "
                f"{FOLLOW_REDIS_OUTAGE_S:.0f} s"
            )
        )

    def ended(down_s: float) -> None:
        view.print(f"Redis answers again (unreachable for {down_s:.0f} s); following")

    return RedisOutage(FOLLOW_REDIS_OUTAGE_S, started, ended)
