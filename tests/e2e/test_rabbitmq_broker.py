"""RabbitMQ as the broker, as a running fleet sees it: quorum queues with a per-consumer
prefetch, and countdowns (polls) that wait on the broker, never in a worker."""

from __future__ import annotations

import time

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
