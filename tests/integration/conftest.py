"""Fixtures shared by the integration tests that drive the producers and the CLI."""

from __future__ import annotations

import pytest
import redis

from clonequeue.config import load_settings
from clonequeue.services import Services


@pytest.fixture
def services(redis_client: redis.Redis, redis_url: str) -> Services:
    """Services on the suite's Redis, namespace ``p`` (the CLI helpers' own)."""
    return Services(load_settings(env_file=None, redis_url=redis_url, namespace="p"))


def workers_running(services: Services) -> None:
    """A worker seen and a watchdog pass just now: `status` and `wait` then say nothing
    of workers (tests of other notes that start none; a mark lasts 20 s)."""
    now = services.now()
    services.presence.mark("test@host", now=now, pid=0)
    services.presence.watchdog_ran(now=now)
