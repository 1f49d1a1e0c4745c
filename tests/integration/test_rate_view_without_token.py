"""The exporter and `status` run without the API token, and still find the fleet's rate."""

from __future__ import annotations

import redis

from clonequeue.config import load_settings
from clonequeue.services import Services
from clonequeue.workers.limiter import rate_limiter


def test_a_reader_without_the_token_reads_the_rate_the_workers_keep(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """The state is named by the token's hash, and every shipped deployment runs the
    exporter without the token: its rate metrics were empty (operator QA pass)."""
    worker = Services(
        load_settings(env_file=None, redis_url=redis_url, namespace="rv", api_token="tok-fleet")
    )
    limiter = rate_limiter(worker.settings, worker.redis, worker.jobs.keys)
    assert all(limiter.acquire(1.0) == 0.0 for _ in range(3))
    reader = Services(load_settings(env_file=None, redis_url=redis_url, namespace="rv"))
    seen = reader.rate_snapshot()
    assert seen.calls == 3
    assert seen.rate is not None
    # a reader with a token reads that token's own state (another account's, say)
    other = Services(
        load_settings(env_file=None, redis_url=redis_url, namespace="rv", api_token="tok-other")
    )
    assert other.rate_snapshot().calls == 0
