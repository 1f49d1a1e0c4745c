"""TCP port helpers for starting local servers next to ones that may already run.

The machine may already have Redis on 6379, RabbitMQ on 5672 and so on, so local
servers always go on a port the kernel says is free, and readiness is checked by
connecting, never by sleeping.
"""

from __future__ import annotations

import socket
import time

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it).

    Another process could take it before ours binds it; servers that fail to bind
    report that clearly, so the small race is accepted.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int, *, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``; never raises."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float, *, interval_s: float = 0.05) -> None:
    """Block until ``host:port`` accepts connections; :class:`TimeoutError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not port_answers(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} within {timeout_s:g} s")
        time.sleep(interval_s)
