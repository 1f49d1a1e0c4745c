"""RabbitMQ as the broker, as a running fleet sees it: quorum queues with a per-consumer
prefetch, and countdowns (polls) that wait on the broker, never in a worker."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from clonequeue.local import rabbitmq
from clonequeue.local.stack import SimulatorAdmin
from tests.e2e.system import System, make_rows

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]
CONCURRENCY = 30  # System.start_worker's --concurrency


def test_polls_wait_on_the_broker_and_prefetch_is_per_consumer(
    make_system: type[System], simulator: SimulatorAdmin, rabbitmq_vhost: rabbitmq.Vhost
) -> None:
    simulator.configure(clone_processing_s=4.0, audio_processing_s=4.0)  # several polls each
    system = make_system(broker_url=rabbitmq_vhost.url)
    system.start_worker()
    ours = {*system.services.app.clonequeue_queues.all}
    queues = rabbitmq_vhost.queues()
    assert {queues[name]["type"] for name in ours} == {"quorum"}
    consumers = [c for c in rabbitmq_vhost.consumers() if c["queue_name"] in ours]
    assert {c["queue_name"] for c in consumers} == ours
    # Quorum queues have no global QoS: each consumer gets multiplier (1) x concurrency.
    assert {c["prefetch_count"] for c in consumers} == {CONCURRENCY}
    assert all(c["ack_required"] for c in consumers)

    system.submit(make_rows(20, audios=1))
    app = system.services.app
    held, unanswered = [], 0
    deadline = time.monotonic() + 60
    while not system.info("b").is_finished and time.monotonic() < deadline:
        # limit=1: one worker runs, so the call returns at its reply (not after the
        # whole timeout): several samples while the polls wait, even on a loaded host.
        replies = app.control.inspect(timeout=3, limit=1).scheduled() or {}
        if not replies:  # a loaded host: the broadcast's reply came after the timeout
            unanswered += 1
            continue
        held.append(sum(len(requests) for requests in replies.values()))
        time.sleep(0.5)
    assert len(held) >= 3, f"sampled while polls were waiting ({unanswered} unanswered)"
    assert held == [0] * len(held), "no countdown waited in the worker"
    system.wait("b", 60)
    assert system.audit("b").ok


def test_a_deleted_vhost_is_said_once_a_minute_and_the_worker_goes_on_when_it_is_back(
    make_system: type[System],
) -> None:
    """Celery's consumer restarts in a loop when the broker refuses its vhost: ~6 errors
    and a CRITICAL with a traceback a second (580 KB of log a minute) before logs.py's
    RepeatFilter."""
    reason = rabbitmq.unavailable_reason()
    if reason is not None:
        pytest.skip(f"RabbitMQ answers but no vhost of our own can be made: {reason}")
    with rabbitmq.temporary_vhost("clonequeue-deleted") as vhost:
        system = make_system(broker_url=vhost.url)
        try:
            worker = system.start_worker()
            system.submit(make_rows(3), batch="before")
            system.wait("before", 60)
            start = worker.log_path.stat().st_size
            vhost.delete()
            try:
                time.sleep(6)
            finally:
                vhost.create()
            with worker.log_path.open("rb") as log:
                log.seek(start)
                after = log.read().decode(errors="replace")
            said = Counter(
                line.split(" ", 2)[2]  # without the time
                for line in after.splitlines()
                if re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) ", line)
            )
            # before: "Cannot connect" ~6 times a second, "Frequent restarts" with a
            # traceback each second; now each is said once a minute
            assert said, after[-3000:]
            assert max(said.values()) == 1, said.most_common(3)
            system.submit(make_rows(3, prefix="after"), batch="after")
            assert system.wait("after", 90).counts["completed"] == 3
            creates = system.admin.ledger()["creates"]
            assert len(creates) == 12  # a clone and an audio for each of the 6 jobs, once
        finally:
            system.stop()  # while its vhost is there
