"""One webhook attempt: the event signed as Standard Webhooks says, sent to a checked address.

Headers ``webhook-id`` (the same on every retry of one event), ``webhook-timestamp``
(this attempt's time) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
id.timestamp.body>``, one per secret during a rotation), computed by the
``standardwebhooks`` package. The answer decides what happens next (spec,
"Retry schedule"): 2xx delivered; 410 the endpoint is disabled; 429, 5xx, timeouts
and network errors retried later (``Retry-After`` honoured); any other answer,
redirects included (never followed), stops.

One attempt takes at most its timeout *in all*: name lookup, connect, TLS, sending,
the status line and headers (the body is not read: the status decides). A per-read
timeout bounds each wait for a byte, not the answer: a receiver that sent a byte
every 2 s held a worker thread for 150 s, past the claim's lease, and was sent the
same delivery again and again (QA). :class:`DeadlineSocket` makes every wait end by
one deadline set when the attempt starts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import urllib3
from standardwebhooks.webhooks import Webhook
from urllib3.connection import HTTPConnection, HTTPSConnection

from clonequeue._version import __version__
from clonequeue.api.deadline import DeadlineSocket
from clonequeue.api.responses import retry_after_seconds
from clonequeue.config.webhook_url import UnsafeTargetError
from clonequeue.outputs.targets import ResolveTimeoutError, resolve

MAX_PAYLOAD_BYTES = 20_000  # a bigger job record is sent by reference
MAX_RETRY_AFTER_S = 24 * 3600.0

# What an attempt ends with; "gave_up" is the runner's word for a last "retry".
Verdict = Literal["delivered", "retry", "disable", "stop", "gave_up"]


@dataclass(frozen=True, slots=True)
class Attempt:
    verdict: Verdict
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    elapsed_ms: int = 0

    def record(self, at: float) -> dict[str, Any]:
        out: dict[str, Any] = {"at": round(at, 3), "ms": self.elapsed_ms, "verdict": self.verdict}
        if self.status is not None:
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


def event_body(event_type: str, at: float, data: dict[str, Any]) -> str:
    """The payload ``{type, timestamp, data}`` as the exact JSON text that is signed."""
    timestamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data}, separators=(",", ":")
    )


def job_event_data(record: dict[str, Any]) -> dict[str, Any]:
    """The job's result record, or a reference to it when it is too big to send."""
    if len(json.dumps(record)) <= MAX_PAYLOAD_BYTES - 200:
        return record
    return {
        "custom_id": record["custom_id"],
        "batch": record["batch"],
        "status": record["status"],
        "truncated": True,
        "results": f"clonequeue results {record['batch']} (the whole record, too big to send)",
    }


def signature(secrets: list[str], msg_id: str, at: float, body: str) -> str:
    """``v1,…`` per secret, space-separated (Standard Webhooks, "Signature scheme")."""
    stamp = datetime.fromtimestamp(int(at), UTC)
    return " ".join(Webhook(secret).sign(msg_id, stamp, body) for secret in secrets)


