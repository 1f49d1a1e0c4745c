"""api/deadline.py's DeadlineSocket on a real socket pair."""

from __future__ import annotations

import socket
import time

import pytest

from clonequeue.api.deadline import DeadlineSocket


def test_an_answer_already_there_is_read_past_the_deadline() -> None:
    """A worker frozen mid-create (SIGSTOP, a paused VM) wakes past its deadline with the
    answer in its socket: it was thrown away as a timeout, the task's id with it."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sock = DeadlineSocket(ours, lambda: time.monotonic() - 20)
        theirs.sendall(b'{"id": "audio_1"}')
        time.sleep(0.05)
        assert sock.recv(100) == b'{"id": "audio_1"}'
        with pytest.raises(TimeoutError):  # nothing more there: no wait past the deadline
            sock.recv(100)


def test_a_peer_that_keeps_trickling_gets_half_a_second_past_the_deadline() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        deadline = time.monotonic() - 1
        sock = DeadlineSocket(ours, lambda: deadline)
        started = time.monotonic()
        read = 0
        while time.monotonic() - started < 3:
            theirs.sendall(b"x")
            time.sleep(0.01)
            try:
                read += len(sock.recv(1))
            except TimeoutError:
                break
        assert read > 0
        assert time.monotonic() - started < 1.0  # not for as long as it trickles


def test_a_reader_keeps_the_socket_open_until_it_closes() -> None:
    """http.client closes the connection once it has the head of an answer that ends it,
    then reads the body through its reader: closed at once, the body was lost."""
    ours, theirs = socket.socketpair()
    with theirs:
        sock = DeadlineSocket(ours, lambda: time.monotonic() + 5)
        reader = sock.makefile("rb")
        sock.close()
        theirs.sendall(b"body")
        theirs.shutdown(socket.SHUT_WR)
        assert reader.read() == b"body"
        reader.close()
        assert ours.fileno() == -1  # closed with its last reader
