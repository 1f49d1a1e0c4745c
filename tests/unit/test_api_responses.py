"""The one boundary where answers and network failures become our errors."""

from __future__ import annotations

import inspect
import json

import pytest
import urllib3.exceptions as u3

from clonequeue.api.responses import (
    NETWORK_ERRORS,
    Delivery,
    delivery_of,
    network_error,
    parse_response,
    parse_retry_after,
)
from clonequeue.errors import (
    ApiUnavailableError,
    AuthenticationError,
    ConfigError,
    InsufficientBalanceError,
    NotSentError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    TransientApiError,
)


def body(code: int | None, msg: str = "ok", data: object = None) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": data}).encode()


def parse(status: int, raw: bytes, *, create: bool = True, retry_after: str | None = None):
    return parse_response(
        status=status, body=raw, retry_after=retry_after, endpoint="POST /x", is_create=create
    )


def test_every_urllib3_exception_has_a_mapping() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(u3, inspect.isclass)
        if issubclass(c, Exception) and not issubclass(c, Warning) and c.__module__ == u3.__name__
    ]
    assert classes
    missing = [c.__name__ for c in classes if c not in NETWORK_ERRORS]
    assert missing == []


def test_http_client_errors_urllib3_lets_through_are_mapped() -> None:
    import http.client

    assert delivery_of(http.client.IncompleteRead(b"")) is Delivery.MAYBE_SENT


def test_connect_failures_were_not_sent() -> None:
    exc = u3.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    assert delivery_of(exc) is Delivery.NOT_SENT
    assert isinstance(network_error(exc, endpoint="POST /x", is_create=True), ApiUnavailableError)


def test_read_timeout_on_create_is_outcome_unknown_but_on_get_transient() -> None:
    exc = u3.ReadTimeoutError(None, "/x", "read timed out")  # type: ignore[arg-type]
    assert isinstance(network_error(exc, endpoint="POST /x", is_create=True), OutcomeUnknownError)
    assert isinstance(network_error(exc, endpoint="GET /x", is_create=False), ApiUnavailableError)


def test_connection_reset_after_sending_is_unknown() -> None:
    exc = u3.ProtocolError("Connection aborted.", ConnectionResetError())
    assert isinstance(network_error(exc, endpoint="POST /x", is_create=True), OutcomeUnknownError)


def test_bad_url_is_a_config_error() -> None:
    exc = u3.LocationParseError("x")
    assert isinstance(network_error(exc, endpoint="GET /x", is_create=False), ConfigError)


def test_success_envelope() -> None:
    task = parse(200, body(20000, data={"id": "audio_1", "status": "queued", "x": 1}))
    assert task.id == "audio_1"


def test_non_20000_code_is_an_error_even_on_http_200() -> None:
    with pytest.raises(RejectedError) as info:
        parse(200, body(40000, "fileUrl invalid"))
    assert info.value.code == 40000
    assert info.value.msg == "fileUrl invalid"
    assert info.value.http_status == 200


@pytest.mark.parametrize(
    ("status", "code", "msg", "error"),
    [
        (401, 40100, "unauthorized", AuthenticationError),
        (200, 40100, "token invalid", AuthenticationError),
        (402, 40200, "insufficient balance", InsufficientBalanceError),
        (200, 40200, "insufficient balance", InsufficientBalanceError),
        (200, 40005, "余额不足", InsufficientBalanceError),
        (429, 42900, "too many requests", RateLimitedError),
        (500, 50000, "internal", ApiUnavailableError),
        (503, 50300, "maintenance", ApiUnavailableError),
        (400, 40000, "bad request", RejectedError),
        (404, 40400, "not found", RejectedError),
        # a request's content, not the account (each paused the whole fleet for good)
        (200, 40003, "contentText contains forbidden words", RejectedError),
        (400, 40001, "Insufficient speech in the source audio", RejectedError),
        (400, 40004, "contentText has an invalid token at position 3", RejectedError),
        (200, 40004, "contentText has an invalid token at position 3", RejectedError),
        (400, None, "token invalid", RejectedError),  # a 400 is about the request
        (200, 40010, "Invalid token", AuthenticationError),
        (200, 40011, "insufficient funds", InsufficientBalanceError),
        # QA pass: a 200 with an unfamiliar code and these words failed a whole batch
        (200, 10001, "API key has expired", AuthenticationError),
        (200, 10001, "Invalid Authorization header", AuthenticationError),
        (200, 10001, "鉴权失败，令牌无效", AuthenticationError),
        (200, 10001, "未授权的访问", AuthenticationError),
        (200, 10002, "modelId has expired", RejectedError),  # expired, but not the key
        (410, None, "", RejectedError),
    ],
)
def test_classification(status: int, code: int | None, msg: str, error: type) -> None:
    with pytest.raises(error) as info:
        parse(status, body(code, msg))
    assert info.value.msg.startswith(msg)


