"""The exporter's collector when Redis or the broker does not answer: an answer at once,
`clonequeue_redis_up`, no stale fleet gauge, one warning per outage."""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import pytest
import redis.exceptions
from prometheus_client import CollectorRegistry, generate_latest

from clonequeue.metrics import FleetCollector

STATE: dict[str, Any] = {
    "jobs": {"pending": 3},
    "queues": {"clonequeue.poll": 1},
    "in_flight": 2,
    "parked": 0,
    "overdue": 0,
    "paused": 0,
    "api_wait_s": 0,
    "chars_spent": 10,
    "workers_running": 1,
    "unknown_kept": 0,
    "watchdog_age_s": 4.0,
    "rate": None,
}


class Fleet:
    def __init__(self) -> None:
        self.redis: BaseException | None = None
        self.broker: BaseException | None = None

    def ping(self) -> bool:
        if self.redis is not None:
            raise self.redis
        return True

    def snapshot(self) -> dict[str, Any]:
        if self.redis is not None:
            raise self.redis
        if self.broker is not None:
            raise self.broker
        return STATE


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_redis_down_then_back(caplog: pytest.LogCaptureFixture) -> None:
    fleet = Fleet()
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet.snapshot, ping=fleet.ping))
    assert scrape(registry)["clonequeue_redis_up"] == 1
    fleet.redis = redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")
    with caplog.at_level(logging.INFO, logger="clonequeue.metrics"):
        for _ in range(3):
            down = scrape(registry)
            assert down["clonequeue_redis_up"] == 0
            assert "clonequeue_jobs" not in down
            assert "clonequeue_in_flight" not in down
            assert "clonequeue_exporter_scrape_seconds" in down
        fleet.redis = None
        assert scrape(registry)["clonequeue_in_flight"] == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    said = "exporter: cannot read the fleet's state from Redis (ConnectionError: Error 111"
    assert warnings[0].getMessage().startswith(said)
    assert warnings[0].exc_info is None  # a line, not a traceback
    assert "Redis answers again" in caplog.records[-1].getMessage()


def test_a_broker_down_with_redis_up_reads_no_gauges_but_redis_is_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = Fleet()
    fleet.broker = kombu.exceptions.OperationalError("Error 111 connecting to rabbit")
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet.snapshot, ping=fleet.ping))
    with caplog.at_level(logging.INFO, logger="clonequeue.metrics"):
        first, second = scrape(registry), scrape(registry)
    for samples in (first, second):
        assert samples["clonequeue_redis_up"] == 1
        assert "clonequeue_jobs" not in samples
    assert ["Redis or the broker" in r.getMessage() for r in caplog.records] == [True]


def test_any_other_error_is_a_bug_and_fails_the_scrape() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("in_flight")

    registry = CollectorRegistry()
    registry.register(FleetCollector(broken, ping=lambda: True))
    with pytest.raises(KeyError):
        generate_latest(registry)
