"""Riding out a Redis outage while following a batch: said once, reads spaced, bounded.

Used by ``status --wait/--watch`` (cli/batch_cmd.py) and :meth:`clonequeue.Batch.wait`:
a restart or a failover is often over in seconds, and a wait of hours should not end
for it; one that lasts longer than the bound ends the wait with Redis's own error. A
worker's presence thread (workers/presence_step.py) uses it unbounded, to say once
that the worker cannot reach Redis, and when it can again.
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
        self._began = 0.0  # when the first failed read began (it may have retried a while)
        self._tries = 0

    def next_wait(self, exc: BaseException, *, read_began: float | None = None) -> float:
        """Seconds to wait before reading again; re-raises ``exc`` once past the bound.

        ``read_began``: when the read that failed began (monotonic), so the outage said
        at its end counts the time that read spent retrying (QA pass: "unreachable for
        12 s" of a 40 s outage); the bound still counts from its failure."""
        now = time.monotonic()
        if self._started is None:
            self._started, self._tries = now, 0
            self._began = now if read_began is None else min(read_began, now)
            self._started_cb(exc)
        left = self._started + self.limit_s - now
        if left <= 0:
            raise exc
        self._tries += 1
        return min(outage_backoff_s(self._tries), left)

    def end(self) -> None:
        """Redis answered: say so if it had not, and start afresh for the next outage."""
        if self._started is not None:
            self._ended_cb(time.monotonic() - self._began)
            self._started = None
