"""A submit that Redis forgets part of (a failover to a replica that lagged) says so.

QA: SIGKILL of a Sentinel master 0.95 s into a 3,000-row submit; the promoted replica
had 500 of the jobs, and the submit said "accepted 3,000", exit 0. Here the loss is
made by hand (the records and the batch's count of a chunk go, as a failover loses
them: together, as one replication stream), mid-submit.
"""

from __future__ import annotations

from typing import Any

import pytest

import clonequeue
from clonequeue.producers.errors import ProducerError
from clonequeue.producers.submission import SubmitReport
from clonequeue.services import Services
from tests.integration.test_producers_submit import row

ROWS = 1_500  # three chunks


def test_jobs_lost_during_a_submit_are_said_and_the_same_submit_again_records_them(
    services: Services,
) -> None:
    rows = [row(f"lost{i:04d}") for i in range(ROWS)]
    keys = services.jobs.keys
    forgotten: list[str] = []

    def forget_the_first_chunk(report: SubmitReport, _pos: Any, _size: Any) -> None:
        if report.new and not forgotten:
            forgotten.extend(f"lost{i:04d}" for i in range(report.new))
            services.redis.delete(*(keys.job(job_id) for job_id in forgotten))
            services.redis.hincrby(keys.batch("failover"), "total", -len(forgotten))

    with pytest.raises(ProducerError) as caught:
        clonequeue.submit(
            rows, batch="failover", services=services, on_progress=forget_the_first_chunk
        )
    assert str(caught.value).startswith(
        f"Redis lost {len(forgotten):,} jobs of the {ROWS:,} this submit recorded in batch failover"
    )
    assert "Run the same command again" in str(caught.value)

    again = clonequeue.submit(rows, batch="failover", services=services)
    assert again.submission is not None
    assert again.submission.new == len(forgotten)
    info = services.batches.info("failover")
    assert info is not None
    assert info.total == ROWS


def test_a_submit_redis_kept_whole_passes(services: Services) -> None:
    batch = clonequeue.submit(
        [row(f"kept{i}") for i in range(600)], batch="kept", services=services
    )
    assert batch.status().total == 600
