"""The exporter when Redis goes away after it started (QA pass).

Before, each scrape waited ~30 s (the store's ride-out of a Redis restart) and then
answered HTTP 500 with a traceback in the log, every time; Prometheus gives up on a
scrape after 10 s by default. Now a scrape answers within ~2 s: the process metrics,
``clonequeue_redis_up 0`` and no fleet gauge (no stale job counts), with one warning
in the log per outage.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from clonequeue.local import EmbeddedRedis, ManagedProcess, free_port

SCRAPE_BOUND_S = 2.5  # Prometheus' default scrape timeout is 10 s
FLEET = ("clonequeue_jobs", "clonequeue_queue_depth", "clonequeue_in_flight", "clonequeue_paused")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, stopped and started again (not the suite's)."""
    with EmbeddedRedis().start(directory=tmp_path / "redis") as server:
        yield server


def scrape(port: int) -> tuple[int, float, dict[str, float]]:
    started = time.monotonic()
    answer = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=30, retries=False)
    took = time.monotonic() - started
    samples = {}
    if answer.status == 200:
        for family in text_string_to_metric_families(answer.data.decode()):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    return answer.status, took, samples


def names(samples: dict[str, float]) -> set[str]:
    return {name.split("{")[0] for name in samples}


@pytest.mark.timing
def test_a_scrape_with_redis_down_answers_at_once_with_redis_up_0(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    env.update(CLONEQUEUE_REDIS_URL=own_redis.url, PYTHONUNBUFFERED="1")
    log = tmp_path / "exporter.log"
    exporter = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "exporter", "--port", str(port)],
        log_path=log,
        env=env,
        cwd=tmp_path,
        name="exporter",
    )
    with exporter:
        exporter.wait_ready(line="exporter listening on", timeout_s=30)
        status, _, up = scrape(port)
        assert status == 200
        assert up["clonequeue_redis_up{}"] == 1
        assert set(FLEET) <= names(up)
        assert "process_start_time_seconds" in names(up)

        own_redis.stop()
        took = []
        for _ in range(3):
            status, seconds, down = scrape(port)
            took.append(round(seconds, 2))
            assert status == 200
            assert down["clonequeue_redis_up{}"] == 0
            assert not set(FLEET) & names(down), down  # no stale job counts
            assert "process_start_time_seconds" in names(down)
        print(f"scrapes with Redis down took {took} s (bound {SCRAPE_BOUND_S} s)")
        assert max(took) < SCRAPE_BOUND_S

        own_redis.restart()
        status, _, back = scrape(port)
        assert status == 200
        assert back["clonequeue_redis_up{}"] == 1
        assert set(FLEET) <= names(back)
    text = log.read_text()
    assert "Traceback" not in text, text
    warnings = [line for line in text.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, text  # one per outage, not one per scrape
    assert "cannot read the fleet's state from Redis" in warnings[0]
    assert "Redis answers again" in text
