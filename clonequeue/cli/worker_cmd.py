"""``clonequeue worker`` and ``clonequeue beat``: Celery processes with the project's settings."""

from __future__ import annotations

import redis.exceptions
import typer

from clonequeue.cli import context
from clonequeue.cli.listen import listening
from clonequeue.config import LogFormat, Settings
from clonequeue.constants import DEFAULT_API_BASE_URL

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
LOGLEVEL_OPTION = typer.Option(None, "--loglevel", "-l", help="Default: CLONEQUEUE_LOG_LEVEL.")
LOG_FORMAT_OPTION = typer.Option(
    None, "--log-format", help="text or json (one object per line). Default: CLONEQUEUE_LOG_FORMAT."
)


def _settings_with(log_format: LogFormat | None) -> Settings:
    """The settings, with --log-format applied, and logging set up from them."""
    from clonequeue.logs import setup_logging

    settings = context.settings()
    if log_format is not None:
        settings = settings.model_copy(update={"log_format": log_format})
    setup_logging(settings)
    return settings


def real_api_notice(settings: Settings) -> str | None:
    """One line for a worker about to reach the real, billing API by default, else None.

    The default of CLONEQUEUE_API_BASE_URL is the real API, so a first try without it
    set would spend money: say so once, at start-up. Set explicitly, it is a choice.
    """
    if "api_base_url" in settings.model_fields_set or settings.api_base_url != DEFAULT_API_BASE_URL:
        return None
    return (
        f"note: CLONEQUEUE_API_BASE_URL is not set, so this worker sends jobs to the real "
        f"JimmyAI API at {DEFAULT_API_BASE_URL}, billed to your token; to try clonequeue "
        "without it, run `clonequeue simulator --token-from-env` (it accepts the token of "
        "CLONEQUEUE_API_TOKEN or CLONEQUEUE_API_TOKEN_FILE, read from its environment, not "
        "its command line; without it only the token sim-token) and set "
        "CLONEQUEUE_API_BASE_URL=http://127.0.0.1:8765 (or run `clonequeue demo`)"
    )


def redis_warnings(settings: Settings) -> list[str]:
    """How the fleet's Redis could lose job records (store/safety.py); [] when it cannot
    be reached now: the worker rides that out itself."""
    from clonequeue.store.connect import store_client
    from clonequeue.store.safety import durability_warnings

    client = store_client(settings, ride_out_s=0)
    try:
        return durability_warnings(client)
    except redis.exceptions.RedisError:
        return []
    finally:
        client.close()


def worker(
    ctx: typer.Context,
    queues: str = typer.Option(
        "submit,produce,poll",
        "--queues",
        "-Q",
        help="Which queues to consume, comma-separated: submit (new clones), produce "
        "(production audios), poll. Split them over workers to scale each on its own. "
        "Every worker also takes the watchdog's queue and the webhook and artifact queues "
        "(a few downloads at a time each: see above).",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Threads (default: the setting named above)."
    ),
    beat: bool = typer.Option(
        False,
        "--beat",
        "-B",
        help="Also run the watchdog scheduler in this process (one per fleet is enough; "
        "more are harmless).",
    ),
    events: bool = typer.Option(
        True, "--events/--no-events", help="Send task events (Flower needs them)."
    ),
    loglevel: str | None = LOGLEVEL_OPTION,
    log_format: LogFormat | None = LOG_FORMAT_OPTION,
    metrics_port: int = typer.Option(
        0, "--metrics-port", help="Serve this worker's Prometheus counters on this port (0: off)."
    ),
) -> None:
    """Start a Celery worker that runs clonequeue's tasks.

    Settings: CLONEQUEUE_WORKER_CONCURRENCY is -c's default;
    CLONEQUEUE_ARTIFACT_CONCURRENCY caps the downloads each worker runs at once.

    Extra options after the known ones go to `celery worker` unchanged, e.g.
    `clonequeue worker --hostname w1@%h --max-tasks-per-child 0`.
    """
    settings = _settings_with(log_format)
    settings.require_token()  # fail now, not at the first task
    notice = real_api_notice(settings)
    if notice:
        typer.echo(notice, err=True)
    for warning in redis_warnings(settings):
        typer.echo(f"warning: {warning}", err=True)
    from clonequeue.workers.app import create_app

    if metrics_port:
        from prometheus_client import start_http_server

        with listening("0.0.0.0", metrics_port, "--metrics-port"):
            start_http_server(metrics_port)
    app = create_app(settings)
    names = app.clonequeue_queues
    by_short = {"submit": names.submit, "produce": names.produce, "poll": names.poll}
    by_short |= {f"{kind}s": name for kind, name in app.clonequeue_results_queues.items()}
    try:
        selected = [by_short[q.strip()] for q in queues.split(",") if q.strip()]
    except KeyError as exc:
        raise typer.BadParameter(f"unknown queue {exc}; use {', '.join(by_short)}") from None
    selected += [q for q in app.clonequeue_results_queues.values() if q not in selected]
    selected.append(names.watchdog)  # every worker runs the watchdog's passes (one at a time)
    argv = [
        "worker",
        f"--queues={','.join(selected)}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--loglevel={loglevel or settings.log_level}",
        "--pool=threads",
        # Mingle and gossip talk to every other worker over the broker: after a
        # failover or reconnect they leave zombie workers (celery #8030), and we
        # need neither (revokes and state live in our own records).
        "--without-mingle",
        "--without-gossip",
    ]
    if events:
        argv.append("--task-events")
    if beat:
        argv.append("--beat")
    app.worker_main(argv + list(ctx.args))


def beat(
    ctx: typer.Context,
    loglevel: str | None = LOGLEVEL_OPTION,
    log_format: LogFormat | None = LOG_FORMAT_OPTION,
) -> None:
    """Start the watchdog scheduler (Celery beat): run exactly one per fleet.

    Extra options go to `celery beat` unchanged.
    """
    settings = _settings_with(log_format)
    from clonequeue.workers.app import create_app

    app = create_app(settings)
    app.start(
        [
            "beat",
            f"--loglevel={loglevel or settings.log_level}",
            *ctx.args,
        ]
    )
