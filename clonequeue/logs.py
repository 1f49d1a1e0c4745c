"""Logging: readable text or one JSON object per line, with the API token redacted.

Records may carry ``job``, ``batch`` and ``remote_id`` extras; both formats show
them. The redaction filter is a last line of defence: no code path logs the token,
and any text that contains it anyway is masked before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from clonequeue.config import LogFormat, Settings

REDACTED = "[REDACTED]"
CONTEXT_FIELDS = ("job", "batch", "remote_id")

# Set by the task being run in this thread (contextvars are per thread), read by
# every log record, Celery's own "succeeded" lines included.
_context: ContextVar[dict[str, str]] = ContextVar("clonequeue_log_context", default={})  # noqa: B039


def set_log_context(**fields: str | None) -> None:
    """Replace the job/batch/remote ids attached to this thread's log records."""
    _context.set({k: v for k, v in fields.items() if v})


def add_log_context(**fields: str | None) -> None:
    """Add ids (e.g. the batch, once the job record was read)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


class ContextFilter(logging.Filter):
    """Copy the thread's job/batch/remote ids onto each record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class RedactingFilter(logging.Filter):
    """Replace every occurrence of the secrets in a record's message and arguments."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n, None)]
        return f"{text} [{' '.join(extras)}]" if extras else text


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings: the API token, Flower's logins and passwords."""
    found = []
    if settings.api_token is not None:
        found.append(settings.api_token.get_secret_value())
    if settings.flower_basic_auth is not None:
        logins = settings.flower_basic_auth.get_secret_value()
        found += [logins, *(entry.partition(":")[2] for entry in logins.split(","))]
    return [s for s in found if s]


def setup_logging(settings: Settings, *, stream: Any = None) -> None:
    """Configure the root logger once per process from ``settings``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()
    )
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Celery logs every task twice at INFO, "received" and "succeeded": hundreds of lines
    # a second from polls that changed nothing, and ~3 % of a poll's CPU. Below DEBUG
    # the steps log what changes instead (a create sent, a step finished), with the
    # job, batch and remote ids; a task that raises is still logged as an error.
    if root.level > logging.DEBUG:
        for name in ("celery.worker.strategy", "celery.app.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)