def send(
    url: str,
    msg_id: str,
    body: str,
    secrets: list[str],
    *,
    timeout_s: float,
    allow_private: bool,
    now: float | None = None,
    batch: str = "BATCH",
) -> Attempt:
    """Send one attempt and judge the answer; never raises for the receiver's faults.
    The attempt takes at most ``timeout_s`` in all, name lookup to the last header: past
    it, it is a timeout (retried). ``batch`` names the batch in the next step an error
    gives."""
    started = time.monotonic()
    deadline = started + timeout_s
    at = time.time() if now is None else now

    def done(verdict: Verdict, **kw: Any) -> Attempt:
        return Attempt(verdict, elapsed_ms=int((time.monotonic() - started) * 1000), **kw)

    if not secrets:
        return done(
            "stop",
            error="CLONEQUEUE_WEBHOOK_SECRET is not set on the worker: nothing "
            f"is sent unsigned; set it, then `clonequeue webhooks {batch} --redeliver`",
        )
    try:
        target = resolve(url, allow_private=allow_private, timeout_s=deadline - time.monotonic())
    except UnsafeTargetError as exc:
        return done("stop", error=str(exc))
    except ResolveTimeoutError:  # worded with the setting, not the few ms less left
        host = urlsplit(url).hostname
        return done("retry", error=f"cannot resolve {host} within {timeout_s:g} s")
    except OSError as exc:
        return done("retry", error=str(exc))
    headers = {
        "content-type": "application/json",
        "user-agent": f"clonequeue/{__version__}",
        "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": signature(secrets, msg_id, at, body),
    }
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = _DeadlineHTTPSPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host, deadline=deadline,
        )  # fmt: skip
    else:
        pool = _DeadlineHTTPPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1,
            deadline=deadline,
        )  # fmt: skip
    try:
        response = pool.urlopen(
            "POST", target.path, body=body.encode(), headers=headers,
            redirect=False, retries=False, preload_content=False, assert_same_host=False,
        )  # fmt: skip
        response.close()  # the body is not read: a 2xx is delivered however slow the rest
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        return done("retry", error=f"{type(exc).__name__}: {_what_failed(exc, timeout_s)}")
    finally:
        pool.close()
    status = response.status
    if 200 <= status < 300:
        return done("delivered", status=status)
    if status == 410:
        return done("disable", status=status, error="410 Gone: the endpoint is disabled")
    if status == 429 or status >= 500:
        return done(
            "retry",
            status=status,
            error=f"HTTP {status}",
            retry_after_s=retry_after(response.headers.get("retry-after"), at),
        )
    return done("stop", status=status, error=f"HTTP {status}: not retried")


def _what_failed(exc: urllib3.exceptions.HTTPError, timeout_s: float) -> str:
    """What went wrong, in the words an operator checks the receiver with (a refused
    connection read "no answer within 5 s or the connection failed", after 1 ms)."""
    errors = urllib3.exceptions
    if isinstance(exc, errors.NameResolutionError):
        return "host name not found"
    if isinstance(exc, errors.NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return f"cannot connect: {cause.strerror}"
        return "cannot connect"
    if isinstance(exc, errors.ConnectTimeoutError):
        return f"no connection within {timeout_s:g} s"
    if isinstance(exc, errors.ReadTimeoutError) or _timed_out(exc):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, errors.ProtocolError):
        return "the connection closed before an answer"
    return "the request failed"


def _timed_out(exc: BaseException) -> bool:
    """A timeout under another name: the deadline hit while the request was being sent
    reads ``ProtocolError('Connection aborted.', TimeoutError(...))``."""
    seen = [exc.__cause__, exc.__context__, *exc.args]
    return any(isinstance(cause, TimeoutError) for cause in seen)


# --- one deadline for the whole attempt -------------------------------------------------------


class _DeadlineMixin:
    """For urllib3 connections: connect (and the TLS handshake, which CPython bounds in
    total by the socket's timeout) within the time left, then wrap the socket."""

    timeout: Any
    sock: Any

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise urllib3.exceptions.ConnectTimeoutError(self, "the attempt's time ran out")
        if not isinstance(self.timeout, int | float) or self.timeout > left:
            self.timeout = left
        super().connect()  # type: ignore[misc]
        self.sock = DeadlineSocket(self.sock, lambda: self.deadline)


class _DeadlineHTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a receiver's ``Retry-After`` (capped by :func:`next_wait`, not here)."""
    return retry_after_seconds(value, now=now)


def next_wait(schedule: tuple[float, ...], tries: int, retry_after_s: float | None) -> float | None:
    """The wait before attempt ``tries`` (0-based), or None when the schedule is spent."""
    if tries >= len(schedule):
        return None
    wait = schedule[tries]
    if retry_after_s is not None:  # honoured, but a receiver cannot park us past a day
        wait = max(wait, min(retry_after_s, MAX_RETRY_AFTER_S))
    return wait
