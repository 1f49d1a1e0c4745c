"""``clonequeue flower``: Flower on the configured broker, behind a login, in bounded memory.

Flower runs in this process on the Celery app of :func:`clonequeue.workers.app.create_app`,
so it has the broker URL (and its password), the queues and the task names from the
settings, and the login never appears in ``ps`` output: it is handed to Flower in
memory, not on the command line.

What Flower cannot do, and what to do about it (README, "Operations"):

- It sees only the events sent while it runs, and keeps at most ``--max-tasks`` of
  them in memory (nothing on disk). Job history lives in Redis: ``clonequeue status``.
- ``/metrics`` and ``/healthcheck`` answer without the login (flower #1342): expose
  the port to operators and Prometheus only, never to the internet.
- It has no queue-depth metric (flower #1191): ``clonequeue exporter`` has one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import typer

from clonequeue.cli import context
from clonequeue.cli.celery_cmd import run_celery
from clonequeue.cli.errors import EXIT_USAGE, fail
from clonequeue.cli.listen import listening

DEFAULT_PORT = 5555
DEFAULT_MAX_TASKS = 10_000
DEFAULT_PURGE_OFFLINE_S = 3600
# The tasks page shows args (argsrepr: "job=… remote=… gen=…") and results too. No
# uuid column (36 characters, ~400 px), no received time and no worker column (a node
# name is as long as its host's name, unbounded: a 40-character CI host pushed the
# table past the screen): the name links to the task's page, which shows them all. So
# the table fits a 1,400 px screen with job and state whatever the hosts are called.
TASK_COLUMNS = "name,state,args,result,runtime"
# Flower options this command sets itself; passing them through would bypass its checks.
MANAGED_OPTIONS = frozenset(
    {"address", "port", "unix_socket", "basic_auth", "max_tasks", "persistent", "db", "conf"}
)


def is_loopback(address: str) -> bool:
    """Whether ``address`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_option_name(arg: str) -> str:
    """``--basic-auth=x`` → ``basic_auth``: the name Flower (tornado.options) reads."""
    return arg.lstrip("-").partition("=")[0].replace("-", "_")


def flower_argv(
    *,
    address: str,
    port: int,
    max_tasks: int,
    purge_offline_s: int,
    log_level: str,
    basic_auth: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``celery flower …`` arguments; raises ValueError for a managed option in ``extra``."""
    managed = sorted({flower_option_name(a) for a in extra if a.startswith("-")} & MANAGED_OPTIONS)
    if managed:
        raise ValueError(
            f"--{managed[0]} is set by clonequeue flower itself; use its own options "
            "(--address, --port, --max-tasks, --no-auth, CLONEQUEUE_FLOWER_BASIC_AUTH)"
        )
    argv = [
        "flower",
        f"--address={address}",
        f"--port={port}",
        # Events are kept in memory only, at most this many tasks: a restart
        # starts empty (job history lives in our Redis records, not in Flower).
        f"--max_tasks={max_tasks}",
        "--persistent=False",
        f"--tasks_columns={TASK_COLUMNS}",
        f"--logging={log_level.lower()}",
    ]
    if purge_offline_s:
        # Replaced pods and restarted workers would otherwise stay listed forever.
        argv.append(f"--purge_offline_workers={purge_offline_s}")
    if basic_auth is not None:
        argv.append(f"--basic_auth={basic_auth}")
    return argv + list(extra)


def flower(
    ctx: typer.Context,
    address: str = typer.Option(
        "127.0.0.1",
        "--address",
        help="Address to bind; 0.0.0.0 in a container (publish the port to operators only).",
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", "-p", help="TCP port of the web UI."),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Run without a login: only allowed when --address is a loopback address.",
    ),
    max_tasks: int = typer.Option(
        DEFAULT_MAX_TASKS,
        "--max-tasks",
        min=1,
        help="Tasks Flower keeps in memory; older ones are forgotten.",
    ),
    purge_offline_s: int = typer.Option(
        DEFAULT_PURGE_OFFLINE_S,
        "--purge-offline-after-s",
        min=0,
        help="Forget a worker this long after it went offline (0: never).",
    ),
) -> None:
    """Start Flower, the Celery web monitor, on the configured broker.

    The login comes from CLONEQUEUE_FLOWER_BASIC_AUTH (user:password); without it,
    Flower starts only with --no-auth on a loopback address. Flower's /metrics and
    /healthcheck answer without the login (flower #1342): keep the port private.
    Extra options go to Flower unchanged, e.g. `--url_prefix=flower`.
    """
    settings = context.settings()
    if no_auth:
        if not is_loopback(address):
            fail(
                f"--no-auth is only allowed on a loopback address, not {address!r}: "
                "set CLONEQUEUE_FLOWER_BASIC_AUTH=user:password to serve other hosts",
                EXIT_USAGE,
            )
        basic_auth = None
    elif settings.flower_basic_auth is None:
        fail(
            "CLONEQUEUE_FLOWER_BASIC_AUTH is not set: export user:password for Flower's "
            "login (or run `clonequeue flower --no-auth` on 127.0.0.1 only)",
            EXIT_USAGE,
        )
    else:
        basic_auth = settings.flower_basic_auth.get_secret_value()
    try:
        argv = flower_argv(
            address=address,
            port=port,
            max_tasks=max_tasks,
            purge_offline_s=purge_offline_s,
            log_level=settings.log_level,
            basic_auth=basic_auth,
            extra=ctx.args,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)

    from clonequeue.logs import setup_logging
    from clonequeue.workers.app import create_app

    setup_logging(settings)  # redacts the token and Flower's logins
    with listening(address, port, "--port"):
        run_celery(create_app(settings), argv)
