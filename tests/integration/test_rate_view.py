"""What `status` shows of the fleet's rate: the workers' ceiling, not this shell's."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from clonequeue.store.keys import Keys
from clonequeue.workers.limiter import ApiRateLimiter
from clonequeue.workers.rate_view import read_rate


@pytest.mark.parametrize(("workers", "shown"), [("100/second", 98.0), ("auto", None)])
def test_the_ceiling_shown_is_the_workers_whatever_this_shell_sets(
    redis_client: redis.Redis, workers: str, shown: float | None
) -> None:
    """With 30/second in the operator's shell and 100/second on the workers, status read
    "API pace 98.0/s of 29.4/s" (QA pass)."""
    keys = Keys(f"rv-{workers.replace('/', '')}")
    limiter = ApiRateLimiter(redis_client, keys, workers)
    before = read_rate(redis_client, limiter.state_key, "30/second")
    assert before.ceiling == pytest.approx(29.4)  # no worker has reserved yet: the setting
    assert limiter.acquire(5.0) == 0.0
    after = read_rate(redis_client, limiter.state_key, "30/second")
    assert after.ceiling == (pytest.approx(shown) if shown else None)


def test_calls_with_no_usable_answer_are_counted_and_shown(redis_client: redis.Redis) -> None:
    """QA: with the API answering 503 to everything, `status --watch` showed "API pace
    19.6/s of 19.6/s, 1% of calls useful", as slow tasks would; the workers' logs alone
    said the API was down. Failed calls are counted in Redis, with the next reservation."""
    from clonequeue.cli.progress import BatchWatch

    keys = Keys("rv-failed")
    limiter = ApiRateLimiter(redis_client, keys, "100/second")
    view = BatchWatch(enabled=False)
    assert limiter.acquire(5.0) == 0.0
    first = read_rate(redis_client, limiter.state_key, "100/second")
    assert "failed" not in view.api_line(first)
    for _ in range(3):
        limiter.failed()
    assert limiter.acquire(5.0) is not None  # sent with this reservation, no round trip
    later = read_rate(redis_client, limiter.state_key, "100/second")
    assert later.failed == 3
    later = dataclasses.replace(later, at=first.at + 30.0)  # half a minute on
    shown = view.api_line(later)
    assert "3 calls/min failed (5xx, timeouts, no connection: the API may be down" in shown
