"""The exporter with a Redis that is up but full (QA pass: a scrape answered HTTP 500,
``OutOfMemoryError`` from kombu's pipeline, and every alert went blind)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from clonequeue.metrics import FleetCollector
from clonequeue.services import Services
from clonequeue.store.safety import write_refusal_now


@pytest.fixture
def full(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        yield redis_client
    finally:
        redis_client.config_set("maxmemory", 0)
        redis_client.config_set("maxmemory-policy", policy)


def gauges(collector: FleetCollector) -> dict[str, float]:
    return {m.name: m.samples[0].value for m in collector.collect() if m.samples}


def test_a_full_redis_is_a_gauge_not_a_failed_scrape(services: Services, full: redis.Redis) -> None:
    assert (
        write_refusal_now(full) == "out of memory: used_memory has reached maxmemory (noeviction)"
    )
    seen = gauges(FleetCollector(services.fleet_state, ping=services.redis.ping))
    assert seen["clonequeue_redis_up"] == 1.0
    assert seen["clonequeue_redis_refuses_writes"] == 1.0


def test_a_redis_that_takes_writes_says_so(services: Services, redis_client: redis.Redis) -> None:
    assert write_refusal_now(redis_client) is None
    seen = gauges(FleetCollector(services.fleet_state, ping=services.redis.ping))
    assert seen["clonequeue_redis_refuses_writes"] == 0.0
    assert "clonequeue_jobs" in seen
