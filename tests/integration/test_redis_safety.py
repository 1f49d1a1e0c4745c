"""A worker warns at start-up when its Redis could lose job records (real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from clonequeue.local import EmbeddedRedis
from clonequeue.store.safety import durability_warnings
from tests.integration.test_real_api_notice import start_worker


def test_a_redis_with_aof_and_noeviction_draws_no_warning(redis_client: redis.Redis) -> None:
    assert durability_warnings(redis_client) == []


NOTHING_ON_DISK = (
    "this Redis keeps nothing on disk (appendonly no, no snapshots): a restart loses "
    'every job record; run it with --appendonly yes (README, "Redis")'
)
EVICTS = (
    "this Redis evicts keys under memory pressure (maxmemory-policy allkeys-lru): job "
    "records can vanish and creates be sent twice; set maxmemory-policy noeviction"
)
SNAPSHOTS_ONLY = (
    "this Redis keeps only snapshots (appendonly no, save 3600 1): a crash loses the job "
    'records written since the last one; run it with --appendonly yes (README, "Redis")'
)


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("maxmemory-policy", "allkeys-lru", [NOTHING_ON_DISK, EVICTS]),
        ("save", "3600 1", [SNAPSHOTS_ONLY]),
    ],
    ids=["a cache", "snapshots only"],
)
def test_a_redis_that_can_lose_records_is_named_with_what_to_set(
    tmp_path: Path, setting: str, value: str, expected: list[str]
) -> None:
    with EmbeddedRedis().start(directory=tmp_path / "r", appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        client.config_set(setting, value)
        assert durability_warnings(client) == expected


def test_a_worker_on_a_cache_redis_warns_once_at_start(
    tmp_path: Path, tmp_env: dict[str, str]
) -> None:
    with EmbeddedRedis().start(directory=tmp_path / "cache", appendonly=False) as server:
        log = start_worker(tmp_path, {**tmp_env, "CLONEQUEUE_REDIS_URL": server.url}, "cache")
    assert log.count("warning: this Redis keeps nothing on disk") == 1, log[-3000:]


def test_a_worker_on_the_suites_redis_does_not_warn(
    tmp_path: Path, tmp_env: dict[str, str]
) -> None:
    log = start_worker(tmp_path, tmp_env, "safe")
    assert "warning: this Redis" not in log
