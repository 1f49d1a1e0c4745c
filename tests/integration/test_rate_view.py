"""What `status` shows of the fleet's rate: the workers' ceiling, not this shell's."""

from __future__ import annotations

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
