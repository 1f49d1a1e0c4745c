"""The pieces producers and operators need, built from one Settings object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis

from clonequeue.config import Settings, load_settings
from clonequeue.errors import StoreError
from clonequeue.store.batches import BatchStore
from clonequeue.store.fleet import Fleet
from clonequeue.store.jobs import Dispatch, JobStore
from clonequeue.workers.context import job_store, redis_client


@dataclass
class Services:
    settings: Settings = field(default_factory=load_settings)

    @cached_property
    def redis(self) -> redis.Redis:
        """The store's client; a Redis that does not answer now fails in about 2 s, not 30."""
        with redis_client(self.settings.redis_url, ride_out_s=0) as probe:
            try:
                probe.ping()
            except redis.exceptions.RedisError as exc:
                raise StoreError(
                    f"cannot reach Redis at {_safe_url(self.settings.redis_url)} ({exc}); "
                    "start it (`clonequeue redis`) or set CLONEQUEUE_REDIS_URL"
                ) from None
        return redis_client(self.settings.redis_url)

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
        from clonequeue.workers.tasks import CeleryDispatcher

        dispatcher = CeleryDispatcher(self.app, self.app.clonequeue_queues)
        for step in steps:
            if step.remote_id is not None:
                dispatcher.poll(step)
            else:
                dispatcher.create(step)

    def now(self) -> float:
        return time.time()

    def fleet_state(self) -> dict[str, Any]:
        """Jobs by state, queue depths, slots, parked and overdue steps, the pause, spend."""
        from clonequeue.store.records import JobState
        from clonequeue.workers.inspect import queue_depths

        jobs = dict.fromkeys((s.value for s in JobState), 0)
        for info in self.batches.list_batches(limit=1000):
            if not info.is_finished:
                for state, count in info.counts.items():
                    jobs[state] += count
        fleet = self.fleet.snapshot()
        overdue = self.redis.zcount(
            self.jobs.keys.due, "-inf", self.now() - self.settings.watchdog_grace_s
        )
        return {
            "jobs": jobs,
            "queues": queue_depths(self.app, self.app.clonequeue_queues.all),
            "in_flight": fleet["in_flight"],
            "parked": fleet["parked"],
            "overdue": int(overdue),
            "paused": 1 if fleet["paused"] else 0,
            "chars_spent": fleet["chars_submitted"] - fleet["chars_refunded"],
        }


def _safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
