"""A cached view of whether creates may go out right now.

A create message that would only be parked (fleet paused, every slot taken) must
not spend a rate-limit slot first; checking Redis on every message would cost a
round trip, so the answer is cached briefly. The claim script decides for real.
"""

from __future__ import annotations

import threading
import time

import redis

from clonequeue.store.keys import Keys

GATE_TTL_S = 0.5


class FleetGate:
    def __init__(self, client: redis.Redis, keys: Keys, max_in_flight: int) -> None:
        self._client = client
        self._keys = keys
        self._cap = max_in_flight
        self._lock = threading.Lock()
        self._open = True
        self._checked_at = float("-inf")

    def is_open(self) -> bool:
        """True unless the fleet is paused or every in-flight slot is taken (cached)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at < GATE_TTL_S:
                return self._open
            self._checked_at = now
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(self._keys.paused)
        pipe.scard(self._keys.inflight)
        paused, inflight = pipe.execute()
        is_open = not paused and int(inflight) < self._cap
        with self._lock:
            self._open = is_open
        return is_open
