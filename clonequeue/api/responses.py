"""Turn what came back (or failed to) into a :class:`RemoteTask` or one of our errors.

This is the one boundary where urllib3's exceptions and the provider's envelope are
translated. Error codes are not documented, so classification is defensive:

* a create whose request may have reached the server but got no readable answer
  is :class:`OutcomeUnknownError` (never re-sent);
* a failure before a byte of the request was written (refused, DNS, TLS handshake,
  connect timeout, a header value HTTP forbids) is :class:`NotSentError`, retried;
  the client says which it was (clonequeue.api.connections), the exception's type
  decides only when it cannot;
* 5xx and 429 are transient (the provider is assumed to reject before creating —
  see README, Assumptions);
* 401/403 and balance problems block the whole fleet;
* every other non-20000 answer is a permanent rejection, ``code``/``msg`` verbatim.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import re
import time
from enum import Enum
from typing import Any, NoReturn

import urllib3.exceptions as u3
from pydantic import ValidationError

from clonequeue.api.models import RemoteTask, describe_validation_error
from clonequeue.constants import SUCCESS_CODE
from clonequeue.errors import (
    ApiError,
    ApiUnavailableError,
    AuthenticationError,
    ConfigError,
    InsufficientBalanceError,
    NotSentError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
)
from clonequeue.redaction import REDACTOR

MAX_RETRY_AFTER_S = 600.0
# Words about the account, not a request's content: "insufficient" alone was also
# "insufficient speech in the source audio", "forbidden" also "contains forbidden words"
# and "invalid token" also "contentText has an invalid token at position 3".
_BALANCE_WORDS = (
    "balance",
    "insufficient fund",
    "insufficient credit",
    "insufficient quota",
    "余额",
    "欠费",
    "arrears",
)
# The operator's next step: this error pauses creates fleet-wide (README, "How it works").
TOP_UP = (
    "top up the account: creates start again by themselves within "
    "CLONEQUEUE_PAUSE_PROBE_INTERVAL_S (a probe), or at once with `clonequeue resume`"
)
FIX_TOKEN = (
    "check CLONEQUEUE_API_TOKEN (a token in the environment is read at start: restart the "
    "workers with the right one) or the file CLONEQUEUE_API_TOKEN_FILE names (a changed "
    "file is read again, and the next probe, within CLONEQUEUE_PAUSE_PROBE_INTERVAL_S, starts "
    "creates again; or at once with `clonequeue resume`)"
)
# Under HTTP 200 a wrong word costs a pause that the next probe lifts (the token works);
# a missed one failed every job of a batch in seconds, "rejected" (QA pass: "API key has
# expired", "Invalid Authorization header", "鉴权失败，令牌无效").
_AUTH_WORDS = re.compile(
    r"unauthori[sz]ed|token (?:is )?(?:invalid|expired|revoked)|token has expired"
    r"|invalid (?:api )?(?:token|key)\b(?!\s+(?:at|in|on|near|after|before)\b)"
    r"|invalid api key|api key (?:is |has )?(?:invalid|expired|revoked|been revoked)"
    r"|invalid authori[sz]ation|authentication failed|access denied|permission denied"
    r"|鉴权|令牌(?:无效|过期|已过期|错误)|认证失败|未授权|未认证|密钥(?:无效|错误|过期)"
)
_RATE_WORDS = ("rate limit", "too many requests", "频繁", "限流")


class Delivery(Enum):
    """How far a failed request got, which decides whether a create may be re-sent."""

    NOT_SENT = "not sent"  # nothing reached the server: safe to send again
    MAYBE_SENT = "maybe sent"  # the server may have acted on it: a create's outcome is unknown
    BAD_SETUP = "bad setup"  # our configuration is wrong: no retry will help


# Every urllib3 exception class, most specific first where they inherit from each other.
# tests/unit/test_api_responses.py checks that each class in urllib3.exceptions is listed.
NETWORK_ERRORS: dict[type[BaseException], Delivery] = {
    u3.NameResolutionError: Delivery.NOT_SENT,
    u3.NewConnectionError: Delivery.NOT_SENT,
    u3.ConnectTimeoutError: Delivery.NOT_SENT,
    u3.ProxyError: Delivery.NOT_SENT,
    u3.SSLError: Delivery.NOT_SENT,  # raised by the handshake, before the request is written
    u3.EmptyPoolError: Delivery.NOT_SENT,
    u3.ClosedPoolError: Delivery.NOT_SENT,
    u3.FullPoolError: Delivery.NOT_SENT,
    u3.PoolError: Delivery.NOT_SENT,
    u3.ReadTimeoutError: Delivery.MAYBE_SENT,
    u3.TimeoutError: Delivery.MAYBE_SENT,
    u3.ProtocolError: Delivery.MAYBE_SENT,  # connection reset or closed mid-exchange
    u3.IncompleteRead: Delivery.MAYBE_SENT,
    u3.InvalidChunkLength: Delivery.MAYBE_SENT,
    u3.ResponseNotChunked: Delivery.MAYBE_SENT,
    u3.DecodeError: Delivery.MAYBE_SENT,
    u3.InvalidHeader: Delivery.MAYBE_SENT,
    u3.BodyNotHttplibCompatible: Delivery.BAD_SETUP,
    u3.HeaderParsingError: Delivery.MAYBE_SENT,
    u3.ResponseError: Delivery.MAYBE_SENT,
    u3.MaxRetryError: Delivery.MAYBE_SENT,
    u3.UnrewindableBodyError: Delivery.BAD_SETUP,
    u3.TimeoutStateError: Delivery.BAD_SETUP,
    u3.HostChangedError: Delivery.BAD_SETUP,
    u3.ProxySchemeUnsupported: Delivery.BAD_SETUP,
    u3.ProxySchemeUnknown: Delivery.BAD_SETUP,
    u3.URLSchemeUnknown: Delivery.BAD_SETUP,
    u3.LocationParseError: Delivery.BAD_SETUP,
    u3.LocationValueError: Delivery.BAD_SETUP,
    u3.RequestError: Delivery.MAYBE_SENT,
    u3.HTTPError: Delivery.MAYBE_SENT,
    http.client.HTTPException: Delivery.MAYBE_SENT,  # e.g. IncompleteRead, let through
    ConnectionRefusedError: Delivery.NOT_SENT,
    OSError: Delivery.MAYBE_SENT,  # a socket error urllib3 let through
    # http.client refuses a header value (e.g. a newline in it) or URL before writing;
    # urllib3's LocationValueError, a subclass, is listed above as a setup problem.
    ValueError: Delivery.NOT_SENT,
}


def delivery_of(exc: BaseException, *, sent: bool | None = None) -> Delivery:
    """How far the request got before ``exc``.

    ``sent`` is what the connection saw (a byte written or not) when known: it beats
    the type, which urllib3 raises the same before and after writing (``SSLError``).
    Otherwise MRO order picks the most specific entry of :data:`NETWORK_ERRORS`.
    """
    by_type = next(
        (NETWORK_ERRORS[cls] for cls in type(exc).__mro__ if cls in NETWORK_ERRORS),
        Delivery.MAYBE_SENT,
    )
    if by_type is Delivery.BAD_SETUP or sent is None:
        return by_type
    return Delivery.MAYBE_SENT if sent else Delivery.NOT_SENT


def network_error(
    exc: BaseException, *, endpoint: str, is_create: bool, sent: bool | None = None
) -> ApiError | ConfigError:
    """Our error for a request that raised ``exc`` instead of returning a response.

    The message names the exception's type, never its text: http.client's text for
    a refused header quotes the header's value (the token).
    """
    delivery = delivery_of(exc, sent=sent)
    reason = _short_reason(exc)
    if delivery is Delivery.BAD_SETUP:
        return ConfigError(
            f"{endpoint}: cannot send the request ({reason}); check CLONEQUEUE_API_BASE_URL"
        )
    if delivery is Delivery.MAYBE_SENT and is_create:
        return OutcomeUnknownError(
            f"the request was sent but no answer came back ({reason}); the task may exist "
            "and be billed, so it is not sent again automatically",
            endpoint=endpoint,
        )
    if delivery is Delivery.NOT_SENT:
        return NotSentError(
            f"the request was not sent ({reason}): the API holds nothing from it; it is sent again",
            endpoint=endpoint,
        )
    return ApiUnavailableError(f"the API could not be reached ({reason})", endpoint=endpoint)


class AnswerTooLargeError(u3.ProtocolError):
    """The answer's body went past the client's MAX_ANSWER_BYTES."""


def _short_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, AnswerTooLargeError):  # the class's name told a user nothing (QA)
        return f"{exc}, past any answer of the API's: not read to its end"
    if isinstance(exc, u3.ReadTimeoutError):
        return "read timeout"
    if isinstance(exc, u3.ConnectTimeoutError) and not isinstance(exc, u3.NewConnectionError):
        return "connect timeout"
    if isinstance(exc, u3.NewConnectionError):
        return "connection refused or host unreachable"
    if isinstance(exc, ValueError) and not isinstance(exc, u3.HTTPError):
        return "a header value or the URL holds a character HTTP forbids"
    cause = exc.__context__ or exc.__cause__
    detail = f": {type(cause).__name__}" if cause is not None else ""
    return f"{name}{detail}"


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), at least 0
    and uncapped; None when absent or unreadable. The API's and the webhooks' one parser."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):  # "NaN" parses as a float, and min/max let it through
        return None
    return max(seconds, 0.0)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from the API's ``Retry-After``, at most ``MAX_RETRY_AFTER_S``."""
    seconds = retry_after_seconds(value, now=now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


def retry_after_text(seconds: float) -> str:
    """``"30 s"``; at the cap, what it stands for (a Retry-After of 99999999 was said as
    "Retry-After 600 s", which the API never sent: QA pass)."""
    if seconds >= MAX_RETRY_AFTER_S:
        return f"{MAX_RETRY_AFTER_S:.0f} s or more (the longest waited out)"
    return f"{seconds:.0f} s"


def parse_response(
    *,
    status: int,
    body: bytes,
    retry_after: str | None,
    endpoint: str,
    is_create: bool,
    content_type: str | None = None,
) -> RemoteTask:
    """The task in a successful answer, or raise the error the answer means.

    ``content_type``'s charset is honoured where the body is not UTF-8 JSON (a balance
    refusal in GBK was read as an unreadable answer, and its job as maybe billed).

    An answer the parsers give up on (JSON nested thousands deep: RecursionError; a
    number of thousands of digits: ValueError) is unreadable like any other, never an
    exception of its own: one escaped the poll task, which raised at every re-drive,
    and the job never reached its deadline (QA pass).
    """
    try:
        return _parse(status, _as_utf8(body, content_type), retry_after, endpoint, is_create)
    except (RecursionError, ValueError) as exc:
        _unreadable(status, endpoint, is_create, f"the parser gave up on it: {type(exc).__name__}")


def _parse(
    status: int, body: bytes, retry_after: str | None, endpoint: str, is_create: bool
) -> RemoteTask:
    envelope = _decode(body)
    if 300 <= status < 400 and not (envelope is not None and envelope.get("data")):
        _redirected(status, endpoint, is_create)
    code = _int_or_none(envelope.get("code")) if envelope is not None else None
    msg = str(envelope.get("msg", "")) if envelope is not None else ""
    if code == SUCCESS_CODE and envelope is not None:
        try:
            # redacted: the answer goes into the job's record and every export, and an
            # API that quotes the key in a task's error would put the token there
            return RemoteTask.model_validate(REDACTOR.redact_value(envelope.get("data")))
        except ValidationError as exc:
            if 200 <= status < 300:
                _unreadable(status, endpoint, is_create, _data_problem(exc))
        # Any other status with the success envelope but no task in it: the status
        # decides. With a task, it exists whatever the status says (a 500 that carried
        # the created task's id was retried, and the task made twice).
    if envelope is None or (code is None and 200 <= status < 300):
        if status >= 300:
            raise classify(
                status=status,
                code=None,
                msg=_snippet(body),
                endpoint=endpoint,
                retry_after=retry_after,
                is_create=is_create,
            )
        _unreadable(status, endpoint, is_create, "it is not the API's JSON envelope")
    raise classify(
        status=status,
        code=code,
        msg=msg or _snippet(body),
        endpoint=endpoint,
        retry_after=retry_after,
        is_create=is_create,
    )


def classify(
    *,
    status: int,
    code: int | None,
    msg: str,
    endpoint: str,
    retry_after: str | None,
    is_create: bool,
) -> ApiError:
    """The error an answer with ``status``/``code``/``msg`` stands for."""
    where: dict[str, Any] = {"endpoint": endpoint, "http_status": status, "code": code}
    code_family = code // 100 if code is not None and 10000 <= code < 100000 else None
    # The words decide only under an answer whose HTTP status says nothing (200 with a
    # code): a 400 is about this request, whatever its words ("Insufficient speech in
    # the source audio", HTTP 400, paused the whole fleet for good as "balance").
    lowered = msg.lower() if status < 300 else ""
    if status == 429 or code_family == 429 or any(w in lowered for w in _RATE_WORDS):
        return RateLimitedError(
            msg or "too many requests", retry_after_s=parse_retry_after(retry_after), **where
        )
    if status in (401, 403) or code_family in (401, 403) or _AUTH_WORDS.search(lowered):
        return AuthenticationError(f"{msg or 'unauthorized'} — {FIX_TOKEN}", **where)
    if status == 402 or code_family == 402 or any(w in lowered for w in _BALANCE_WORDS):
        return InsufficientBalanceError(f"{msg or 'insufficient balance'} — {TOP_UP}", **where)
    if status == 504 and is_create:
        # A gateway timed out waiting for the backend, which may have created the task.
        return OutcomeUnknownError(
            f"{msg or 'gateway timeout'}: the task may exist and be billed; not sent again",
            **where,
        )
    if status >= 500 or (code_family is not None and 500 <= code_family < 600):
        return ApiUnavailableError(
            msg or "server error", retry_after_s=parse_retry_after(retry_after), **where
        )
    return RejectedError(msg or f"the API refused the request (HTTP {status})", **where)


def _redirected(status: int, endpoint: str, is_create: bool) -> NoReturn:
    """A redirect is our address, not the request: creates pause fleet-wide until
    `clonequeue resume` (each create of a batch had ended `unknown` at full speed). A
    303 to a create may point at what it made: that one's outcome is unknown."""
    if status == 303 and is_create:
        raise OutcomeUnknownError(
            "HTTP 303 See Other: the task may exist and be billed; not sent again",
            endpoint=endpoint,
            http_status=status,
        )
    # only creates pause (a poll is polled again): `resume` is theirs to name (QA pass)
    then = ", then `clonequeue resume`" if is_create else "; polls go on meanwhile"
    raise ConfigError(
        f"{endpoint}: HTTP {status}: the API redirected the request (not followed); check "
        "CLONEQUEUE_API_BASE_URL (an http:// address the site sends on to https://?)" + then
    )


def _data_problem(exc: ValidationError) -> str:
    """What is wrong with an answer's ``data``, in a few words."""
    lines = describe_validation_error(exc, prefix="data.")
    if any(line.startswith("data.: ") for line in lines):  # data itself, not a field
        return "it holds no task"
    return "; ".join(lines)[:200]


def _unreadable(status: int, endpoint: str, is_create: bool, why: str) -> NoReturn:
    if is_create:
        raise OutcomeUnknownError(
            f"HTTP {status} but the answer is unreadable ({why}); the task may exist and be "
            "billed, so it is not sent again automatically",
            endpoint=endpoint,
            http_status=status,
        )
    raise ApiUnavailableError(f"unreadable answer ({why})", endpoint=endpoint, http_status=status)


_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", re.IGNORECASE)


def _as_utf8(body: bytes, content_type: str | None) -> bytes:
    """``body`` re-encoded as UTF-8 when its ``Content-Type`` names another charset
    (GBK, GB18030, Big5, …) and it is not UTF-8 already; else as it is."""
    found = _CHARSET.search(content_type or "")
    if found is None or found.group(1).lower().replace("_", "-") in ("utf-8", "utf8"):
        return body
    try:
        body.decode("utf-8")
        return body  # already UTF-8, whatever the header says
    except UnicodeDecodeError:
        pass
    try:
        return body.decode(found.group(1)).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body  # an unknown charset, or not that one: read as it came


def _decode(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _snippet(body: bytes, limit: int = 200) -> str:
    """The body's start, redacted before it is cut: a secret cut in two is one the
    redactor no longer knows (a token quoted at character 190 showed its first 8)."""
    text = REDACTOR.redact(body.decode("utf-8", "replace").strip())
    return text[:limit] + ("…" if len(text) > limit else "")