def test_a_refused_token_names_the_token_file_and_the_probe() -> None:
    """A worker whose token came from CLONEQUEUE_API_TOKEN_FILE was told to check
    CLONEQUEUE_API_TOKEN, and not that a probe lifts the pause (operator QA pass)."""
    with pytest.raises(AuthenticationError) as info:
        parse(401, body(40100, "unauthorized"))
    assert "CLONEQUEUE_API_TOKEN_FILE" in info.value.msg
    assert "the next probe" in info.value.msg
    # QA: fixed in the environment, the workers still sent the old one until restarted
    assert "a token in the environment is read at start: restart the workers" in info.value.msg


def test_429_carries_retry_after() -> None:
    with pytest.raises(RateLimitedError) as info:
        parse(429, body(42900, "slow down"), retry_after="3")
    assert info.value.retry_after_s == 3


def test_504_on_a_create_is_unknown_but_on_a_poll_transient() -> None:
    with pytest.raises(OutcomeUnknownError):
        parse(504, b"<html>gateway timeout</html>")
    with pytest.raises(ApiUnavailableError):
        parse(504, b"<html>gateway timeout</html>", create=False)


def test_unreadable_200_on_a_create_is_unknown() -> None:
    with pytest.raises(OutcomeUnknownError):
        parse(200, b"<html>welcome</html>")
    with pytest.raises(OutcomeUnknownError):
        parse(200, body(20000, data={"status": "queued"}))  # no task id


def test_unreadable_200_on_a_poll_is_transient() -> None:
    with pytest.raises(ApiUnavailableError):
        parse(200, b"not json", create=False)


def test_html_error_page_is_classified_by_status() -> None:
    with pytest.raises(ApiUnavailableError):
        parse(502, b"<html>bad gateway</html>")
    with pytest.raises(RejectedError):
        parse(400, b"<html>bad request</html>")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("100000", 600.0),
        ("soon", None),
        (None, None),
        ("NaN", None),  # crashed the step: float("NaN") passes min/max (QA pass)
        ("inf", 600.0),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == pytest.approx(
        30
    )


def test_what_the_connection_wrote_beats_the_exception_type() -> None:
    ssl = u3.SSLError("EOF occurred in violation of protocol")
    assert delivery_of(ssl) is Delivery.NOT_SENT  # by type: a handshake
    assert delivery_of(ssl, sent=True) is Delivery.MAYBE_SENT  # but it came after writing
    reset = u3.ProtocolError("Connection aborted.", ConnectionResetError())
    assert delivery_of(reset, sent=False) is Delivery.NOT_SENT
    bad_url = u3.LocationValueError("bad")
    assert delivery_of(bad_url, sent=False) is Delivery.BAD_SETUP


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("Invalid header value b'Bearer sk_x\\n'"),
        u3.NameResolutionError("api.example", None, OSError("no such host")),  # type: ignore[arg-type]
        u3.NewConnectionError(None, "refused"),  # type: ignore[arg-type]
        u3.ConnectTimeoutError(None, "connect timed out"),
        u3.SSLError("handshake failure"),
        ConnectionRefusedError(),
    ],
)
def test_failures_before_sending_are_not_sent_and_retryable(exc: Exception) -> None:
    error = network_error(exc, endpoint="POST /x", is_create=True, sent=False)
    assert isinstance(error, NotSentError)
    assert isinstance(error, TransientApiError)  # steps.py retries it with backoff
    assert isinstance(network_error(exc, endpoint="POST /x", is_create=True), NotSentError)
    assert "sk_x" not in str(error)  # http.client's text quotes the header: never shown


