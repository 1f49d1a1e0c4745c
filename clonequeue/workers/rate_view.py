"""The adaptive rate as operators see it: read from Redis, turned into per-minute figures.

Redis keeps totals only (calls, useful calls, 429s; workers/rate_lua.py); the
exporter and ``status --watch`` each keep a minute of samples and take differences,
so the per-minute figures cost the workers nothing.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from clonequeue.workers.limiter import ceiling_per_s

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """The fleet's pace (calls/s) and the totals behind the per-minute figures."""

    rate: float | None  # None until a worker has reserved a slot
    learned: float | None  # the pace where the last 429s began; None: none seen
    ceiling: float | None  # the configured rate, paced; None for `auto`
    calls: int
    useful: int
    http_429: int
    at: float  # time.monotonic() of the read
    failed: int = 0  # calls with no usable answer (5xx, timeouts, no connection)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "learned": self.learned,
            "ceiling": self.ceiling,
            "calls": self.calls,
            "useful": self.useful,
            "http_429": self.http_429,
            "failed": self.failed,
        }


def read_rate(client: Any, key: str, setting: str) -> RateSnapshot:
    """The state hash ``key`` (``Keys.rate_state``) as a snapshot."""
    raw = client.hgetall(key)
    fields = {_text(k): _text(v) for k, v in raw.items()}
    learned = float(fields.get("w") or 0)
    # the workers' ceiling as they last reserved with it (0: auto); this shell's setting
    # only until one has: it may differ (QA pass: "98.0/s of 29.4/s")
    ceiling = (float(fields["ceil"]) or None) if "ceil" in fields else ceiling_per_s(setting)
    return RateSnapshot(
        rate=float(fields["r"]) if "r" in fields else None,
        learned=learned or None,
        ceiling=ceiling,
        calls=int(fields.get("calls") or 0),
        useful=int(fields.get("useful") or 0),
        http_429=int(fields.get("n429") or 0),
        at=time.monotonic(),
        failed=int(fields.get("nfail") or 0),
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class RateFigures:
    """Per-minute figures over the samples of the last minute (None until two samples)."""

    http_429_per_min: float | None  # 429s in the last minute (since the first sample, if later)
    useful_share: float | None  # useful calls / calls; None when no call was made
    calls_per_s: float | None
    failed_per_min: float | None = None  # calls with no usable answer, last minute


class RateHistory:
    """A minute of snapshots, for the figures that need differences."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[RateSnapshot] = deque()

    def add(self, snapshot: RateSnapshot) -> RateFigures:
        samples = self._samples
        samples.append(snapshot)
        while len(samples) > 2 and snapshot.at - samples[0].at > self._window_s:
            samples.popleft()
        first = samples[0]
        span = snapshot.at - first.at
        if span < 1.0:
            return RateFigures(None, None, None)
        calls = snapshot.calls - first.calls
        useful = snapshot.useful - first.useful
        # counted over the span seen, up to a minute; scaled only down, to a minute, when
        # two samples lie further apart (one 429 two seconds after the exporter started
        # was shown as 30 a minute)
        scale = min(self._window_s / span, 1.0)
        return RateFigures(
            http_429_per_min=max(snapshot.http_429 - first.http_429, 0) * scale,
            useful_share=min(max(useful / calls, 0.0), 1.0) if calls > 0 else None,
            calls_per_s=max(calls, 0) / span,
            failed_per_min=max(snapshot.failed - first.failed, 0) * scale,
        )
