"""Countdown ETAs and expiry times in the fleet's clock (Redis's), not each host's.

A publisher stamps an ETA as "now + countdown"; with ``app.now`` reading the fleet
clock (store/clock.py), that "now" is Redis's, whatever the publisher's own clock
says. A worker then waits for that ETA by its own wall clock: this Request converts
the message's ETA and expiry to this host's clock before Celery schedules it, so a
worker whose clock runs ahead neither runs countdowns early nor holds them late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery.worker.request import Request

from clonequeue.store.clock import FleetClock

REQUEST_CLASS = "clonequeue.workers.fleet_time:FleetTimeRequest"


def use_fleet_clock(app: Any, clock: FleetClock) -> None:
    """Make ``app`` stamp and read ETAs and expiry times in the fleet's clock."""
    app.clonequeue_clock = clock
    app.now = lambda: datetime.fromtimestamp(clock(), UTC)
    app.Task.Request = REQUEST_CLASS


class FleetTimeRequest(Request):  # type: ignore[misc]
    """A task request whose ETA and expiry are moved from fleet time to this host's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clock: FleetClock | None = getattr(self._app, "clonequeue_clock", None)
        if clock is None:
            return
        skew = timedelta(seconds=clock.offset())
        if skew:
            if self._eta is not None:
                self._eta -= skew
            if self._expires is not None:
                self._expires -= skew
