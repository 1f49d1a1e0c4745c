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
