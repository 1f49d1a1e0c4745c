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
import select
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

_NO_WAIT_S = 0.05  # past the deadline, a read of bytes already there (never a wait)
_LATE_READ_S = 0.5  # how long reads past the deadline may go on, bytes being there
_T = TypeVar("_T")


class DeadlineSocket:
    """A connected socket (plain or TLS) whose every wait ends by ``deadline()`` (a
    ``time.monotonic()`` value, asked at each wait: a keep-alive connection serves one
    request after another): each ``recv``/``recv_into``/``send`` may block for the
    time left, at most (and at most the timeout urllib3 sets, if shorter); past the
    deadline each raises ``TimeoutError``, which urllib3 reports as a read timeout. An
    infinite deadline leaves urllib3's per-wait timeout alone. Past the deadline, bytes
    already there are still read for half a second: a process frozen mid-call (SIGSTOP,
    a paused VM) wakes to its answer, and a create's answer is its task's only handle.
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
        self._late, self._late_since = math.inf, 0.0  # the deadline passed, and when seen

    def _arm(self, *, reading: bool = False) -> None:
        deadline = self._deadline()
        if deadline == math.inf:
            self._sock.settimeout(self._timeout)
            return
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            if reading and self._late_read_allowed(deadline, now) and self._readable_now():
                # Past the deadline but the answer is here: a process frozen mid-call
                # (SIGSTOP, a paused VM) wakes to it; a create's answer is its task id.
                self._sock.settimeout(_NO_WAIT_S)
                return
            raise TimeoutError("the attempt's time ran out")
        self._sock.settimeout(left if self._timeout is None else min(left, self._timeout))

    def _late_read_allowed(self, deadline: float, now: float) -> bool:
        """Reads past ``deadline`` go on for ``_LATE_READ_S`` from the first: enough for
        an answer already buffered, never for a peer that keeps trickling bytes."""
        if self._late != deadline:
            self._late, self._late_since = deadline, now
        return now - self._late_since < _LATE_READ_S

    def _readable_now(self) -> bool:
        """Bytes (or the end) are there to read without waiting."""
        pending = getattr(self._sock, "pending", None)  # TLS: decrypted, already buffered
        if pending is not None and pending() > 0:
            return True
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv(self, *args: Any) -> bytes:
        return self._read(self._sock.recv, *args)

    def recv_into(self, *args: Any) -> int:
        return self._read(self._sock.recv_into, *args)

    def _read(self, read: Callable[..., _T], *args: Any) -> _T:
        """A signal handled on this thread (SIGHUP before SIGCONT wakes a frozen worker)
        breaks a wait whose time ran out while frozen, and CPython then raises a timeout
        without looking at the socket again: the answer there is read as it would be."""
        self._arm(reading=True)
        try:
            return read(*args)
        except TimeoutError:
            if not self._readable_now():
                raise
            self._arm(reading=True)
            return read(*args)

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
