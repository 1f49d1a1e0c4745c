"""The fleet's one clock: Redis's ``TIME``, read through this host's clock and an offset.

Every state change's "now" (the Lua scripts' ``now``, due times, leases, countdown
ETAs) comes from here, so a host whose wall clock is off — minutes, as a VM that lost
NTP can be — neither postpones nor hastens anyone's work: its offset to Redis is
measured (one ``TIME`` round trip, midpoint) and added. The offset is re-measured
every ``refresh_s`` (a failover can bring a master with another clock); while Redis
does not answer, the last offset stands and it is tried again a few seconds later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

REFRESH_S = 30.0  # how often the offset to Redis's clock is measured again
RETRY_S = 3.0  # after a failed measurement
SKEW_WARNING_S = 5.0  # an offset this large is worth a log line: fix the host's NTP
# A TIME whose round trip took longer is not measured: a read that rode out a Redis restart
# put the midpoint half the outage off (QA pass: "8.3 s behind" on one host, after a restart)
MAX_ROUND_TRIP_S = 1.0


class FleetClock:
    """Callable like ``time.time``, but in Redis's time (seconds since the epoch)."""

    def __init__(
        self,
        client: Any,
        *,
        refresh_s: float = REFRESH_S,
        local: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._refresh_s = refresh_s
        self._local = local
        self._monotonic = monotonic
        self._offset = 0.0
        self._next_at = float("-inf")  # monotonic time of the next measurement
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self) -> float:
        return self._local() + self.offset()

    def offset(self) -> float:
        """Redis's clock minus this host's (seconds); measured at most every ``refresh_s``."""
        if self._monotonic() >= self._next_at and self._lock.acquire(blocking=False):
            try:
                self._measure()
            finally:
                self._lock.release()
        return self._offset

    def _measure(self) -> None:
        try:
            before = self._local()
            seconds, micros = self._client.time()
            after = self._local()
        except Exception as exc:  # noqa: BLE001 - Redis down: keep the last offset
            log.debug("could not read Redis's clock (%s); keeping offset %.3f s", exc, self._offset)
            self._next_at = self._monotonic() + RETRY_S
            return
        if after - before > MAX_ROUND_TRIP_S:  # it waited out an outage: the midpoint lies
            self._next_at = self._monotonic() + RETRY_S
            return
        self._offset = float(seconds) + float(micros) / 1e6 - (before + after) / 2.0
        self._next_at = self._monotonic() + self._refresh_s
        if abs(self._offset) >= SKEW_WARNING_S and not self._warned:
            self._warned = True
            log.warning(
                "this host's clock is %.1f s %s Redis's; clonequeue uses Redis's time, "
                "but fix the host's clock (NTP)",
                abs(self._offset),
                "behind" if self._offset > 0 else "ahead of",
            )
