"""A guard for one kombu bug that otherwise kills a worker when Redis restarts.

When the broker connection drops, Celery closes it; closing a Redis channel tries to
return its unacknowledged messages to their queues (``QoS.restore_unacked``), which
needs a connection pool, which is rebuilt from ``connection.client`` — already
``None`` by then. The ``AttributeError`` is not a connection error, so Celery's
``ignore_errors`` lets it through and the worker exits with "Unrecoverable error"
(the same trace as kombu #582; seen here with kombu 5.7 on every Redis restart
that hits a busy worker).

Skipping that one restore loses nothing: the messages stay in Redis' unacked hash
and come back after the visibility timeout, and our watchdog re-drives the steps
they stood for sooner than that. The worker then reconnects as it should.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)
_applied = False


def apply() -> None:
    """Wrap ``kombu.transport.redis.QoS.restore_unacked`` once per process."""
    global _applied
    if _applied:
        return
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked

    @functools.wraps(original)
    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return original(self, client)  # type: ignore[no-untyped-call]
        except AttributeError:
            if getattr(self.channel.connection, "client", None) is not None:
                raise  # not the torn-down connection: a real bug, let it surface
            log.warning(
                "broker connection already closed: %d unacknowledged messages return "
                "after the visibility timeout (the watchdog re-drives them sooner)",
                len(self._delivered),
            )
            self._delivered.clear()
            return None

    setattr(kombu_redis.QoS, "restore_unacked", restore_unacked)  # noqa: B010
    _applied = True
