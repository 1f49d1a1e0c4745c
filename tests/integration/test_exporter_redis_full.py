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


def queue_gauges(collector: FleetCollector) -> dict[str, float]:
    (depth,) = [m for m in collector.collect() if m.name == "clonequeue_queue_depth"]
    return {sample.labels["queue"]: sample.value for sample in depth.samples}


@pytest.fixture
def waiting(services: Services, redis_client: redis.Redis) -> str:
    """Three messages on the submit queue (one at a priority of its own, kombu's list for it)."""
    submit = services.dispatcher.queues.submit
    redis_client.lpush(submit, b"m1", b"m2")
    redis_client.lpush(f"{submit}\x06\x163", b"m3")
    return submit


def test_a_full_redis_is_a_gauge_not_a_failed_scrape(
    services: Services, waiting: str, full: redis.Redis
) -> None:
    assert (
        write_refusal_now(full) == "out of memory: used_memory has reached maxmemory (noeviction)"
    )
    collector = FleetCollector(services.fleet_state, ping=services.redis.ping)
    seen = gauges(collector)
    assert seen["clonequeue_redis_up"] == 1.0
    assert seen["clonequeue_redis_refuses_writes"] == 1.0
    # kombu reads depths inside MULTI, which a full Redis refuses even for reads
    assert queue_gauges(collector)[waiting] == 3.0


def test_a_redis_that_takes_writes_says_so(services: Services, redis_client: redis.Redis) -> None:
    assert write_refusal_now(redis_client) is None
    seen = gauges(FleetCollector(services.fleet_state, ping=services.redis.ping))
    assert seen["clonequeue_redis_refuses_writes"] == 0.0
    assert "clonequeue_jobs" in seen
