"""A TCP relay from 127.0.0.1 here into another network namespace.

The test process lives in the machine's namespace, where no route leads into the
private networks of :mod:`clonequeue.local.netns`. A :class:`Forward` listens on a
free port of 127.0.0.1 and, for each connection, opens one *inside* the target
namespace: a thread enters it with ``setns(2)`` (which moves only the calling
thread), connects, and then pumps bytes both ways. A socket stays in the namespace
it was created in, so nothing else in the process changes namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Self

from clonequeue.local.ports import LOCALHOST

CLONE_NEWNET = 0x40000000
_CHUNK = 64 * 1024
_libc = ctypes.CDLL(None, use_errno=True)


def connect_in(netns_path: Path, host: str, port: int, timeout_s: float = 5.0) -> socket.socket:
    """A TCP connection to ``host:port`` made from inside the namespace at ``netns_path``."""
    result: list[socket.socket | OSError] = []

    def enter_and_connect() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns({netns_path}): {os.strerror(errno)}")
            finally:
                os.close(fd)
            result.append(socket.create_connection((host, port), timeout=timeout_s))
        except OSError as exc:  # handed to the caller's thread
            result.append(exc)

    # A thread of its own: it ends in the other namespace, and a thread that ends
    # takes its namespace with it; the caller's thread never moves.
    thread = threading.Thread(target=enter_and_connect, daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, OSError):
        raise outcome
    outcome.settimeout(None)
    return outcome


class Forward:
    """Listen on 127.0.0.1 (a free port); relay each connection to ``host:port`` in a netns.

    ``resolve``, if given, names the target afresh for every new connection (e.g. the
    Redis master the sentinels name now), so a client here follows a failover.
    """

    def __init__(
        self,
        netns_path: Path,
        host: str,
        port: int,
        *,
        resolve: Callable[[], tuple[str, int]] | None = None,
    ) -> None:
        self.netns_path, self.target_host, self.target_port = netns_path, host, port
        self.resolve = resolve
        self._listener = socket.create_server((LOCALHOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Self:
        threading.Thread(target=self._accept, daemon=True, name=f"forward:{self.port}").start()
        return self

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            host, port = self.resolve() if self.resolve else (self.target_host, self.target_port)
            upstream = connect_in(self.netns_path, host, port)
        except OSError:
            client.close()  # the caller sees a refused/reset connection, as it would
            return
        with self._lock:
            self._sockets.update((client, upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._sockets.difference_update((client, upstream))
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then pass the end on (half-close)."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
