"""The JimmyAI SoundClone API client: three calls, one connection pool per process.

Built on urllib3's connection pool directly rather than ``requests.Session`` on top
of it: a keep-alive GET costs about half the client CPU (measured in
``bench/http_client.py``), and polls are the hot path of every worker. The pool is
thread-safe; make one client per process and share it between threads.

Creates only reuse a connection used within ``create_max_idle_s`` (the keep-alive
race, clonequeue.api.connections); polls reuse any. A 401 re-reads the token file
once (a rotated secret) and, if the token changed, sends the request again: a 401
created nothing.

An answer's body is read within the read timeout *in all* and up to ``MAX_ANSWER_BYTES``:
urllib3's read timeout bounds each wait for bytes, not the answer, so a body that
trickles in a byte at a time held a worker's thread for good, and an answer is a small
JSON envelope (a bigger one is no answer of the API's). Either counts as no answer:
for a create the task may exist (``unknown``), a poll is polled again.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import urllib3
from pydantic import SecretStr

from clonequeue._version import __version__
from clonequeue.api.connections import begin_request, pool_for, request_was_sent
from clonequeue.api.models import AudioRequest, CloneRequest, RemoteTask
from clonequeue.api.responses import AnswerTooLargeError, network_error, parse_response
from clonequeue.config.token import TokenSource
from clonequeue.constants import AUDIO_PATH, CLONE_PATH, TASK_PATH_PREFIX
from clonequeue.errors import AuthenticationError
from clonequeue.metrics import API_CALLS, API_SECONDS, outcome_of

MAX_ANSWER_BYTES = 1 << 20  # an answer is a JSON envelope of a few hundred bytes
_READ_CHUNK = 64 * 1024


def read_answer(response: urllib3.BaseHTTPResponse, *, deadline: float, limit: int) -> bytes:
    """The whole body, before ``deadline`` (time.monotonic) and within ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise urllib3.exceptions.ReadTimeoutError(
                None,  # type: ignore[arg-type]
                "",
                "the answer took longer than the read timeout",
            )
        chunk = response.read1(_READ_CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise AnswerTooLargeError(f"the answer is larger than {limit:,} bytes")
        parts.append(chunk)


if TYPE_CHECKING:
    from clonequeue.config import Settings


class ApiClient:
    """Calls the API and returns :class:`RemoteTask` or raises an :class:`ApiError`.

    Requests are validated by their models before they get here; this class adds
    authentication, timeouts, envelope checks and error translation.
    """

    def __init__(
        self,
        base_url: str,
        token: SecretStr | TokenSource,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_connections: int = 64,
        create_max_idle_s: float | None = 1.0,
    ) -> None:
        parts = urlsplit(base_url)
        self._prefix = parts.path.rstrip("/")
        self._pool = pool_for(
            parts.scheme,
            parts.hostname or "",
            parts.port,
            maxsize=max_connections,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        )
        self._create_max_idle_s = create_max_idle_s
        self._read_timeout_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._token = (
            TokenSource(token.get_secret_value()) if isinstance(token, SecretStr) else token
        )
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"clonequeue/{__version__}",
        }

    @classmethod
    def from_settings(cls, settings: Settings, *, max_connections: int | None = None) -> ApiClient:
        """A client for the configured API; raises ConfigError when no token is set."""
        return cls(
            settings.api_base_url,
            settings.token_source(),
            connect_timeout_s=settings.http_connect_timeout_s,
            read_timeout_s=settings.http_read_timeout_s,
            max_connections=max_connections or settings.worker_concurrency,
            create_max_idle_s=settings.http_create_max_idle_s,
        )

    def __repr__(self) -> str:  # never show the headers: they hold the token
        return f"ApiClient({self._pool.scheme}://{self._pool.host}:{self._pool.port}{self._prefix})"

    def create_clone(self, request: CloneRequest) -> RemoteTask:
        """Start a clone (preview) task. Its answer carries the remote task id."""
        return self._send("POST", CLONE_PATH, request.to_body())

    def create_audio(self, request: AudioRequest) -> RemoteTask:
        """Start a production audio task with a cloned voice."""
        return self._send("POST", AUDIO_PATH, request.to_body())

    def get_task(self, task_id: str) -> RemoteTask:
        """Query a clone or audio task by id."""
        return self._send("GET", TASK_PATH_PREFIX + quote(task_id, safe=""), None)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> RemoteTask:
        label = path.rsplit("/", 1)[-1] if method == "POST" else "task"
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            try:
                return self._exchange(method, path, body)
            except AuthenticationError:
                if not self._token.reload():  # same token (or no file): the fleet pauses
                    raise
                return self._exchange(method, path, body)  # a rotated token: a 401 created nothing
        except Exception as exc:
            error = exc
            raise
        finally:
            API_SECONDS.labels(label).observe(time.perf_counter() - started)
            API_CALLS.labels(label, outcome_of(error)).inc()

    def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> RemoteTask:
        endpoint = f"{method} {path}"
        is_create = method == "POST"
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {**self._headers, "Authorization": self._token.header()}
        # connect, send, status line and headers within the two timeouts in all; the
        # body has its own deadline below
        exchange_s = self._connect_timeout_s + self._read_timeout_s
        begin_request(self._create_max_idle_s if is_create else None, time.monotonic() + exchange_s)
        try:
            response = self._pool.urlopen(
                method,
                self._prefix + path,
                body=payload,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
            )
            try:
                deadline = time.monotonic() + self._read_timeout_s
                data = read_answer(response, deadline=deadline, limit=MAX_ANSWER_BYTES)
            except BaseException:
                response.close()  # not back to the pool half read
                raise
            finally:
                response.release_conn()
        except Exception as exc:
            # urllib3's errors, socket errors, http.client's ValueError for a header it
            # refuses, anything else: whether a byte of the request was written decides
            # whether the API may hold it.
            error = network_error(
                exc, endpoint=endpoint, is_create=is_create, sent=request_was_sent()
            )
            raise error from exc
        return parse_response(
            status=response.status,
            body=data,
            retry_after=response.headers.get("Retry-After"),
            content_type=response.headers.get("Content-Type"),
            endpoint=endpoint,
            is_create=is_create,
        )
