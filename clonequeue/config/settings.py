"""The one typed settings object, read from ``CLONEQUEUE_*`` variables and ``.env``.

Build it once with :func:`load_settings` at process start and pass it in; nothing
reads the environment at import time.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from clonequeue.config.redis_urls import (
    is_sentinel_url,
    parse_sentinel_url,
    shown_url,
)
from clonequeue.config.token import TokenSource, clean_token, read_token_file
from clonequeue.config.webhook_url import UnsafeTargetError, check_url
from clonequeue.constants import DEFAULT_API_BASE_URL, DEFAULT_NAMESPACE

ENV_PREFIX = "CLONEQUEUE_"


def _split_url(value: str, rule: str) -> tuple[str, str | None, str]:
    """``value``'s scheme, host and path; a ValueError saying ``rule`` if it cannot be
    parsed. urlsplit's own message quotes the bad part (``'TOKEN' does not appear to be
    an IPv4 or IPv6 address``), which may be a secret: it is never passed on."""
    try:
        parts = urlsplit(value)
        return parts.scheme, parts.hostname, parts.path
    except ValueError:
        raise ValueError(f"{rule} (this one cannot be parsed)") from None


def _http_url(value: str) -> str:
    rule = "must be an http(s) URL such as https://www.jimmyai.cn"
    scheme, hostname, _ = _split_url(value, rule)
    if scheme not in ("http", "https") or not hostname:
        raise ValueError(rule)
    return value.rstrip("/")


def _redis_url(value: str) -> str:
    if is_sentinel_url(value):
        parse_sentinel_url(value)
        return value
    rule = (
        "must be a Redis URL such as redis://127.0.0.1:6379/0, or Sentinel's "
        "sentinel://h1:26379;sentinel://h2:26379"
    )
    scheme, hostname, path = _split_url(value, rule)
    if scheme not in ("redis", "rediss", "unix") or not (hostname or path):
        raise ValueError(rule)
    return value


def _broker_url(value: str) -> str:
    from kombu.transport import TRANSPORT_ALIASES

    if is_sentinel_url(value):
        parse_sentinel_url(value)
        return value
    rule = (
        "must be a kombu broker URL such as redis://127.0.0.1:6379/0 "
        "or amqp://guest:guest@127.0.0.1:5672//"
    )
    scheme = _split_url(value, rule)[0].split("+")[0]
    if scheme not in TRANSPORT_ALIASES:
        raise ValueError(rule)
    return value


def _rate_limit(value: str) -> str:
    from limits import parse

    if value.strip().lower() == "auto":
        return "auto"
    try:
        parse(value)
    except ValueError:
        raise ValueError("must read like '20/second' or '600/minute', or be 'auto'") from None
    return value


def _namespace(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError("must be letters, digits, '-' or '_'")
    return value


def _seconds_list(value: Any) -> Any:
    """'[0, 5, 300]' or '0,5,300' (from the environment or an override) as a list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [float(part) for part in text.split(",") if part.strip()]
    return value


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
SecondsTuple = Annotated[tuple[float, ...], BeforeValidator(_seconds_list)]
RedisUrlStr = Annotated[str, AfterValidator(_redis_url)]
BrokerUrlStr = Annotated[str, AfterValidator(_broker_url)]
RateLimitStr = Annotated[str, AfterValidator(_rate_limit)]
NamespaceStr = Annotated[str, AfterValidator(_namespace)]


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """Everything an operator can tune. Each field is ``CLONEQUEUE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",  # unknown CLONEQUEUE_* names are caught by check_unknown_variables
        validate_default=True,
    )

    # --- The JimmyAI API --------------------------------------------------------
    api_base_url: HttpUrlStr = Field(
        DEFAULT_API_BASE_URL, description="Base URL of the JimmyAI API (or the simulator)."
    )
    api_token: SecretStr | None = Field(None, description="Bearer token for the API.")
    api_token_file: Path | None = Field(
        None, description="File holding the token (e.g. a mounted secret); instead of API_TOKEN."
    )
    http_connect_timeout_s: PositiveFloat = Field(5.0, description="TCP/TLS connect timeout.")
    http_read_timeout_s: PositiveFloat = Field(
        30.0, description="Wait for an answer this long; a create left unanswered is 'unknown'."
    )
    http_create_max_idle_s: float = Field(
        1.0,
        ge=0.0,
        description="A create reuses a keep-alive connection only if it was used this recently "
        "(else it opens a fresh one: no keep-alive race); 0 opens one for every create.",
    )
    api_rate_limit: RateLimitStr = Field(
        "20/second",
        description="Global request rate over all workers, e.g. '20/second' (the ceiling of "
        "the adaptive rate), or 'auto' (no known ceiling: probe for the provider's limit).",
    )
    max_in_flight: PositiveInt = Field(
        500, description="Remote tasks (clones + audios) running at once, over all workers."
    )

    # --- Redis and the broker ------------------------------------------------------
    redis_url: RedisUrlStr = Field(
        "redis://127.0.0.1:6379/0", description="Job store (and the default broker)."
    )
    broker_url: BrokerUrlStr | None = Field(
        None, description="Celery broker; any kombu URL (RabbitMQ: amqp://…). Default: REDIS_URL."
    )
    namespace: NamespaceStr = Field(
        DEFAULT_NAMESPACE, description="Prefix of every Redis key and queue name."
    )
    sentinel_master: str = Field(
        "mymaster",
        min_length=1,
        description="Sentinel URLs (sentinel://h1:26379;sentinel://h2:26379): the master's name.",
    )
    sentinel_password: SecretStr | None = Field(
        None,
        description="Sentinel URLs: the sentinels' own password, if they require one "
        "(the master's goes in the URL, as in kombu).",
    )
    redis_min_replicas: int = Field(
        0,
        ge=0,
        description="WAIT for this many replicas after a create's claim and its stored "
        "task id (0: off, a single Redis); an unreplicated claim sends no create.",
    )
    redis_wait_timeout_ms: PositiveInt = Field(
        500, description="How long one WAIT for REDIS_MIN_REPLICAS may block."
    )
    redis_replica_window_s: float = Field(
        60.0,
        ge=0,
        description="With REDIS_MIN_REPLICAS: WAIT for every replica the master listed "
        "this recently, if more (a failover may promote any of them); at least Sentinel's "
        "down-after-milliseconds x 10. 0: exactly REDIS_MIN_REPLICAS.",
    )

    # --- Polling and deadlines -------------------------------------------------------
    poll_interval_min_s: PositiveFloat = Field(5.0, description="First poll after a create.")
    poll_interval_max_s: PositiveFloat = Field(10.0, description="Polls slow down to this.")
    poll_backoff_factor: float = Field(
        1.5, ge=1.0, description="Each poll interval is the previous one times this, up to max."
    )
    poll_jitter_ratio: float = Field(
        0.1, ge=0.0, lt=0.5, description="Intervals are shortened by up to this fraction."
    )
    first_poll_hit_target: float = Field(
        0.8,
        ge=0.0,
        le=0.95,
        description="Learn, per batch, a first-poll delay that finds this share of remote "
        "tasks already finished (fewer calls); 0 always polls first after POLL_INTERVAL_MIN_S.",
    )
    job_deadline_s: PositiveFloat = Field(
        7200.0, description="A job still running this long after its first create fails."
    )
    task_lost_after_s: PositiveFloat = Field(
        600.0,
        description="A task whose every poll the API refuses (404 'not found', another "
        "task's answer) for this long fails as task_lost.",
    )

    # --- Retries of creates after transient errors -------------------------------------
    retry_base_s: PositiveFloat = Field(2.0, description="First retry delay after a 5xx/429.")
    retry_max_s: PositiveFloat = Field(300.0, description="Longest retry delay.")
    submit_max_attempts: PositiveInt = Field(
        15, description="Transient failures of one create before the job fails."
    )
    unknown_settle_s: float = Field(
        600.0,
        ge=0.0,
        description="`retry --unknown` leaves a create whose worker did not store its answer "
        "within its lease for this long (it may be frozen, not dead: its answer may still "
        "come, and sending again would pay twice); --force sends it at once.",
    )
    unknown_pause_after: int = Field(
        5,
        ge=0,
        description="Creates in a row, fleet-wide, whose outcome is unknown (sent, no readable "
        "answer) that pause creates, as a balance or token problem does (0: never).",
    )

    # --- Workers and the watchdog --------------------------------------------------------
    worker_concurrency: PositiveInt = Field(50, description="Threads per worker process.")
    visibility_timeout_s: PositiveFloat = Field(
        300.0, description="Redis broker: an unacked message returns after this (see celery app)."
    )
    eta_task_limit: PositiveInt = Field(
        2000, description="Countdown messages one worker holds in memory at most."
    )
    watchdog_interval_s: PositiveFloat = Field(10.0, description="How often the watchdog runs.")
    watchdog_grace_s: PositiveFloat = Field(
        60.0, description="A step this late is re-driven by the watchdog."
    )
    pause_probe_interval_s: PositiveFloat = Field(
        60.0,
        description="While paused for balance, the token or unknown answers, one parked create "
        "is tried this often.",
    )

    # --- Money and retention --------------------------------------------------------------
    budget_chars: PositiveInt | None = Field(
        None, description="Fleet-wide cap on billed characters; creates stop when it is reached."
    )
    retention_s: PositiveFloat = Field(
        7 * 24 * 3600.0,
        description="A finished batch's records (its jobs' too) expire this long after it "
        "finishes.",
    )

    # --- Results: webhooks and artifact copies (clonequeue/outputs) -----------------------
    webhook_url: HttpUrlStr | None = Field(
        None, description="Fleet default webhook endpoint (a batch's `submit --webhook` wins)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret(s), whsec_… (Standard Webhooks); several separated by "
        "spaces or commas during a rotation: every delivery carries one signature per secret.",
    )
    webhook_secret_file: Path | None = Field(
        None, description="File holding WEBHOOK_SECRET (one or more whsec_… values)."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Allow webhook targets on private, loopback and link-local addresses "
        "(a receiver on 127.0.0.1 in tests and demos); refused otherwise.",
    )
    webhook_timeout_s: PositiveFloat = Field(
        5.0,
        description="Time one webhook delivery attempt may take in all: name lookup, "
        "connect, TLS, sending, the answer's status line and headers (its body is not "
        "read). A receiver slower than this, however it trickles, is a timed-out "
        "attempt, retried on the schedule.",
    )
    webhook_concurrency: PositiveInt = Field(
        4,
        description="Webhook attempts running at once in one worker process; more wait "
        "outside (claiming nothing) and are tried a second later. Each holds one of the "
        "worker's WORKER_CONCURRENCY threads, which polls and creates need, for up to "
        "WEBHOOK_TIMEOUT_S: 4 leave a slow receiver 4 threads at most, and still deliver "
        "~80 a second to one answering in 50 ms.",
    )
    webhook_retry_schedule_s: SecondsTuple = Field(
        (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        description="Waits before each attempt (Standard Webhooks' schedule: at once, 5 s, "
        "5 min, 30 min, 2 h, 5 h, 10 h, 10 h: ~27 h in all), e.g. '[0, 1, 2]'.",
    )
    artifacts_url: str | None = Field(
        None,
        description="Store each finished audio and subtitle file here (fsspec URL: "
        "file:///data/voices, s3://bucket/prefix); a batch's `submit --artifacts` wins.",
    )
    artifact_concurrency: PositiveInt = Field(
        4, description="Downloads running at once in one worker process."
    )
    artifact_retry_schedule_s: SecondsTuple = Field(
        (0.0, 5.0, 30.0, 120.0, 600.0),
        description="Waits before each download attempt; after the last, the artifact is failed.",
    )
    artifact_timeout_s: PositiveFloat = Field(
        30.0, description="Connect and read (between bytes) timeout of a download."
    )
    artifact_lease_s: PositiveFloat = Field(
        900.0,
        description="A download not finished this long after it started is taken as lost "
        "(its worker died) and started again; longer than the largest file takes. A "
        "download gives up itself (and is retried) by this less ARTIFACT_TIMEOUT_S and 5 s.",
    )
    results_interval_s: PositiveFloat = Field(
        2.0,
        description="How often beat's results pass reads finished jobs from the events "
        "stream and re-drives overdue deliveries and downloads.",
    )

    # --- Flower ----------------------------------------------------------------------------
    flower_basic_auth: SecretStr | None = Field(
        None,
        description="Flower's login as user:password (comma-separated for several); "
        "`clonequeue flower` refuses to start without it unless --no-auth on localhost.",
    )

    # --- Logs ------------------------------------------------------------------------------
    log_format: LogFormat = Field(LogFormat.TEXT, description="'text' or 'json'.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.poll_interval_min_s > self.poll_interval_max_s:
            raise ValueError(
                "CLONEQUEUE_POLL_INTERVAL_MIN_S must not exceed CLONEQUEUE_POLL_INTERVAL_MAX_S"
            )
        if self.poll_interval_max_s * 3 > self.visibility_timeout_s:
            raise ValueError(
                "CLONEQUEUE_VISIBILITY_TIMEOUT_S must be at least 3x CLONEQUEUE_POLL_INTERVAL_MAX_S"
                " (a countdown message held longer than it is delivered twice)"
            )
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("CLONEQUEUE_RETRY_BASE_S must not exceed CLONEQUEUE_RETRY_MAX_S")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("CLONEQUEUE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        if self.api_token is not None and self.api_token_file is not None:
            raise ValueError("set CLONEQUEUE_API_TOKEN or CLONEQUEUE_API_TOKEN_FILE, not both")
        if self.api_token_file is not None:
            self.api_token = SecretStr(read_token_file(self.api_token_file))
        elif self.api_token is not None and self.api_token.get_secret_value():
            raw = self.api_token.get_secret_value()
            self.api_token = SecretStr(clean_token(raw, source="CLONEQUEUE_API_TOKEN"))
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError(
                "set CLONEQUEUE_WEBHOOK_SECRET or CLONEQUEUE_WEBHOOK_SECRET_FILE, not both"
            )
        if self.webhook_secret_file is not None:
            self.webhook_secret = SecretStr(
                _read_secret_file(self.webhook_secret_file, "CLONEQUEUE_WEBHOOK_SECRET_FILE")
            )
        if self.webhook_secret is not None:
            _check_webhook_secrets(self.webhook_secret.get_secret_value())
        if self.webhook_url:
            _check_webhook_url(self.webhook_url)
        if self.artifacts_url:
            _check_store_url(self.artifacts_url)
        for name in ("webhook_retry_schedule_s", "artifact_retry_schedule_s"):
            schedule = getattr(self, name)
            if not schedule or any(s < 0 for s in schedule):
                raise ValueError(f"{env_name(name)} must be a non-empty list of seconds >= 0")
        if self.flower_basic_auth is not None:
            # Checked here, not by a field validator: a field's error would echo the value.
            _check_basic_auth(self.flower_basic_auth.get_secret_value())
        return self

    @property
    def effective_broker_url(self) -> str:
        """The broker URL, which is the Redis URL unless set on its own."""
        return self.broker_url or self.redis_url

    def require_token(self) -> SecretStr:
        """The API token, or a :class:`ConfigError` that says how to provide it."""
        from clonequeue.errors import ConfigError

        if self.api_token is None or not self.api_token.get_secret_value():
            raise ConfigError(
                "CLONEQUEUE_API_TOKEN is not set: export it, or put the token in a file "
                "and set CLONEQUEUE_API_TOKEN_FILE to its path"
            )
        return self.api_token

    def token_source(self) -> TokenSource:
        """The token, re-read from CLONEQUEUE_API_TOKEN_FILE when that file changes."""
        return TokenSource(self.require_token().get_secret_value(), self.api_token_file)

    def secret_values(self) -> list[str]:
        """Every secret in these settings, for redaction: each ``SecretStr`` field (a new
        secret setting is covered by declaring it ``SecretStr``), and each Flower password."""
        found = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
        if self.flower_basic_auth is not None:
            logins = self.flower_basic_auth.get_secret_value()
            found += [entry.partition(":")[2] for entry in logins.split(",")]
        if self.webhook_secret is not None:  # each of a rotation's secrets on its own too
            found += webhook_secrets(self.webhook_secret.get_secret_value())
        return [s for s in found if s]


def _read_secret_file(path: Path, variable: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{variable}: {path} is empty")
    return value


def _check_webhook_url(url: str) -> None:
    """The rule `submit --webhook` applies (no user or password, a port from 1 to 65535,
    a URL urllib3 parses). Checked here, not by a field validator: a field's error
    echoes the value, and a webhook URL carries its credentials there."""
    try:
        check_url(url)
    except UnsafeTargetError as exc:
        raise ValueError(f"CLONEQUEUE_WEBHOOK_URL: {exc}") from None


def _check_store_url(url: str) -> None:
    problem = store_url_problem(url)
    if problem is not None:
        raise ValueError(f"CLONEQUEUE_ARTIFACTS_URL={shown_url(url)!r}: {problem}")


STORE_PROTOCOLS = ("file", "local", "s3", "s3a")


def store_url_problem(url: str) -> str | None:
    """Why ``url`` is no artifact store (None: it is one): a folder given by its absolute
    path, or S3. A relative folder would land under each worker's own working
    directory, on whichever host ran the job; other fsspec protocols are read-only
    (http), live in one worker's memory (memory) or were never tried here."""
    import fsspec

    protocol, _, path = url.partition("://") if "://" in url else ("file", "", url)
    if protocol not in STORE_PROTOCOLS:
        return (
            f"{protocol}:// is not a store clonequeue writes to: give a folder "
            "(file:///data/voices) or S3 (s3://bucket/prefix)"
        )
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        return str(exc)
    if protocol in ("file", "local") and not os.path.isabs(path):
        return (
            "a folder must be given by its absolute path (file:///data/voices): a relative "
            "one would be taken from each worker's working directory"
        )
    return None


