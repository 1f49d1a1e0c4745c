"""A long Retry-After holds every worker: `status` says so and `resume` ends it (real Redis)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from clonequeue.config import load_settings
from clonequeue.services import Services
from clonequeue.store.keys import Keys
from clonequeue.workers.limiter import COOLDOWN_CHECK_INTERVAL_S, COOLDOWN_RECHECK_S, ApiRateLimiter


@pytest.fixture
def services(redis_client: redis.Redis, redis_url: str) -> Services:
    return Services(load_settings(env_file=None, redis_url=redis_url, namespace="ra"))


def test_a_long_retry_after_is_shown_logged_and_ended_by_resume(
    services: Services, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = ApiRateLimiter(redis_client, Keys("ra"), "50/second")
    other = ApiRateLimiter(redis_client, Keys("ra"), "50/second")  # another worker
    for worker in (limiter, other):  # each holds slots: a cut moves them past the wait
        assert worker.acquire(1.0) == 0.0
    with caplog.at_level(logging.WARNING, logger="clonequeue.workers.limiter"):
        limiter.cool_down(600.0)
    # at the cap: what the API asked for is 600 s or more, never said as exactly 600 s
    assert "Retry-After 600 s or more (the longest waited out)" in caplog.text
    assert "`clonequeue resume`" in caplog.text

    held = services.fleet.pause_reason()
    assert held is not None
    assert held["kind"] == "retry_after"
    assert held["reason"].startswith("the API answered 429 with Retry-After 600 s or more")
    assert "`clonequeue resume` ends the wait now" in held["reason"]
    assert 590 < held["remaining_s"] <= 600
    assert held["since"] > 0
    assert 590 < services.fleet.snapshot()["api_wait_s"] <= 600  # the exporter's gauge
    # a step that meets the wait is re-queued to look again soon, not in 10 minutes
    assert 0 < other.acquire(1.0) <= COOLDOWN_RECHECK_S

    services.fleet.resume(now=time.time())
    assert services.fleet.pause_reason() is None
    assert services.fleet.snapshot()["api_wait_s"] == 0
    time.sleep(COOLDOWN_CHECK_INTERVAL_S + 0.05)  # each worker re-reads the wait this often
    assert other.acquire(1.0) == 0.0
    assert limiter.acquire(1.0) == 0.0


def test_a_pause_of_creates_is_shown_before_a_retry_after_wait(
    services: Services, redis_client: redis.Redis
) -> None:
    ApiRateLimiter(redis_client, Keys("ra"), "50/second").cool_down(30.0)
    services.fleet.pause("paused by an operator", now=time.time())
    held = services.fleet.pause_reason()
    assert held is not None
    assert held["kind"] == "manual"
    services.fleet.resume(now=time.time())
    assert services.fleet.pause_reason() is None  # both lifted


def test_resume_frees_a_busy_worker_whose_slots_the_wait_moved(
    services: Services, redis_client: redis.Redis
) -> None:
    """A worker holding slots ahead when the wait began: the cut moved them (and its
    gate) past the wait, and after `resume` it must call again at once."""
    limiter = ApiRateLimiter(redis_client, Keys("ra"), "50/second")
    busy = ApiRateLimiter(redis_client, Keys("ra"), "50/second")
    threads = [threading.Thread(target=busy.acquire, args=(2.0,)) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)  # 20 callers at 49/s: slots held ~0.4 s ahead
    limiter.cool_down(600.0)
    for thread in threads:
        thread.join(5)
    assert busy.acquire(0.1) > 0  # held: the wait, or a slot moved past it
    services.fleet.resume(now=time.time())
    time.sleep(COOLDOWN_CHECK_INTERVAL_S + 0.05)
    started = time.monotonic()
    assert busy.acquire(1.0) == 0.0
    assert time.monotonic() - started < 0.5
