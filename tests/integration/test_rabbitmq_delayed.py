"""On RabbitMQ, a countdown waits on the broker (native delayed delivery), not in a worker.

Our queues are quorum queues; a countdown message our publisher sends goes through
the ``celery_delayed_*`` levels with the exchange and routing key Celery's own
``send_task`` gives it, and reaches its queue only when it is due.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import before_task_publish
from kombu.transport.native_delayed_delivery import level_name

from clonequeue.config import load_settings
from clonequeue.constants import POLL_CLONE
from clonequeue.dispatch.broker import queue_depths
from clonequeue.dispatch.delayed import (
    DELAYED_ENTRY_EXCHANGE,
    declare_delayed_delivery,
    uses_native_delay,
)
from clonequeue.dispatch.dispatcher import CeleryDispatcher
from clonequeue.dispatch.messages import DUE_HEADER
from clonequeue.local import rabbitmq
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.app import create_app

pytestmark = pytest.mark.rabbitmq
LEVELS = [level_name(level) for level in range(28)]


@pytest.fixture
def app(rabbitmq_vhost: rabbitmq.Vhost, redis_url: str) -> Iterator[Any]:
    settings = load_settings(
        env_file=None,
        redis_url=redis_url,
        broker_url=rabbitmq_vhost.url,
        namespace=f"delay{uuid.uuid4().hex[:6]}",
    )
    app = create_app(settings)
    declare_delayed_delivery(app, app.amqp.queues.values())
    with app.connection_for_write() as connection:
        channel = connection.channel()
        for level in LEVELS:  # what earlier tests of this session left waiting
            channel.queue_purge(level)
    yield app
    with app.connection_for_write() as connection:
        channel = connection.channel()
        for queue in app.amqp.queues.values():
            channel.queue_delete(queue.name)
    app.close()


def published_routes(publish: Any) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []

    def record(exchange: Any = None, routing_key: str = "", **_: Any) -> None:
        routes.append((getattr(exchange, "name", exchange), routing_key))

    before_task_publish.connect(record, weak=False)
    try:
        publish()
    finally:
        before_task_publish.disconnect(record)
    return routes


def wait_until_queued(app: Any, queue: str, count: int, within_s: float = 30) -> None:
    """Until ``count`` messages have left the delayed levels for ``queue``."""
    deadline = time.monotonic() + within_s
    while (depths := queue_depths(app, [queue, *LEVELS]))[queue] < count:
        assert time.monotonic() < deadline, f"not delivered to {queue}: {depths}"
        time.sleep(0.2)


def test_queues_are_quorum_queues_and_native_delay_is_on(app: Any) -> None:
    assert uses_native_delay(app)
    for queue in app.amqp.queues.values():
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.exchange.type == "topic"


def test_our_countdown_takes_the_route_send_task_gives_it(app: Any) -> None:
    dispatcher = CeleryDispatcher(app)
    step = Dispatch("job-1", "c", 1, remote_id="r-1")
    ours = published_routes(lambda: dispatcher.poll(step, countdown=5))
    celery = published_routes(
        lambda: app.send_task(POLL_CLONE, args=[], queue=dispatcher.queues.poll, countdown=5)
    )
    assert ours == celery
    assert ours[0][0] == DELAYED_ENTRY_EXCHANGE
    assert ours[0][1].endswith(f".{dispatcher.queues.poll}")


def test_a_countdown_waits_on_the_broker_then_reaches_its_queue(
    app: Any, rabbitmq_vhost: rabbitmq.Vhost
) -> None:
    dispatcher = CeleryDispatcher(app)
    poll_queue = dispatcher.queues.poll
    dispatcher.poll(Dispatch("job-3", "c", 1, remote_id="r-3"), countdown=8)
    assert rabbitmq_vhost.queues()[poll_queue]["type"] == "quorum"
    # A loaded broker takes a moment to write it down, and a message dead-lettered from
    # one level to the next is in no queue for a moment: wait for one snapshot that
    # shows it in the levels (a sum over a snapshot per level once counted it nowhere).
    deadline = time.monotonic() + 6
    while True:
        depths = queue_depths(app, [poll_queue, *LEVELS])
        if sum(depths[name] for name in LEVELS) == 1:
            break
        assert time.monotonic() < deadline, f"not in the levels once: {depths}"
        time.sleep(0.1)
    assert depths[poll_queue] == 0  # not yet in its queue, where a worker would take it
    dispatcher.poll(Dispatch("job-2", "c", 1, remote_id="r-2"), countdown=0.4)  # sent as 1 s
    wait_until_queued(app, poll_queue, 2)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        bodies, headers = [], []
        while (message := channel.basic_get(poll_queue, no_ack=True)) is not None:
            bodies.append(message.headers["argsrepr"])
            headers.append(message.headers)
    assert sorted(bodies) == ["job=job-2 remote=r-2 gen=1", "job=job-3 remote=r-3 gen=1"]
    # The broker was the timer: no ETA for a worker to hold them to, the due time for
    # the lateness metric only.
    assert all(h.get("eta") is None for h in headers), headers
    assert all(isinstance(h.get(DUE_HEADER), float) for h in headers), headers


def test_a_results_retry_waits_on_the_broker_rounded_up_to_a_second(app: Any) -> None:
    """Celery's send_task refuses a native delay under 1 s; the results publisher rounds
    up, and its retries carry no ETA (a retry an hour out must not sit in a worker)."""
    from clonequeue.outputs.keys import WEBHOOK
    from clonequeue.outputs.tasks import publisher, queue_names

    with pytest.raises(ValueError, match="positive"):
        app.send_task(POLL_CLONE, args=[], queue=app.clonequeue_queues.poll, countdown=0.3)
    namespace = app.clonequeue_settings.namespace
    publish = publisher(app, namespace)
    [(exchange, routing_key)] = published_routes(lambda: publish(WEBHOOK, "item-1", 0.3))
    assert exchange == DELAYED_ENTRY_EXCHANGE
    assert routing_key == "0." * 27 + "1." + f"{namespace}.webhooks"
    webhooks = queue_names(namespace)[WEBHOOK]
    wait_until_queued(app, webhooks, 1)
    with app.connection_for_write() as connection:
        message = connection.channel().basic_get(webhooks, no_ack=True)
    assert message is not None
    assert message.headers["argsrepr"] == "item=item-1"
    assert message.headers.get("eta") is None, message.headers
    assert isinstance(message.headers.get(DUE_HEADER), float), message.headers
