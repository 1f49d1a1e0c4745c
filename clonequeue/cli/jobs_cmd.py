"""Operations on a batch (retry, cancel, purge) and on the fleet (pause, resume)."""

from __future__ import annotations

import typer

from clonequeue.batch import Batch, who_am_i
from clonequeue.cli import context
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
    artifacts: bool = typer.Option(
        False,
        "--artifacts",
        help="Download again the audio and subtitle files that are not stored (no API "
        "call); files stored with the right checksum are kept.",
    ),
) -> None:
    """Queue failed (or outcome-unknown) jobs again; completed work is never touched.

    Each retried job records a new attempt (``retries`` in its result).
    """
    if artifacts:
        queued = _batch(batch).fetch_artifacts()
        typer.echo(
            f"artifacts: {plural(queued, 'download')} queued (stored files are checked, kept)"
        )
        if not failed and not unknown:
            return
    if not failed and not unknown:
        failed = True
    outcome = _batch(batch).retry(failed=failed, unknown=unknown)
    what = " and ".join(w for w, chosen in (("failed", failed), ("unknown", unknown)) if chosen)
    typer.echo(
        f"{what}: {plural(outcome.jobs, 'job')} queued again ({plural(outcome.steps, 'create')})"
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
    """Delete a finished batch and its job records (export them first with `results`)."""
    removed = _batch(batch).purge(force=force)
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
