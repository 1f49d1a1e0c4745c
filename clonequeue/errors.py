"""Every error clonequeue raises on purpose, as one tree.

Callers act on the class, never on message text::

    ClonequeueError
    ├── ConfigError                  a setting is missing or invalid (names the variable)
    ├── InputError                   a job row or request field breaks a rule (names field + rule)
    ├── StoreError                   Redis cannot be reached, or holds data we did not write
    ├── ProducerError                a submission cannot go ahead (clonequeue.producers.errors)
    │   ├── UnreadableInputError     the input cannot be opened or read to the end
    │   ├── EstimateTooHighError     the batch would bill more than --max-chars
    │   └── BatchNotFoundError       no such batch (never made, purged or expired)
    ├── LocalServiceError            a local Redis/simulator/worker did not start (local/)
    ├── MissingExtraError            an optional package (pyarrow, pandas, polars) is needed
    └── ApiError                     the JimmyAI API said no, or could not be heard
        ├── TransientApiError        nothing was created; the same request may succeed later
        │   ├── ApiUnavailableError  5xx, a read (GET) that failed or was unreadable
        │   │   └── NotSentError     failed before a byte was sent (bad header, refused,
        │   │                        DNS, TLS handshake, connect timeout): safe to re-send
        │   └── RateLimitedError     429 (or a rate-limit code); ``retry_after_s`` says when
        ├── FleetBlockedError        no request will succeed until an operator acts: pause creates
        │   ├── AuthenticationError  401/403: the token is wrong or revoked
        │   └── InsufficientBalanceError  the account cannot pay for more tasks
        ├── RejectedError            this request will never succeed as sent (other 4xx, non-20000)
        └── OutcomeUnknownError      a create went out and no answer came back: the task may
                                     exist and be billed, so it is never re-sent automatically

Messages never contain the API token: an API error's text (which may quote what it
was sent) is redacted when the error is made, before it reaches a job record or log.
"""

from __future__ import annotations

from clonequeue.redaction import redact


class ClonequeueError(Exception):
    """Root of every error raised on purpose by clonequeue."""


class ConfigError(ClonequeueError):
    """A setting is missing or invalid; the message names the variable."""


class InputError(ClonequeueError):
    """A job row or request field breaks a rule; the message names field and rule."""


class MissingExtraError(ClonequeueError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


class StoreError(ClonequeueError):
    """Redis cannot be reached, or a record there is not in the shape we wrote."""


class ApiError(ClonequeueError):
    """A call to the JimmyAI API failed.

    ``code`` and ``msg`` are the API's own envelope fields, kept verbatim when
    the API sent them; ``http_status`` is the HTTP status when one arrived.
    """

    def __init__(
        self,
        msg: str,
        *,
        endpoint: str = "",
        http_status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.msg = redact(msg)
        self.endpoint = endpoint
        self.http_status = http_status
        self.code = code
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.endpoint] if self.endpoint else []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        head = " ".join(parts)
        return f"{head}: {self.msg}" if head else self.msg


class TransientApiError(ApiError):
    """Nothing was created; the same request may succeed if sent again later."""

    def __init__(self, msg: str, *, retry_after_s: float | None = None, **kwargs: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(msg, **kwargs)  # type: ignore[arg-type]


class ApiUnavailableError(TransientApiError):
    """The API could not be reached, answered 5xx, or gave an unreadable answer to a read."""


class NotSentError(ApiUnavailableError):
    """The request failed before a byte of it was sent, so the API cannot hold its task.

    Connection refused, DNS failure, TLS handshake failure, connect timeout, or a
    header value that HTTP forbids. A create that fails this way is retried like a 5xx.
    """


class RateLimitedError(TransientApiError):
    """The API answered 429 (or a rate-limit code); wait ``retry_after_s`` before the next call."""


class FleetBlockedError(ApiError):
    """No request can succeed until an operator acts; every worker should stop creating."""


class AuthenticationError(FleetBlockedError):
    """The API rejected the token (401/403)."""


class InsufficientBalanceError(FleetBlockedError):
    """The account's balance cannot pay for another task."""


class RejectedError(ApiError):
    """The API refused this request for good (validation, other 4xx, non-20000 codes)."""


class OutcomeUnknownError(ApiError):
    """A create request was sent but its answer never arrived.

    The remote task may exist and be billed. The API has no idempotency key and
    no way to list tasks, so the job is reported, never re-sent automatically.
    """
