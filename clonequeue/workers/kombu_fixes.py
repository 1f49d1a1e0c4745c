"""Guards for one kombu bug that otherwise kills a worker when Redis restarts.

When the broker connection drops, Celery closes the Redis channel, and closing it
sets ``channel.connection`` to ``None``. Whatever then still talks through that old
channel rebuilds its connection pool from ``channel.connection.client`` and raises
``AttributeError: 'NoneType' object has no attribute 'client'``:

* returning the unacknowledged messages while the channel closes
  (``QoS.restore_unacked``, the same trace as kombu #582);
* the late acknowledgement of a task that finished on a pool thread after the
  worker had already reconnected (``QoS.ack`` from ``Message.ack_log_error``).

``AttributeError`` is not one of the transport's connection errors, so neither
Celery's ``ignore_errors`` nor kombu's ``ack_log_error`` catches it and the worker
exits with "Unrecoverable error" (seen here with kombu 5.7 on Redis restarts that
hit a busy worker). The guard makes a closed channel raise the connection error it
is, which both already handle; returning the unacknowledged messages of a closed
channel is skipped with a warning, so that closing it completes.

Nothing is lost by that: an unacknowledged message stays in Redis' unacked hash and
comes back after the visibility timeout, where its stale generation makes it a
no-op, and the watchdog re-drives the step it stood for sooner than that.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)
CLOSED_CHANNEL = "the broker channel was closed (its connection dropped); reconnecting"
_applied = False


def apply() -> None:
    """Wrap ``Channel._connparams`` and ``QoS.restore_unacked`` of kombu's Redis transport."""
    global _applied
    if _applied:
        return
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    connparams = kombu_redis.Channel._connparams
    restore_unacked = kombu_redis.QoS.restore_unacked

    @functools.wraps(connparams)
    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if _is_closed(self):
            raise redis.exceptions.ConnectionError(CLOSED_CHANNEL)
        return connparams(self, asynchronous=asynchronous)  # type: ignore[no-untyped-call]

    @functools.wraps(restore_unacked)
    def _restore_unacked(self: Any, client: Any = None) -> Any:
        if client is None and _is_closed(self.channel):
            log.warning(
                "broker connection already closed: %d unacknowledged messages return "
                "after the visibility timeout (the watchdog re-drives them sooner)",
                len(self._delivered),
            )
            self._delivered.clear()
            return None
        return restore_unacked(self, client)  # type: ignore[no-untyped-call]

    setattr(kombu_redis.Channel, "_connparams", _connparams)  # noqa: B010
    setattr(kombu_redis.QoS, "restore_unacked", _restore_unacked)  # noqa: B010
    _applied = True


def _is_closed(channel: Any) -> bool:
    """Whether the channel lost its connection (its pool cannot be rebuilt)."""
    connection = channel.connection
    return connection is None or getattr(connection, "client", None) is None
