"""Operations on a batch (retry, cancel, purge) and on the fleet (pause, resume)."""

from __future__ import annotations

import typer

from clonequeue.batch import PURGE_FORCE, Batch, RetryOutcome, settling_clause, who_am_i
from clonequeue.cli import context
from clonequeue.cli.errors import fail
from clonequeue.producers.errors import ProducerError
from clonequeue.services import Services
from clonequeue.wording import plural


def _batch(batch_id: str) -> Batch:
    return Batch(batch_id, services=Services(context.settings()))


def retry(
    batch: str = typer.Argument(..., help="Batch id."),
    failed: bool = typer.Option(
        False, "--failed", help="Retry failed jobs and audios (the default)."
    ),
    unknown: bool = typer.Option(
        False,
        "--unknown",
        help="Send again the creates whose answer never came. They may exist and be billed "
        "already: check the provider's records first.",
    ),
    cancelled: bool = typer.Option(
        False,
        "--cancelled",
        help="Take a cancel back: send the cancelled creates (never sent: a clone made "
        "before the cancel is kept and only its audios go; a clone still in flight goes on "
        "and its audios go when it is done). Submits into the batch work again.",
    ),
    artifacts: bool = typer.Option(
        False,
        "--artifacts",
        help="Download again the audio and subtitle files that are not stored (no API "
        "call); files stored with the right checksum are kept.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="With --unknown: send now also the creates whose worker may only be frozen "
        "(left for CLONEQUEUE_UNKNOWN_SETTLE_S, as its answer may still come).",
    ),
) -> None:
    """Queue failed (outcome-unknown, cancelled) jobs again; completed work is never touched.

    Each retried job records a new attempt (``retries`` in its result). Unknown jobs
    are sent again only with --unknown; without it, how many were left is said. A
    create whose worker did not store its answer within its lease is left for
    CLONEQUEUE_UNKNOWN_SETTLE_S (10 minutes): that worker may only be frozen (a
    stopped process, a paused VM), and its answer still come; --force sends it now.
    """
    if artifacts:
        queued = _batch(batch).fetch_artifacts()
        typer.echo(
            f"artifacts: {plural(queued, 'download')} queued (stored files are checked, kept)"
        )
        if not failed and not unknown and not cancelled:
            return
    if not failed and not unknown and not cancelled:
        failed = True
    handle = _batch(batch)
    outcome = handle.retry(failed=failed, unknown=unknown, cancelled=cancelled, force=force)
    chosen = (("failed", failed), ("unknown", unknown), ("cancelled", cancelled))
    what = " and ".join(w for w, asked in chosen if asked)
    typer.echo(
        f"{what}: {plural(outcome.jobs, 'job')} queued again ({plural(outcome.steps, 'create')})"
    )
    if outcome.unknown_left:
        typer.echo(_unknown_not_retried(batch, outcome), err=True)
    if outcome.settle_note:
        note = outcome.settle_note.replace("with force=True", f"run `clonequeue retry {batch} "
                                           "--unknown --force`")  # fmt: skip
        typer.echo(note, err=True)


def _unknown_not_retried(batch: str, outcome: RetryOutcome) -> str:
    """Unknown jobs are left out unless asked for: a bare ``retry`` saying "0 jobs" of a
    batch full of them reads as if nothing could be done, so say what would, its risk, and
    which of them it would still leave (their worker may only be frozen)."""
    count = outcome.unknown_left
    one = count == 1
    return (
        f"{plural(count, 'job')} unknown, not retried: a create went out and no answer we "
        f"could take came back, so {'it' if one else 'each'} may exist and be billed already; "
        f"`clonequeue retry {batch} --unknown` sends {'it' if one else 'them'} again "
        f"({'it' if one else 'they'} may be billed twice)"
        + settling_clause(count, outcome.settling, outcome.settled_at, "`--force` too")
    )


def cancel(batch: str = typer.Argument(..., help="Batch id.")) -> None:
    """Cancel a batch: jobs not yet sent stop now; in-flight ones finish without audios."""
    counts = _batch(batch).cancel(by=f"{who_am_i()} (clonequeue cancel)")
    typer.echo(
        f"cancelled {plural(counts['cancelled'], 'job')}; {counts['requested']:,} in flight will "
        "finish their current step and start no production audio"
    )


def purge(
    batch: str = typer.Argument(..., help="Batch id."),
    force: bool = typer.Option(
        False, "--force", help="Cancel an unfinished batch first (in-flight jobs must finish)."
    ),
) -> None:
    """Delete a finished batch and its job records (export them first with `results`).

    Its custom_ids are then new to clonequeue: a later submit of the same rows creates
    (and pays for) each job again.
    """
    try:
        removed = _batch(batch).purge(force=force)
    except ProducerError as exc:
        if PURGE_FORCE not in str(exc):
            raise
        fail(str(exc).replace(PURGE_FORCE, "--force"))  # the Python API's words are force=True
    typer.echo(f"purged batch {batch}: {plural(removed, 'job record')} removed")


def resume() -> None:
    """Lift a fleet-wide pause (balance, token, budget or manual) and release parked jobs."""
    services = Services(context.settings())
    reason = services.fleet.pause_reason()
    steps = services.fleet.resume(now=services.now())
    services.dispatch(steps)
    if reason:
        released = plural(len(steps), "job")
        typer.echo(f"resumed (was paused: {reason.get('reason')}); {released} released")
    else:
        typer.echo(f"not paused; {plural(len(steps), 'parked job')} released")


def pause(
    reason: str = typer.Option("paused by an operator", "--reason", help="Shown in `status`."),
) -> None:
    """Stop new creates on every worker (polls of running tasks go on)."""
    services = Services(context.settings())
    services.fleet.pause(reason, now=services.now())
    typer.echo("creates paused fleet-wide; `clonequeue resume` lifts it")