def webhook_secrets(value: str) -> list[str]:
    """The whsec_… values of CLONEQUEUE_WEBHOOK_SECRET (several during a rotation)."""
    return [s for s in value.replace(",", " ").split() if s]


def _check_webhook_secrets(value: str) -> None:
    import base64
    import binascii

    secrets = webhook_secrets(value)
    if not secrets:
        raise ValueError("CLONEQUEUE_WEBHOOK_SECRET is empty")
    for secret in secrets:
        # Checked here, never echoed: a field's error would show the value.
        try:
            ok = (
                secret.startswith("whsec_")
                and len(base64.b64decode(secret[6:], validate=True)) >= 24
            )
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "CLONEQUEUE_WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random "
                "bytes (e.g. `python -c \"import base64,os;print('whsec_'+base64.b64encode("
                'os.urandom(32)).decode())"`); several separated by spaces'
            )


def _check_basic_auth(value: str) -> None:
    for entry in value.split(","):
        user, sep, password = entry.partition(":")
        if not (sep and user.strip() and password):
            raise ValueError(
                "CLONEQUEUE_FLOWER_BASIC_AUTH must be user:password (several separated by "
                "commas; a password cannot contain a comma)"
            )


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def known_variables() -> dict[str, str]:
    """Every ``CLONEQUEUE_*`` variable we read, with its description."""
    return {env_name(name): f.description or "" for name, f in Settings.model_fields.items()}


def unknown_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """``CLONEQUEUE_*`` names in ``environ`` that are not settings (likely typos)."""
    known = known_variables()
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def describe_setting_value(name: str, value: Any) -> str:
    """A printable value; secrets are redacted."""
    if isinstance(value, SecretStr):
        return "********** (set)" if value.get_secret_value() else "(empty)"
    if value is None:
        return "(not set)"
    if name.endswith("_url") and isinstance(value, str):
        return shown_url(value)
    if isinstance(value, StrEnum):
        return value.value
    return str(value)
