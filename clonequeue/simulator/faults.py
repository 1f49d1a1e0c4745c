"""Request-level faults: the 1 s rate window, seeded dice, and outages.

Kept apart from the task logic so each fault can be unit-tested with a fake clock,
and so the dice for faults do not shift the dice for task outcomes: turning on
``error_5xx_rate`` must not change which tasks fail.
"""

from __future__ import annotations

import math
import random
from collections import deque


class RateWindow:
    """At most ``limit`` accepted requests in any sliding window of one real second."""

    WINDOW_S = 1.0

    def __init__(self) -> None:
        self._accepted: deque[float] = deque()

    def admit(self, limit: int | None, now: float) -> int | None:
        """None when the request may go on, else the whole seconds to wait (>= 1)."""
        if limit is None:
            return None
        accepted = self._accepted
        horizon = now - self.WINDOW_S
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if len(accepted) >= limit:
            wait_s = accepted[len(accepted) - limit] + self.WINDOW_S - now
            return max(1, math.ceil(wait_s))
        accepted.append(now)
        return None


class Dice:
    """A seeded random stream; ``roll(0)`` never draws, so unused knobs cost nothing."""

    def __init__(self, seed: int, stream: str) -> None:
        self._random = random.Random(f"{seed}:{stream}")

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def uniform(self, low: float, high: float) -> float:
        return self._random.uniform(low, high)

    def choice(self, options: tuple[str, ...]) -> str:
        return options[self._random.randrange(len(options))]

    def hex(self, bits: int) -> str:
        return f"{self._random.getrandbits(bits):0{bits // 4}x}"


class Outage:
    """When the current ``down`` mode started, so ``down_for_s`` can end it."""

    def __init__(self) -> None:
        self.since: float | None = None

    def start(self, now: float) -> None:
        self.since = now

    def over(self, down_for_s: float | None, now: float) -> bool:
        return down_for_s is not None and self.since is not None and now >= self.since + down_for_s
