"""Two clocks: simulated time for the API's story, real time for rate windows.

Simulated time is real time plus an offset that ``POST /_sim/clock/advance``
grows, so a test can jump past a 3-day modelId expiry in one call. Rate-limit
windows and ``down_for_s`` use the monotonic clock: advancing simulated time
must not refill a rate budget or end an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Unix seconds as the simulated API sees them; injectable for unit tests."""

    __slots__ = ("_monotonic", "_time", "offset_s")

    def __init__(
        self,
        *,
        time_fn: Callable[[], float] = time.time,
        monotonic_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self._time = time_fn
        self._monotonic = monotonic_fn
        self.offset_s = 0.0

    def now(self) -> float:
        """Simulated unix time."""
        return self._time() + self.offset_s

    def real(self) -> float:
        """Monotonic real seconds, for windows that clock jumps must not touch."""
        return self._monotonic()

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (never backward: task plans assume it only grows)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward: seconds must be >= 0")
        self.offset_s += seconds

    def reset(self) -> None:
        self.offset_s = 0.0


class FakeTime:
    """A hand-driven time source for tests: ``SimClock(time_fn=ft, monotonic_fn=ft)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def tick(self, seconds: float) -> None:
        self.value += seconds
