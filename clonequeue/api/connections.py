"""urllib3 connection pools that know whether a request left the machine, and that
give a create no connection the server may already have closed.

*Sent or not.* urllib3 raises the same exception types before and after it wrote
the request (an ``SSLError`` from the handshake or from a read, a ``ValueError``
for a header value it refused), so the type alone cannot say whether the API may
hold the task. :class:`SendTracking` records, per thread, whether the connection
wrote a first byte of this request: no byte written means the API cannot hold it.

*A trickling answer.* Each wait ends by the request's deadline (:mod:`deadline`): a
status line or headers sent a byte at a time, each inside the read timeout, held the
thread for as long as the other end liked.

*The keep-alive race.* A server closes a keep-alive connection that sat idle past
its own timeout; if the close has not reached us when we send on that connection,
the request is lost unanswered and a create's outcome would be unknown. A pool
connection idle longer than the request's ``max_idle_s`` is closed before use, so
the request goes out on a fresh connection (README, Assumptions: the API keeps an
idle connection open for longer than ``CLONEQUEUE_HTTP_CREATE_MAX_IDLE_S``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from clonequeue.api.deadline import DeadlineSocket


class _Progress(threading.local):
    sent = False
    max_idle_s: float | None = None  # None: any pooled connection will do
    deadline = math.inf  # every wait of this request ends by then (time.monotonic)


_progress = _Progress()


def begin_request(max_idle_s: float | None, deadline: float = math.inf) -> None:
    """Mark the start of a request on this thread; see :func:`request_was_sent`. Its
    sending and the answer's status line and headers end by ``deadline``."""
    _progress.sent = False
    _progress.max_idle_s = max_idle_s
    _progress.deadline = deadline


def _current_deadline() -> float:
    return _progress.deadline


def request_was_sent() -> bool:
    """Whether this thread's current request wrote at least one byte to a socket."""
    return _progress.sent


class SendTracking:
    """Mixin for urllib3 connections: marks the request sent at its first write, after
    connecting (a connect or TLS handshake failure is "not sent")."""

    sock: Any
    idle_since: float = 0.0

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock = DeadlineSocket(self.sock, _current_deadline)

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        _progress.sent = True
        super().send(data)  # type: ignore[misc]


class TrackedHTTPConnection(SendTracking, HTTPConnection):
    pass


class TrackedHTTPSConnection(SendTracking, HTTPSConnection):
    pass


class FreshnessPool:
    """Mixin for urllib3 pools: a connection idle past this thread's ``max_idle_s`` is
    closed on checkout, so the request opens a new one."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        max_idle_s = _progress.max_idle_s
        if (
            max_idle_s is not None
            and getattr(conn, "sock", None) is not None
            and time.monotonic() - getattr(conn, "idle_since", 0.0) > max_idle_s
        ):
            conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


class HTTPPool(FreshnessPool, urllib3.HTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class HTTPSPool(FreshnessPool, urllib3.HTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection


def pool_for(
    scheme: str, host: str, port: int | None, **options: Any
) -> urllib3.HTTPConnectionPool:
    """A tracking, freshness-aware pool for ``scheme://host:port``."""
    cls = HTTPSPool if scheme == "https" else HTTPPool
    return cls(host, port, **options)
