"""A Redis that is out of reach, or up but refusing writes, and riding either out.

Following a batch (``status --wait/--watch``, :meth:`clonequeue.Batch.wait`): a
restart or a failover is often over in seconds, and a wait of hours should not end
for it; one that lasts longer than the bound ends the wait with Redis's own error.
A Redis that refuses writes (out of memory under ``noeviction``, or its AOF's disk
full) is up: what it needs is memory or disk, not a start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

# A restart refuses connections (ConnectionError; LOADING is one too); a Redis out of
# reach over the network times out instead.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
OUTAGE_FIRST_WAIT_S = 0.5
OUTAGE_MAX_WAIT_S = 2.0


def refuses_writes(exc: BaseException) -> bool:
    """Redis out of reach, or up but refusing writes for now (OOM, MISCONF): both pass
    when an operator frees memory or disk; nothing about the write itself is wrong."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.OutOfMemoryError):
        return True
    return write_refusal(exc) is not None


def write_refusal(exc: BaseException) -> str | None:
    """What a Redis that answered but refused is short of, and what to do; else None."""
    if not isinstance(exc, redis.exceptions.ResponseError):
        return None
    text = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM " in text:
        return (
            "Redis is full and refuses writes (used memory > maxmemory, policy noeviction): "
            "raise maxmemory or free memory; nothing is lost, producers and workers retry"
        )
    if text.startswith("MISCONF") or "-MISCONF" in text:
        return (
            "Redis cannot write its AOF or snapshot (MISCONF: often a full disk) and refuses "
            "writes: free disk space where it writes; nothing is lost, producers and workers "
            "retry, and Redis goes on by itself once it can write"
        )
    return None


def outage_backoff_s(tries: int) -> float:
    """Seconds before read ``tries`` + 1 of an outage: 0.5, 1, 2, 2, … (short: a restart
    is often over in a second or two, and each read itself retries for a while)."""
    return min(OUTAGE_FIRST_WAIT_S * 2.0 ** (tries - 1), OUTAGE_MAX_WAIT_S)


class RedisOutage:
    """One outage at a time: ``started(exc)`` is told at its first failed read,
    ``ended(seconds)`` when Redis answers again."""

    def __init__(
        self,
        limit_s: float,
        started: Callable[[BaseException], None],
        ended: Callable[[float], None],
    ) -> None:
        self.limit_s = limit_s
        self._started_cb, self._ended_cb = started, ended
        self._started: float | None = None
        self._tries = 0

    def next_wait(self, exc: BaseException) -> float:
        """Seconds to wait before reading again; re-raises ``exc`` once past the bound."""
        now = time.monotonic()
        if self._started is None:
            self._started, self._tries = now, 0
            self._started_cb(exc)
        left = self._started + self.limit_s - now
        if left <= 0:
            raise exc
        self._tries += 1
        return min(outage_backoff_s(self._tries), left)

    def end(self) -> None:
        """Redis answered: say so if it had not, and start afresh for the next outage."""
        if self._started is not None:
            self._ended_cb(time.monotonic() - self._started)
            self._started = None
