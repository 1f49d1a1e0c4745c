"""The pieces producers and operators need, built from one Settings object."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis

from clonequeue.config import Settings, load_settings
from clonequeue.config.redis_urls import is_sentinel_url, mask_url
from clonequeue.dispatch.dispatcher import CeleryDispatcher, send_all
from clonequeue.dispatch.due import DueIndex
from clonequeue.errors import StoreError
from clonequeue.redis_refusals import refusal_line
from clonequeue.store.batches import BatchStore
from clonequeue.store.clock import FleetClock
from clonequeue.store.connect import job_store, store_client
from clonequeue.store.fleet import Fleet
from clonequeue.store.jobs import Dispatch, JobStore
from clonequeue.store.presence import FORGET_AFTER_S, Presence, absence_note
from clonequeue.store.safety import write_refusal_now
from clonequeue.store.unreachable import unreachable_hint, unreachable_reason

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings = field(default_factory=load_settings)

    @cached_property
    def redis(self) -> redis.Redis:
        """The store's client; a Redis that does not answer now fails in about 2 s, not 30."""
        with store_client(self.settings, ride_out_s=0) as probe:
            try:
                probe.ping()
            except redis.exceptions.RedisError as exc:
                refused = refusal_line(exc)
                if refused is not None:  # up, and reads work: say it, and go on
                    log.warning("%s", refused)
                    return store_client(self.settings)
                raise StoreError(
                    f"cannot reach Redis at {mask_url(self.settings.redis_url)} "
                    f"({unreachable_reason(exc)}); "
                    f"{unreachable_hint(exc, sentinel=is_sentinel_url(self.settings.redis_url))}"
                ) from None
        return store_client(self.settings)

    @cached_property
    def jobs(self) -> JobStore:
        return job_store(self.settings, self.redis)

    @cached_property
    def batches(self) -> BatchStore:
        return BatchStore(self.jobs)

    @cached_property
    def fleet(self) -> Fleet:
        return Fleet(self.jobs)

    @cached_property
    def app(self) -> Any:
        from clonequeue.workers.app import create_app

        return create_app(self.settings)

    def dispatch(self, steps: list[Dispatch]) -> None:
        """Publish the messages for steps an operator action released."""
        send_all(self.dispatcher, steps)

    @cached_property
    def dispatcher(self) -> CeleryDispatcher:
        return CeleryDispatcher(self.app)

    @cached_property
    def clock(self) -> FleetClock:
        """The fleet's clock (Redis's time): what every state change is stamped with."""
        return FleetClock(self.redis)

    def now(self) -> float:
        return self.clock()

    @cached_property
    def presence(self) -> Presence:
        """Which workers run, and when the watchdog last did (store/presence.py)."""
        return Presence(self.redis, self.jobs.keys)

    def workers_note(self) -> str | None:
        """Why nothing would move: no worker running, or no watchdog pass; else None."""
        seen = self.presence.seen(now=self.now())
        return absence_note(
            seen, now=self.now(), watchdog_interval_s=self.settings.watchdog_interval_s
        )

    def rate_snapshot(self) -> Any:
        """The fleet's adaptive API rate (a ``RateSnapshot``): pace, ceiling, totals."""
        from clonequeue.workers.limiter import rate_limiter
        from clonequeue.workers.rate_view import read_rate

        keys = self.jobs.keys
        key = None if self.settings.api_token else self.redis.get(keys.rate_current)
        if not key:  # with a token, its own state; without, the one the workers named
            key = rate_limiter(self.settings, self.redis, keys).state_key
        return read_rate(self.redis, str(key), self.settings.api_rate_limit)

    def fleet_state(self) -> dict[str, Any]:
        """Jobs by state, queue depths, slots, parked and overdue steps, the pause, spend,
        the adaptive API rate."""
        from clonequeue.store.records import JobState

        jobs = dict.fromkeys((s.value for s in JobState), 0)
        unknown_kept = 0  # in every batch kept, finished or not: each awaits a decision
        for info in self.batches.list_batches(limit=1000):
            unknown_kept += info.counts.get(JobState.UNKNOWN.value, 0)
            if not info.is_finished:
                for state, count in info.counts.items():
                    jobs[state] += count
        fleet = self.fleet.snapshot()
        due = DueIndex(self.redis, self.jobs.keys, self.settings.watchdog_grace_s)
        return {
            "jobs": jobs,
            "unknown_kept": unknown_kept,
            "queues": self.dispatcher.queue_depths(),
            "in_flight": fleet["in_flight"],
            "parked": fleet["parked"],
            "overdue": due.count_overdue(now=self.now()),
            "paused": 1 if fleet["paused"] else 0,
            "api_wait_s": fleet["api_wait_s"],
            "chars_spent": fleet["chars_submitted"] - fleet["chars_refunded"],
            "rate": self.rate_snapshot(),
            "redis_refuses_writes": 1 if write_refusal_now(self.redis) else 0,
            **self._presence_gauges(),
        }

    def _presence_gauges(self) -> dict[str, float]:
        now = self.now()
        seen = self.presence.seen(now=now)
        return {
            "workers_running": len(seen.running(now)),
            # none in the last day: as old as the retention of the mark (never, for alerts)
            "watchdog_age_s": now - seen.watchdog_at if seen.watchdog_at else FORGET_AFTER_S,
        }
