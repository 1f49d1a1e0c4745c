"""One deadline for a whole HTTP exchange, whatever the other end does.

urllib3's read timeout bounds each wait for a byte, not the answer: a peer that sends
its status line or headers a byte at a time, each well inside it, holds the thread
for as long as it likes (a webhook receiver held one for 150 s; the same goes for an
API, or a proxy before it, that trickles). The connection's socket is wrapped so
that every wait ends by a deadline set when the request starts.
"""

from __future__ import annotations

import io
import math
import socket
import time
from collections.abc import Callable
from typing import Any, cast


class DeadlineSocket:
    """A connected socket (plain or TLS) whose every wait ends by ``deadline()`` (a
    ``time.monotonic()`` value, asked at each wait: a keep-alive connection serves one
    request after another): each ``recv``/``recv_into``/``send`` may block for the
    time left, at most (and at most the timeout urllib3 sets, if shorter); past the
    deadline each raises ``TimeoutError``, which urllib3 reports as a read timeout. An
    infinite deadline leaves urllib3's per-wait timeout alone.
    http.client reads through ``makefile('rb')``, a buffered ``socket.SocketIO`` over
    this object's ``recv_into``, and writes with ``sendall``: both come through here.
    ``close`` keeps the socket's own rule: while a reader made by ``makefile`` is open,
    the socket stays open until that reader closes. http.client closes the connection
    as soon as it has the headers of an answer that ends the connection (HTTP/1.0,
    ``Connection: close``) and reads the body through the reader afterwards: closed at
    once, a body not yet in the buffer was lost (a create's outcome then unknown).
    Everything else (``fileno``, ``shutdown``, TLS details) is the socket's."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        self._sock = sock
        self._deadline = deadline
        self._timeout: float | None = sock.gettimeout()
        self._io_refs = 0  # readers made by makefile and not yet closed
        self._closing = False

    def _arm(self) -> None:
        deadline = self._deadline()
        if deadline == math.inf:
            self._sock.settimeout(self._timeout)
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's time ran out")
        self._sock.settimeout(left if self._timeout is None else min(left, self._timeout))

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._arm()
        return self._sock.recv_into(*args)

    def send(self, *args: Any) -> int:
        self._arm()
        return self._sock.send(*args)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view) :]

    def makefile(
        self, mode: str = "rb", buffering: int | None = None, **_: Any
    ) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"makefile({mode!r}): only 'rb' is used here")
        raw = socket.SocketIO(cast(socket.socket, self), "rb")
        self._io_refs += 1
        return io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self) -> None:
        """A reader closed: the socket closes now if its close came while it read."""
        self._io_refs = max(self._io_refs - 1, 0)
        if self._closing and self._io_refs == 0:
            self._sock.close()

    def close(self) -> None:
        """Close the socket, or once its last open reader closes (as ``socket.close``)."""
        self._closing = True
        if self._io_refs == 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
