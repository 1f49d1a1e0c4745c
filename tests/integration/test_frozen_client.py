"""A process frozen mid-create (SIGSTOP) past its deadline, its answer already in the
socket, woken with SIGCONT: alone, or after SIGHUP (Celery's worker handles it).

From a QA pass: a signal handled on the thread that waits for the answer ends that wait
once its time has run out, and CPython then raises a timeout without looking at the
socket again: the answer was thrown away and the create ended ``unknown``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the freeze")

CHILD = """
import signal, sys
from pydantic import SecretStr
from clonequeue.api.client import ApiClient
from clonequeue.api.models import CloneRequest

signal.signal(signal.SIGHUP, lambda *_: None)  # a handler, as a Celery worker has
with ApiClient(sys.argv[1], SecretStr("frozen-token"), connect_timeout_s=1,
               read_timeout_s=1) as api:
    try:
        print(api.create_clone(CloneRequest(fileUrl="https://example.com/v.mp3")).id)
    except Exception as exc:
        print(type(exc).__name__, exc)
"""
BODY = b'{"code":20000,"msg":"ok","data":{"id":"audio_frozen","status":"queued"}}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
ANSWER += b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


def stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped: SIGSTOP takes effect after ``kill`` returns."""
    tasks = Path(f"/proc/{pid}/task")
    return all(
        (t / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT" for t in tasks.iterdir()
    )


@pytest.mark.parametrize("wake", [["SIGCONT"], ["SIGHUP", "SIGCONT"]])
def test_a_process_frozen_mid_create_wakes_to_its_answer(wake: list[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True
        )
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                request = b""
                while b"v.mp3" not in request:
                    chunk = conn.recv(65536)
                    assert chunk, "the child sent no request"
                    request += chunk
                time.sleep(0.2)  # the child waits for the answer
                os.kill(child.pid, signal.SIGSTOP)
                deadline = time.monotonic() + 10
                while not stopped(child.pid):
                    assert time.monotonic() < deadline, "the child did not stop"
                    time.sleep(0.01)
                conn.sendall(ANSWER)
                time.sleep(2.5)  # past the child's deadline (1 s + 1 s)
                for name in wake:
                    os.kill(child.pid, getattr(signal, name))
                out, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert out.strip() == "audio_frozen"
