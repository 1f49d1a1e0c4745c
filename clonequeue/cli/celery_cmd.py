"""``clonequeue inspect``: ask the running workers (``celery inspect``) with our settings.

Its main use is the liveness check of deploy/: ``clonequeue inspect ping
--destination celery@$HOSTNAME`` exits 0 when that worker answered and non-zero
(69, EX_UNAVAILABLE) when it did not. No ``celery -A module`` is needed, so no
module reads the settings at import time.
"""

from __future__ import annotations

from typing import Any

import typer

from clonequeue.cli import context
from clonequeue.cli.errors import fail


def run_celery(app: Any, argv: list[str]) -> None:
    """Run ``celery <argv>`` on ``app`` in this process; Celery's errors become one line."""
    import click

    try:
        code = app.start(argv)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    if code:
        raise typer.Exit(code)


def inspect(
    ctx: typer.Context,
    command: str = typer.Argument(
        ..., help="ping, active, reserved, scheduled, stats, active_queues, registered, …"
    ),
    destination: str | None = typer.Option(
        None,
        "--destination",
        "-d",
        help="Only these workers, comma-separated node names (celery@HOST by default).",
    ),
    timeout_s: float = typer.Option(
        1.0, "--timeout", "-t", min=0.1, help="Seconds to wait for the replies."
    ),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the replies as JSON."),
) -> None:
    """Ask the workers (celery inspect COMMAND); exit 0 once at least one answered.

    `clonequeue inspect ping -d celery@$HOSTNAME` is the workers' liveness check.
    Further arguments go to `celery inspect` unchanged (e.g. a task id for query_task).
    """
    from clonequeue.workers.app import create_app

    argv = ["inspect", command, f"--timeout={timeout_s}"]
    if destination:
        argv.append(f"--destination={destination}")
    if as_json:
        argv.append("--json")
    run_celery(create_app(context.settings()), argv + list(ctx.args))
