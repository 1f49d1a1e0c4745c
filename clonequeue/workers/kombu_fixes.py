"""Two changes to kombu's Redis transport: one bug that kills workers, one hot-path cost.

1. A closed channel raises a connection error (below).
2. One ``redis.Redis`` per channel instead of one per operation. kombu builds a new
   client for every publish, event, ack and unacked-bookkeeping call
   (``Channel.conn_or_acquire``), and redis-py's constructor fills a case-insensitive
   dict of response callbacks each time: 14 % of a worker's CPU per poll, ~0.75 ms
   (bench/profile_worker.py). A client is thread-safe (each command takes a pooled
   connection), so the channel keeps one for as long as its connection pool lives.

The closed-channel bug:

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

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)
CLOSED_CHANNEL = "the broker channel was closed (its connection dropped); reconnecting"
_applied = False


def apply() -> None:
    """Patch ``Channel._connparams``, ``Channel.conn_or_acquire`` and ``QoS.restore_unacked``."""
    global _applied
    if _applied:
        return
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    connparams = kombu_redis.Channel._connparams
    restore_unacked = kombu_redis.QoS.restore_unacked

    @contextlib.contextmanager
    def conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # a closed channel raises here (see _connparams)
        cached = self.__dict__.get("_clonequeue_client")
        if cached is None or cached.connection_pool is not pool:
            cached = self.__dict__["_clonequeue_client"] = self._create_client()
        yield cached

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
    setattr(kombu_redis.Channel, "conn_or_acquire", conn_or_acquire)  # noqa: B010
    setattr(kombu_redis.QoS, "restore_unacked", _restore_unacked)  # noqa: B010
    _applied = True


def _is_closed(channel: Any) -> bool:
    """Whether the channel lost its connection (its pool cannot be rebuilt)."""
    connection = channel.connection
    return connection is None or getattr(connection, "client", None) is None
