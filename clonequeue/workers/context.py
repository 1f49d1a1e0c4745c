"""Everything a task needs, built once per worker process and shared by its threads."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from clonequeue.api.client import ApiClient
from clonequeue.config import Settings
from clonequeue.dispatch.dispatcher import Dispatcher
from clonequeue.dispatch.due import DueIndex
from clonequeue.store.batches import BatchStore
from clonequeue.store.clock import FleetClock
from clonequeue.store.connect import job_store, store_client
from clonequeue.store.fleet import Fleet
from clonequeue.store.jobs import JobStore
from clonequeue.workers.gate import FleetGate
from clonequeue.workers.limiter import ApiRateLimiter, rate_limiter


@dataclass
class WorkerContext:
    settings: Settings
    jobs: JobStore
    client: ApiClient
    limiter: ApiRateLimiter
    gate: FleetGate
    dispatcher: Dispatcher
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    @property
    def fleet(self) -> Fleet:
        return Fleet(self.jobs)

    @property
    def batches(self) -> BatchStore:
        return BatchStore(self.jobs)

    @property
    def due(self) -> DueIndex:
        return DueIndex(self.jobs.client, self.jobs.keys, self.settings.watchdog_grace_s)

    @classmethod
    def build(
        cls, settings: Settings, dispatcher: Dispatcher, clock: Callable[[], float] | None = None
    ) -> WorkerContext:
        """``clock``: the fleet's (Redis's time, store/clock.py); one is made when not given."""
        client = store_client(settings)
        jobs = job_store(settings, client)
        return cls(
            clock=clock or FleetClock(client),
            settings=settings,
            jobs=jobs,
            client=ApiClient.from_settings(settings),
            limiter=rate_limiter(settings, client, jobs.keys),
            gate=FleetGate(client, jobs.keys, settings.max_in_flight),
            dispatcher=dispatcher,
        )
