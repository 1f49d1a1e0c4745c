"""WAIT's cost per create: the claim and the stored task id, with and without WAIT 1.

Run: ``.venv/bin/python bench/wait_cost.py [--jobs 2000] [--quick]``

Method
    A master and one replica of our own (``redis-server``, free ports, no
    persistence), one JobStore per mode on the same master. Per create the store
    makes the two writes that guard money: ``claim_create`` then ``record_created``
    (what a worker does around its HTTP call, without the call). Jobs are a clone
    each, recorded beforehand. Modes alternate in rounds of 200 creates so that
    machine load hits both alike; the figure is the mean wall time per create.

    Baseline: the same two scripts with ``CLONEQUEUE_REDIS_MIN_REPLICAS=0`` (no
    WAIT), in the same run, on the same server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import _harness as h

from clonequeue.jobspec import JobSpec
from clonequeue.local.sentinel import SentinelGroup
from clonequeue.store.batches import BatchStore
from clonequeue.store.connect import redis_client
from clonequeue.store.jobs import Claimed, JobStore, StoreLimits
from clonequeue.store.keys import Keys
from clonequeue.store.records import new_job_doc

ROUND = 200


def store(url: str, namespace: str, replicas: int) -> JobStore:
    limits = StoreLimits(
        max_in_flight=0,
        budget_chars=0,
        retention_s=3600,
        grace_s=30.0,
        job_deadline_s=600.0,
        submit_max_attempts=3,
        min_replicas=replicas,
        wait_timeout_ms=1000,
    )
    return JobStore(redis_client(url), Keys(namespace), limits)


def add_jobs(jobs: JobStore, count: int, now: float) -> list[str]:
    ids = [f"j{i:06d}" for i in range(count)]
    rows: list[tuple[str, str]] = []
    for job_id in ids:
        spec = JobSpec.model_validate(
            {
                "custom_id": job_id,
                "clone": {"fileUrl": f"https://ex.com/{job_id}.mp3"},
                "audios": [{"contentText": "Hello"}],
            }
        )
        rows.append((job_id, json.dumps(new_job_doc(spec, "b", now))))
    BatchStore(jobs).create_jobs("b", rows, now=now)
    return ids


def create_round(jobs: JobStore, ids: list[str], now: float) -> float:
    started = time.perf_counter()
    for job_id in ids:
        claim = jobs.claim_create(job_id, "c", 0, now=now, lease_s=60)
        assert isinstance(claim, Claimed), claim
        jobs.record_created(job_id, "c", 0, f"r-{job_id}", now=now, next_due=now + 5)
    return (time.perf_counter() - started) / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="400 creates per mode")
    args = parser.parse_args()
    count = 400 if args.quick else args.jobs
    now = time.time()
    per_create: dict[str, list[float]] = {"no WAIT": [], "WAIT 1": []}
    with SentinelGroup(replicas=1, sentinels=0) as group:
        master = group.data[0]
        url = f"redis://{master.host}:{master.port}/0"
        stores = {"no WAIT": store(url, "plain", 0), "WAIT 1": store(url, "waited", 1)}
        pending = {mode: add_jobs(jobs, count, now) for mode, jobs in stores.items()}
        for start in range(0, count, ROUND):
            for mode, jobs in stores.items():
                per_create[mode].append(
                    create_round(jobs, pending[mode][start : start + ROUND], now)
                )
    plain = statistics.fmean(per_create["no WAIT"]) * 1000
    waited = statistics.fmean(per_create["WAIT 1"]) * 1000
    figures = [
        h.Figure(
            "store writes per create, WAIT 1",
            waited,
            baseline=plain,
            unit="ms",
            baseline_name="no WAIT",
            spread=h.spread([v * 1000 for v in per_create["WAIT 1"]]),
            note=f"{count} creates per mode, 1 replica on the same host; "
            "over a network add one replica round trip per write",
        ),
        h.Figure("added per create", waited - plain, unit="ms"),
    ]
    h.print_table("WAIT's cost per create", figures)
    result: dict[str, Any] = {"creates": count, "rounds_ms": per_create}
    h.write_result("wait_cost", figures, **result)


if __name__ == "__main__":
    main()
