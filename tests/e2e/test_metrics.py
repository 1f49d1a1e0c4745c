"""Prometheus metrics: a worker's own counters and the fleet exporter."""

from __future__ import annotations

import sys

import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from clonequeue.local import ManagedProcess, free_port
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System, make_rows

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict[str, float]:
    body = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5).data.decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_worker_counts_api_calls_and_the_exporter_reports_the_fleet(
    system: System, simulator: SimulatorAdmin, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    worker_port, exporter_port = free_port(), free_port()
    simulator.configure(clone_processing_s=3, error_5xx_rate=0.2, seed=3)
    system.start_worker("--metrics-port", str(worker_port))
    exporter = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "exporter", "--port", str(exporter_port)],
        log_path=tmp_path / "exporter.log",
        env=system.stack.env(),
        cwd=tmp_path,
        name="exporter",
    )
    with exporter:
        exporter.wait_ready(line="exporter listening on", timeout_s=30)
        batch = system.submit(make_rows(20, audios=1))
        system.wait(batch, 60, until="cloning")
        fleet = scrape(exporter_port)
        assert fleet["clonequeue_jobs{state=cloning}"] >= 1
        assert f"clonequeue_queue_depth{{queue={system.namespace}.poll}}" in fleet
        assert fleet["clonequeue_in_flight{}"] >= 1
        assert fleet["clonequeue_paused{}"] == 0
        assert fleet["clonequeue_api_wait_seconds{}"] == 0
        system.wait(batch, 90)
        worker = scrape(worker_port)
        after = scrape(exporter_port)
    created = worker["clonequeue_api_calls_total{endpoint=clones,outcome=ok}"]
    assert created == simulator.summary()["clones_total"] == 20
    assert worker["clonequeue_api_calls_total{endpoint=task,outcome=ok}"] > 0
    unavailable = sum(
        worker.get(f"clonequeue_api_calls_total{{endpoint={endpoint},outcome=unavailable}}", 0)
        for endpoint in ("clones", "audios", "task")
    )
    assert unavailable > 0
    # the fleet's count in Redis (sent with each reservation: the last few may wait)
    assert 0 < after["clonequeue_rate_failed_calls_total{}"] <= unavailable
    assert worker["clonequeue_chars_submitted_total{kind=production}"] > 0
    assert worker["clonequeue_steps_finished_total{kind=audio,state=completed}"] == 20
    assert worker["clonequeue_poll_lag_seconds_count{}"] > 0
