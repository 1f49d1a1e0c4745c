"""A port a command cannot listen on is one ``error:`` line naming the option, not a traceback."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from clonequeue.cli.errors import fail


@contextmanager
def listening(host: str, port: int, option: str) -> Iterator[None]:
    """Around the call that binds ``host:port``: the port taken (or one below 1024
    without the right to it) ends the command with exit 1 and one line naming
    ``option``, the way to choose another port. Any other error goes on as it was."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is already in use: pick another with {option}")
        if exc.errno in (errno.EACCES, errno.EPERM):
            fail(f"cannot listen on {host}:{port} ({exc.strerror}): pick another with {option}")
        raise
