"""Tornado handlers of the public API: HTTP in, engine call, HTTP out.

Fast path first: a request with no delay to add is answered synchronously (no
coroutine is made). Delays use ``asyncio.sleep`` so thousands of slow answers can
be outstanding without blocking anyone. Order of a request, as documented in
:mod:`clonequeue.simulator`: latency → outage / rate limit / random 5xx → auth →
body → effect → lost or slow answer. Before all of these, a request on a keep-alive
connection idle past ``idle_close_s`` is dropped unread (the keep-alive race).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from http.client import responses
from typing import Any

import tornado.iostream
import tornado.web
from tornado.http1connection import HTTP1Connection

from clonequeue.simulator import codes
from clonequeue.simulator.engine import Engine
from clonequeue.simulator.tasks import Kind

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def reason_of(status: int) -> str:
    return responses.get(status, "error").lower()


def dump_json(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class JsonHandler(tornado.web.RequestHandler):
    """JSON answers only, no ETag work, errors in the provider's envelope."""

    engine: Engine

    def initialize(self, engine: Engine) -> None:
        self.engine = engine

    def compute_etag(self) -> None:
        return None  # a poll must never be answered 304; and hashing every body costs

    def send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> Awaitable[None]:
        self.set_status(status)
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        if headers:
            for name, value in headers.items():
                self.set_header(name, value)
        result: Awaitable[None] = self.finish(dump_json(payload))
        return result

    def read_json(self) -> Any:
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise codes.Rejection(
                400, codes.BAD_REQUEST, f"the body is not valid JSON ({exc})"
            ) from exc

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Uncaught errors and tornado's own (405, ...) still answer in the envelope."""
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        self.finish(dump_json(codes.envelope(status_code * 100, reason_of(status_code))))


class ApiHandler(JsonHandler):
    """Shared steps of the three API endpoints; ``route`` names them in ledger counts."""

    route = "other"
    client_gone = False

    def on_connection_close(self) -> None:
        self.client_gone = True

    def idle_closed(self) -> bool:
        """True (and the connection dropped) if the server "had closed" this connection.

        The last answer's time is kept on the stream, which outlives the per-request
        connection objects of one keep-alive connection.
        """
        idle_close_s = self.engine.config.idle_close_s
        connection = self.request.connection
        stream = getattr(connection, "stream", None)
        if idle_close_s is None or stream is None:
            return False
        answered_at = getattr(stream, "clonequeue_answered_at", None)
        if answered_at is None or time.monotonic() - answered_at < idle_close_s:
            return False
        self.engine.ledger.count(self.request.method or "", self.route, "idle_closed")
        self.drop_connection()
        return True

    def on_finish(self) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.clonequeue_answered_at = time.monotonic()

    def drop_connection(self) -> None:
        """Close the connection without a byte of answer, as a crashed backend would."""
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.close()

    def answer(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self.engine.ledger.count(self.request.method or "", self.route, status)
        self.send_json(status, payload, headers)

    def reject(self, rejection: codes.Rejection) -> None:
        headers = None
        if rejection.retry_after_s is not None:
            headers = {"Retry-After": str(rejection.retry_after_s)}
        self.answer(rejection.http_status, rejection.body(), headers)

    def run(self, step: Callable[[], Awaitable[None] | None]) -> Awaitable[None] | None:
        """Run ``step`` now, or after ``latency_s`` (plus its jitter) when those are set."""
        if self.idle_closed():
            return None
        latency_s = self.engine.arrival_delay()
        if latency_s > 0:
            return self._after(latency_s, step)
        return step()

    async def _after(self, delay_s: float, step: Callable[[], Awaitable[None] | None]) -> None:
        await asyncio.sleep(delay_s)
        if self.client_gone:
            return  # the client gave up while we waited: nothing reached "the service"
        result = step()
        if result is not None:
            await result

    def answer_ok(self, data: dict[str, Any], *, slow: bool) -> Awaitable[None] | None:
        """A successful answer: held ``slow_s`` when ``slow``, else maybe trickling in."""
        engine = self.engine
        payload = codes.envelope(codes.OK, "ok", engine.padded(data))
        if slow:
            return self.answer_later(engine.config.slow_s, 200, payload)
        if engine.roll_trickle():
            return self.answer_trickling(200, payload)
        self.answer(200, payload)
        return None

    async def answer_later(self, delay_s: float, status: int, payload: object) -> None:
        await asyncio.sleep(delay_s)
        self.answer(status, payload)

    async def answer_trickling(self, status: int, payload: object) -> None:
        """Headers at once, then the body a byte every ``trickle_s`` until the client goes."""
        self.engine.ledger.count(self.request.method or "", self.route, status)
        body = dump_json(payload)
        self.set_status(status)
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        self.set_header("Content-Length", str(len(body)))
        try:
            for i in range(len(body)):
                if self.client_gone:
                    return
                self.write(body[i : i + 1])
                await self.flush()
                await asyncio.sleep(self.engine.config.trickle_s)
            self.finish()
        except tornado.iostream.StreamClosedError:
            return  # the client gave up

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.engine.ledger.count(self.request.method or "", self.route, status_code)
        super().write_error(status_code, **kwargs)


class CreateHandler(ApiHandler):
    """``POST /soundCloning/clones`` and ``/soundCloning/audios`` (one route each)."""

    def initialize(self, engine: Engine, kind: Kind) -> None:  # type: ignore[override]
        self.engine = engine
        self.kind = kind
        self.route = "clones" if kind is Kind.CLONE else "audios"

    def post(self) -> Awaitable[None] | None:
        return self.run(lambda: self._create(self.kind))

    def _create(self, kind: Kind) -> Awaitable[None] | None:
        engine = self.engine
        try:
            engine.admit()
            account = engine.authenticate(self.request.headers.get("Authorization"))
            created = engine.create(kind, account, self.read_json())
        except codes.Rejection as rejection:
            self.reject(rejection)
            return None
        if created.answer == "lost":
            engine.ledger.count("POST", self.route, "lost")
            self.drop_connection()  # the task exists and is paid for; no answer
            return None
        return self.answer_ok(created.data, slow=created.answer == "slow")


class TaskHandler(ApiHandler):
    """``GET /audios/{id}``: the task's status now; the poll's time goes in the ledger."""

    route = "task"

    def get(self, task_id: str) -> Awaitable[None] | None:
        return self.run(lambda: self._poll(task_id))

    def _poll(self, task_id: str) -> Awaitable[None] | None:
        engine = self.engine
        try:
            engine.admit()
            account = engine.authenticate(self.request.headers.get("Authorization"))
            data = engine.poll(account, task_id)
        except codes.Rejection as rejection:
            self.reject(rejection)
            return None
        return self.answer_ok(data, slow=engine.roll_slow())


class NotFoundHandler(ApiHandler):
    """Any other path: 404 in the envelope (counted unless it is an admin path)."""

    def prepare(self) -> None:
        if not self.request.path.startswith("/_sim/"):
            self.engine.ledger.count(self.request.method or "", "other", 404)
        self.send_json(404, codes.envelope(codes.NOT_FOUND, f"no such path: {self.request.path}"))
