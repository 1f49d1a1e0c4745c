"""One webhook attempt against a real local HTTP server: each answer's verdict."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from clonequeue.outputs import webhooks as wh

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, object]]]:
    state: dict[str, object] = {"status": 200, "headers": {}, "delay": 0.0, "seen": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state["seen"].append((dict(self.headers.items()), body))  # type: ignore[attr-defined]
            time.sleep(float(state["delay"]))  # type: ignore[arg-type]
            self.send_response(int(state["status"]))  # type: ignore[call-overload]
            for k, v in dict(state["headers"]).items():  # type: ignore[call-overload]
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", state
    httpd.shutdown()
    httpd.server_close()


def attempt(url: str) -> wh.Attempt:
    body = wh.event_body("job.completed", time.time(), {"custom_id": "x"})
    return wh.send(url, "msg_1", body, [SECRET], timeout_s=0.5, allow_private=True)


@pytest.mark.parametrize(
    ("status", "headers", "verdict", "retry_after"),
    [
        (204, {}, "delivered", None),
        (500, {}, "retry", None),
        (503, {"Retry-After": "30"}, "retry", 30.0),
        (429, {"Retry-After": "7"}, "retry", 7.0),
        (410, {}, "disable", None),
        (400, {}, "stop", None),
        (302, {"Location": "http://169.254.169.254/"}, "stop", None),  # never followed
    ],
)
def test_each_answer_decides_what_comes_next(
    server: tuple[str, dict[str, object]],
    status: int,
    headers: dict[str, str],
    verdict: str,
    retry_after: float | None,
) -> None:
    url, state = server
    state.update(status=status, headers=headers)
    result = attempt(url)
    assert (result.verdict, result.status, result.retry_after_s) == (verdict, status, retry_after)
    sent_headers, body = state["seen"][0]  # type: ignore[index]
    assert len(state["seen"]) == 1  # type: ignore[arg-type]
    assert Webhook(SECRET).verify(body, sent_headers)["data"] == {"custom_id": "x"}


def test_a_slow_receiver_times_out_and_is_retried(server: tuple[str, dict[str, object]]) -> None:
    url, state = server
    state["delay"] = 2.0
    started = time.monotonic()
    result = attempt(url)
    assert result.verdict == "retry"
    assert result.error == "ReadTimeoutError: no answer within 0.5 s"
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_retried_and_a_private_target_never_reached(
    server: tuple[str, dict[str, object]],
) -> None:
    url, state = server
    body = wh.event_body("job.failed", time.time(), {})
    refused = wh.send(url, "m", body, [SECRET], timeout_s=0.5, allow_private=False)
    assert refused.verdict == "stop"
    assert "loopback" in (refused.error or "")
    assert state["seen"] == []
    unsigned = wh.send(url, "m", body, [], timeout_s=0.5, allow_private=True)
    assert unsigned.verdict == "stop"
    assert state["seen"] == []  # nothing goes out unsigned
    dead = wh.send("http://127.0.0.1:1/x", "m", body, [SECRET], timeout_s=0.5, allow_private=True)
    assert dead.verdict == "retry"
    # what happened, not "no answer within 0.5 s or the connection failed" (it took 1 ms)
    assert dead.error == "NewConnectionError: connection refused"
