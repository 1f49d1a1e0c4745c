"""Port helpers: free ports are bindable, and readiness is a real connection."""

from __future__ import annotations

import socket

import pytest

from clonequeue.local import LOCALHOST, free_port, port_answers, wait_for_port


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind((LOCALHOST, port))


def test_port_answers_only_while_something_listens() -> None:
    with socket.socket() as server:
        server.bind((LOCALHOST, 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_answers(LOCALHOST, port)
        wait_for_port(LOCALHOST, port, timeout_s=1.0)
    assert not port_answers(LOCALHOST, port)


def test_wait_for_port_times_out_with_the_address() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port} within 0.2 s"):
        wait_for_port(LOCALHOST, port, timeout_s=0.2)
