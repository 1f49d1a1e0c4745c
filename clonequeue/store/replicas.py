"""How many replicas a money-guarding write must reach: every one seen lately.

``WAIT N`` counts the replicas that acknowledged a write, not which ones. With two
replicas and ``N = 1``, a write only the replica that is *not* promoted holds is lost
in a failover: in ``SENTINEL FAILOVER`` the old master goes on accepting writes
after its chosen replica stopped replicating, until the sentinels reconfigure it,
and the other replica acknowledges them; the old master then resyncs from the new
one and drops them (seen in tests/e2e/test_failover.py: steps created twice). So a
claim waits for every replica the master listed within ``window_s``, never fewer
than the configured floor: a replica that just left (promoted, cut off, killed)
still counts, and its missing acknowledgement undoes the claim. After a replica is
gone for good, creates wait until the window passes (set it at least Sentinel's
``down-after-milliseconds`` × 10, the longest a replica can be away and still be
promoted).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

REFRESH_S = 1.0  # how often the master's replica count is read again


class ReplicaWatch:
    """The high-water mark of the master's connected replicas over a sliding window."""

    def __init__(
        self,
        client: Any,
        *,
        window_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._window_s = window_s
        self._monotonic = monotonic
        self._seen: deque[tuple[float, int]] = deque()
        self._next_at = float("-inf")
        self._lock = threading.Lock()

    def wanted(self, floor: int) -> int:
        """Replicas to WAIT for: ``floor``, or more if the master listed more lately."""
        if self._window_s <= 0:
            return floor
        now = self._monotonic()
        with self._lock:
            if now >= self._next_at:
                self._next_at = now + REFRESH_S
                try:
                    count = int(self._client.info("replication").get("connected_slaves", 0))
                except redis.RedisError:
                    pass  # the WAIT that follows meets the same fault; keep what was seen
                else:
                    self._seen.append((now, count))
            while len(self._seen) > 1 and self._seen[0][0] < now - self._window_s:
                self._seen.popleft()
            return max([floor, *(count for _, count in self._seen)])
