"""Logging: readable text or one JSON object per line, with every secret redacted.

Records may carry ``job``, ``batch`` and ``remote_id`` extras; both formats show
them. Redaction is a last line of defence: no code path logs a secret, and any
text that contains one anyway, in any printable form (clonequeue.redaction), is
masked in the *formatted* line, so messages, arguments, tracebacks, stack info and
JSON escapes are all covered, Celery's own records included.

Query values are masked too (``?token=***``), in URLs and in request lines such as
urllib3's DEBUG ``http://h:80 "POST /hook?token=… HTTP/1.1" 500``: a webhook URL or
a pre-signed download carries its credential there, and ``config show`` treats every
query value as a secret. The JimmyAI API carries nothing in a query string (task ids
are in the path), so nothing an operator needs is lost.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from clonequeue.config import LogFormat, Settings
from clonequeue.redaction import REDACTED, REDACTOR, Redactor, register_secrets

__all__ = ["REDACTED", "RedactingFilter", "setup_logging"]
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


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ids to this thread's records for the ``with`` block only."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


# A URL (scheme://…?query) or a request target after an HTTP method or at the start of
# a word (`"POST /hook?token=…`, urllib3's `url='/hook?token=…'`): group 1 is what
# precedes the query, group 2 the query, up to a space, quote, bracket or fragment.
# A URL with a host (a bare "https://?" is prose: an advice's "sends on to https://?)"
# lost its words to the mask, QA pass), or a request path.
_QUERY = re.compile(
    r"""((?:\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>\\/]|(?:^|(?<=[\s"'(=\[]))/)[^\s?#"'<>\\]*)"""
    r"""\?([^\s#"'<>\\]+)"""
)


def _masked(match: re.Match[str]) -> str:
    pairs = (part.partition("=") for part in match.group(2).split("&"))
    query = "&".join(f"{name}=***" if sep else "***" for name, sep, _ in pairs)
    return f"{match.group(1)}?{query}"


def mask_query_values(text: str) -> str:
    """``text`` with the value of every query parameter in a URL or request path ``***``."""
    return _QUERY.sub(_masked, text) if "?" in text else text


class ContextFilter(logging.Filter):
    """Copy the thread's job/batch/remote ids onto each record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


_NUMBERS_AND_IDS = re.compile(r"\[[0-9a-f-]{8,}\]|\b\d+\b")


class RepeatFilter(logging.Filter):
    """At most one line a window for each warning a library repeats word for word (but
    for numbers and task ids).

    Celery's consumer restarts in a loop when the broker refuses it for good (a
    deleted RabbitMQ vhost: "Cannot connect …" and "Frequent restarts detected" with a
    traceback, ~6 a second, 580 KB of log a minute), and beat says each failed send
    every 2 s. The first is shown; repeats within ``window_s`` are counted, and the
    next one after it says how many were not shown. Our own records (``clonequeue.*``)
    already say a lasting condition once, and INFO and below pass as they are.
    """

    MAX_KEYS = 1000

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self._clock = window_s, clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key: [shown at, not shown]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name.partition(".")[0] == "clonequeue":
            return True
        message = record.getMessage()
        # repeats that differ only in a delivery tag or a task id are repeats too
        # ("Couldn't ack 382, reason: … connection already closed", 41 in a burst: QA)
        key = (record.name, record.levelno, _NUMBERS_AND_IDS.sub("#", message[:500]))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window_s:
                seen[1] += 1
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._forget(now)
            self._seen[key] = [now, 0]
        if seen is not None and seen[1]:
            note = f" ({seen[1]:.0f} more like it in the {self.window_s:.0f} s before, not shown)"
            record.msg, record.args = message + note, None
        return True

    def _forget(self, now: float) -> None:
        """Drop what no repeat can still be counted against (all of it, if all is recent)."""
        old = [k for k, (shown, _) in self._seen.items() if now - shown >= self.window_s]
        for key in old or list(self._seen):
            del self._seen[key]


class RedactingFilter(logging.Filter):
    """Mask secrets in a record's message, arguments and traceback, for handlers that
    format records themselves (ours mask the formatted line: see :class:`RedactingFormatter`)."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self._redactor = Redactor(secrets) if secrets is not None else REDACTOR

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            message += "\n" + record.exc_text
        record.msg, record.args = self._redact(message), None
        record.exc_info, record.exc_text = None, None
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True

    def _redact(self, text: str) -> str:
        return mask_query_values(self._redactor.redact(text))


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and masks every form of every registered secret in its output."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return mask_query_values(self._redactor.redact(self._inner.format(record)))


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


def _quiet_beat_sends(record: logging.LogRecord) -> bool:
    """Beat says each send at INFO: the results pass every 2 s and the watchdog every
    10 s made 36 lines a minute of nothing (QA pass); what a pass does, it logs itself.
    Beat's other lines ("beat: Starting...", errors) stay."""
    return not (
        record.name == "celery.beat"
        and record.levelno == logging.INFO
        and str(record.msg).startswith("Scheduler: Sending due task")
    )


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings (see :meth:`Settings.secret_values`)."""
    return settings.secret_values()


def setup_logging(settings: Settings, *, stream: Any = None) -> None:
    """Configure the root logger once per process from ``settings``."""
    register_secrets(secrets_of(settings))
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()
    handler.setFormatter(RedactingFormatter(inner))
    handler.addFilter(ContextFilter())
    handler.addFilter(RepeatFilter())
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
        handler.addFilter(_quiet_beat_sends)
