"""The ``clonequeue`` command: one typer app, one module per command group."""

from __future__ import annotations

import typer
import typer.main

from clonequeue._version import __version__
from clonequeue.cli import (
    batch_cmd,
    celery_cmd,
    config_cmd,
    demo_cmd,
    export_cmd,
    flower_cmd,
    jobs_cmd,
    metrics_cmd,
    redis_cmd,
    simulator_cmd,
    submit_cmd,
    webhooks_cmd,
    worker_cmd,
)
from clonequeue.cli.errors import JsonCommand, run_guarded
from clonequeue.cli.help_text import tidy

app = typer.Typer(
    name="clonequeue",
    help=(
        "Run JimmyAI SoundClone voice-cloning jobs in bulk: validate rows, queue them, "
        "submit each once, poll until done, and collect the results from Redis.\n\n"
        "Settings come from CLONEQUEUE_* environment variables or a .env file; see "
        "`clonequeue config show`.\n\n"
        "Exit codes, every command: 0 done; 1 a fatal problem, said on stderr with what to "
        "do (Redis unreachable or refusing writes, no such batch, an unreadable file, the "
        "API refused); 2 usage or a bad setting; 3 some rows rejected (submit, estimate); "
        "4 some jobs did not complete (status --wait/--watch) or some webhook deliveries failed "
        "(webhooks); 69 no worker answered "
        "(inspect); 130 interrupted (Ctrl-C)."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Pretty tracebacks print local variables, which could include the API token.
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph instead of breaking where the source does.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.command("submit", cls=submit_cmd.SubmitCommand)(submit_cmd.submit)
app.command("estimate", cls=JsonCommand)(submit_cmd.estimate)
app.command("batches", cls=JsonCommand)(batch_cmd.batches)
app.command("status", cls=JsonCommand)(batch_cmd.status)
app.command("results")(export_cmd.results)
app.command("errors")(export_cmd.errors)
app.command("retry")(jobs_cmd.retry)
app.command("webhooks", cls=JsonCommand)(webhooks_cmd.webhooks)
app.command("cancel")(jobs_cmd.cancel)
app.command("purge")(jobs_cmd.purge)
app.command("pause")(jobs_cmd.pause)
app.command("resume")(jobs_cmd.resume)
app.command("worker", context_settings=worker_cmd.PASS_THROUGH)(worker_cmd.worker)
app.command("beat", context_settings=worker_cmd.PASS_THROUGH)(worker_cmd.beat)
app.command("redis")(redis_cmd.redis)
app.command("demo")(demo_cmd.demo)
app.command("simulator", epilog=simulator_cmd.EPILOG)(simulator_cmd.simulator)
app.command("exporter")(metrics_cmd.exporter)
app.command("flower", context_settings=worker_cmd.PASS_THROUGH)(flower_cmd.flower)
app.command("inspect", context_settings=worker_cmd.PASS_THROUGH)(celery_cmd.inspect)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clonequeue {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run JimmyAI SoundClone voice-cloning jobs in bulk."""


def run() -> None:
    """Console-script entry point."""
    run_guarded(tidy(typer.main.get_command(app)))