def test_a_balance_refusal_says_how_creates_start_again() -> None:
    with pytest.raises(InsufficientBalanceError) as info:
        parse(402, body(40200, "insufficient balance"))
    assert info.value.msg == (
        "insufficient balance — top up the account: creates start again by themselves within "
        "CLONEQUEUE_PAUSE_PROBE_INTERVAL_S (a probe), or at once with `clonequeue resume`"
    )


def test_a_task_answer_that_echoes_the_token_is_redacted_before_it_is_recorded() -> None:
    """An API that quotes the key in a failed task's error (or anywhere in ``data``): the
    answer goes into the job's record in Redis and every export, so it is masked here."""
    from clonequeue.redaction import register_secrets

    token = "sk_CANARYecho_4f7e1d"
    register_secrets([token])
    data = {
        "id": "audio_9",
        "status": "failed",
        "error": f"internal: key {token} over quota",
        "detail": {"seen": [f"Bearer {token}"]},
    }
    task = parse(200, body(20000, data=data), create=False)
    assert task.error == "internal: key [REDACTED] over quota"
    assert token not in task.model_dump_json()
    assert task.model_dump()["detail"] == {"seen": ["Bearer [REDACTED]"]}


def test_an_answer_that_carries_the_created_task_is_taken_whatever_its_status() -> None:
    """A 500 with the success envelope and the task's id was retried: the task made twice."""
    for status in (500, 503, 302, 404):
        task = parse(status, body(20000, data={"id": "audio_9", "status": "queued"}))
        assert task.id == "audio_9"
    with pytest.raises(ApiUnavailableError):  # no task in it: the status decides
        parse(500, body(20000, data=None))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_our_address_and_a_303_to_a_create_is_unknown(status: int) -> None:
    """Each create had ended `unknown` (the answer unreadable), a batch at full speed."""
    for raw in (b"<html>Moved</html>", b"", body(30100, "moved")):
        with pytest.raises(ConfigError) as info:
            parse(status, raw)
        assert "check CLONEQUEUE_API_BASE_URL" in str(info.value)
        assert str(info.value).endswith("then `clonequeue resume`")  # creates pause
    with pytest.raises(ConfigError) as info:
        parse(status, b"", create=False)
    assert str(info.value).endswith("; polls go on meanwhile")  # nothing to resume (QA)
    with pytest.raises(OutcomeUnknownError):
        parse(303, b"")
    with pytest.raises(ConfigError):
        parse(303, b"", create=False)


def test_an_empty_refusal_names_its_status() -> None:
    with pytest.raises(RejectedError) as info:
        parse(410, b"")
    assert info.value.msg == "the API refused the request (HTTP 410)"


def test_a_token_quoted_where_the_body_is_cut_is_redacted_whole() -> None:
    from clonequeue.redaction import REDACTED, register_secrets

    token = "qa-secret-token-XYZ123"
    register_secrets([token])
    with pytest.raises(RejectedError) as info:
        parse(400, ("E" * 185 + "Bearer " + token).encode())
    assert "qa-secre" not in info.value.msg
    assert f"Bearer {REDACTED}"[:14] in info.value.msg  # the marker may be cut, never the token


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": 123, "status": "queued"}, ("123", "queued", None)),
        ({"id": "a", "status": "COMPLETED", "created": "2026-12-07T10:00:00Z", "model": 2},
         ("a", "COMPLETED", None)),
        ({"id": "a", "status": " completed ", "modelId": 123456}, ("a", "completed", "123456")),
        ({"id": "a", "status": None}, ("a", "queued", None)),
        ({"id": "a", "status": 3}, ("a", "3", None)),
    ],
)  # fmt: skip
def test_a_known_field_of_another_kind_does_not_throw_the_answer_away(
    data: dict[str, object], expected: tuple[str, str, str | None]
) -> None:
    task = parse(200, body(20000, data=data), create=False)
    assert (task.id, task.status, task.modelId) == expected


