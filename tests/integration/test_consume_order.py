"""A worker on a Redis broker fetches its queues most urgent first, not round robin.

Against the suite's Redis, with the broker options a worker gets (create_app) and
the queue order ``clonequeue worker`` passes to Celery: a backlog of creates must not
hold a finished task's poll in the Redis list (seen under a binding rate limit: polls
fetched 10-29 s after they were due, one message fetched per task done).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clonequeue.config import load_settings
from clonequeue.dispatch.queues import consume_order
from clonequeue.workers.app import create_app


@pytest.fixture
def app(redis_url: str) -> Iterator[Any]:
    settings = load_settings(
        env_file=None, redis_url=redis_url, namespace=f"order{uuid.uuid4().hex[:6]}"
    )
    app = create_app(settings)
    yield app
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            channel.queue_delete(queue.name)
    app.close()


def worker_queues(app: Any) -> list[str]:
    names = app.clonequeue_queues
    results = list(app.clonequeue_results_queues.values())
    # the order `clonequeue worker` lists them in before sorting (cli/worker_cmd.py)
    return consume_order(
        [names.submit, names.produce, names.poll, *results, names.watchdog], names, results
    )


def test_the_order_is_watchdog_polls_deliveries_audios_then_clones(app: Any) -> None:
    names = app.clonequeue_queues
    results = list(app.clonequeue_results_queues.values())
    assert worker_queues(app) == [names.watchdog, names.poll, *results, names.produce, names.submit]
    assert consume_order([names.submit, names.poll], names, results) == [names.poll, names.submit]


def test_a_poll_is_fetched_before_a_backlog_of_creates(app: Any) -> None:
    names = app.clonequeue_queues
    queues = [app.amqp.queues[name] for name in worker_queues(app)]
    received: list[str] = []

    def publish(queue: str, count: int) -> None:
        with app.producer_or_acquire() as producer:
            for n in range(count):
                producer.publish(
                    {"n": n},
                    exchange=app.amqp.queues[queue].exchange,
                    routing_key=queue,
                    declare=[app.amqp.queues[queue]],
                )

    publish(names.submit, 20)
    publish(names.produce, 4)
    publish(names.poll, 1)
    with app.connection_for_read() as connection:
        assert connection.transport_options["queue_order_strategy"] == "priority"

        def on_message(body: Any, message: Any) -> None:
            received.append(message.delivery_info["routing_key"])
            message.ack()

        with connection.Consumer(queues, callbacks=[on_message], prefetch_count=1):
            for _ in range(3):
                connection.drain_events(timeout=5)
            publish(names.poll, 1)  # a poll due while creates wait: it goes next
            for _ in range(4):
                connection.drain_events(timeout=5)
    # round robin gave poll, produce, submit, produce, submit, ...
    assert received == [
        names.poll,
        names.produce,
        names.produce,
        names.poll,
        names.produce,
        names.produce,
        names.submit,
    ]
