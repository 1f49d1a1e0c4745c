"""Celery task events with every secret masked: Flower shows them to whoever logs in.

A ``task-failed`` event carries the exception's ``repr`` and the whole traceback as
text, ``task-retried`` the same, ``task-succeeded`` the result's ``repr``,
``task-received`` the arguments. Our tasks take ids and return short outcomes, but
an exception's text is not ours to control: every text field of every event is
passed through the process-wide redactor (clonequeue.redaction) before it is sent.
"""

from __future__ import annotations

from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher

from clonequeue.redaction import REDACTOR

# The fields that carry text we do not make ourselves; the rest (uuid, hostname, clock,
# timestamps, runtime) are Celery's own. Only these are scanned: ~1 µs each, per event.
TEXT_FIELDS = frozenset({"exception", "traceback", "result", "args", "kwargs", "reason", "info"})


class RedactingEventDispatcher(EventDispatcher):  # type: ignore[misc]
    def send(self, type: str, *args: Any, **fields: Any) -> Any:
        if REDACTOR:
            for name in TEXT_FIELDS.intersection(fields):
                fields[name] = REDACTOR.redact_value(fields[name])
        return super().send(type, *args, **fields)


class RedactingEvents(Events):  # type: ignore[misc]
    """``Celery(events=RedactingEvents)``: the worker's dispatcher masks secrets."""

    dispatcher_cls = "clonequeue.workers.events:RedactingEventDispatcher"