def test_a_file_url_must_be_http() -> None:
    for url in ("", "  ", "javascript:alert(1)", 7, {"u": 1}):
        data = {"id": "a", "status": "completed", "audioUrl": url}
        assert parse(200, body(20000, data=data), create=False).audioUrl is None
    data = {"id": "a", "status": "completed", "audioUrl": "https://x/a.mp3"}
    assert parse(200, body(20000, data=data), create=False).audioUrl == "https://x/a.mp3"


def test_an_answer_without_a_task_says_what_is_wrong() -> None:
    with pytest.raises(ApiUnavailableError) as info:
        parse(200, body(20000, data={"id": ["x"]}), create=False)
    assert "data.id" in info.value.msg
    with pytest.raises(OutcomeUnknownError) as unknown:
        parse(200, body(20000, data=None))
    assert "it holds no task" in unknown.value.msg


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ({}, "the API reported the task failed without a reason"),
        ([], "the API reported the task failed without a reason"),
        (["a", "b"], "a; b"),
        ({"reason": "x"}, '{"reason": "x"}'),
        ({"msg": "too short"}, "too short"),
    ],
)
def test_a_failed_tasks_reason_reads_as_text(error: object, text: str) -> None:
    data = {"id": "a", "status": "failed", "error": error}
    assert parse(200, body(20000, data=data), create=False).error_text() == text


@pytest.mark.parametrize(
    "answer",
    [
        b"[" * 200_000 + b"]" * 200_000,  # the JSON parser's recursion
        b'{"code": "' + b"9" * 5000 + b'", "msg": "x"}',  # int() of 5,000 digits
        # ~600 deep in a field nobody reads, in an otherwise good answer (the redactor's walk)
        b'{"code": 20000, "msg": "ok", "data": {"id": "audio_1", "status": "queued", "x": '
        + b'{"a": ' * 1200
        + b"1"
        + b"}" * 1200
        + b"}}",
    ],
    ids=["deep-json", "huge-code", "deep-extra-field"],
)
def test_an_answer_the_parsers_give_up_on_is_unreadable_not_a_crash(answer: bytes) -> None:
    """QA: a RecursionError or ValueError escaped the poll task at every re-drive, and
    the job never reached its deadline; on a create the step waited for its lease."""
    with pytest.raises(ApiUnavailableError, match=r"unreadable answer .*parser gave up"):
        parse_response(status=200, body=answer, retry_after=None, endpoint="GET t", is_create=False)
    with pytest.raises(OutcomeUnknownError, match=r"unreadable .*parser gave up"):
        parse_response(status=200, body=answer, retry_after=None, endpoint="POST c", is_create=True)


@pytest.mark.parametrize("charset", ["GBK", "gb18030", '"GB2312"'])
def test_an_answer_in_the_charset_its_content_type_names_is_read(charset: str) -> None:
    """QA: HTTP 200 {"code": 10086, "msg": "账户余额不足"} in GBK was unreadable: the
    create ended `unknown` (maybe billed) instead of pausing for the balance."""
    raw = json.dumps({"code": 10086, "msg": "账户余额不足"}, ensure_ascii=False).encode("gbk")
    with pytest.raises(InsufficientBalanceError, match="账户余额不足"):
        parse_response(
            status=200,
            body=raw,
            retry_after=None,
            endpoint="POST c",
            is_create=True,
            content_type=f"application/json; charset={charset}",
        )
    with pytest.raises(OutcomeUnknownError, match="unreadable"):  # no charset said: unreadable
        parse(200, raw)
