"""RabbitMQ's native delayed delivery for the messages we publish ourselves.

On RabbitMQ our queues are quorum queues on topic exchanges, and Celery (≥ 5.5)
routes a countdown message through the ``celery_delayed_*`` exchanges: 28 levels of
queues with TTLs of 2^level seconds, which dead-letter the message down to the
``celery_delayed_delivery`` exchange when its delay ran out, and from there (the
workers bind every queue at start) to its queue. Until then it sits on the broker:
not in a worker's memory, not bound by a visibility timeout or ``consumer_timeout``.

``app.send_task`` does this routing itself; ``TaskPublisher`` (messages.py) publishes
with ``send_task_message`` and so asks :func:`delayed_route` for the same exchange
and routing key. The delay is rounded *up* to whole seconds: the levels count whole
seconds, and a message that arrived before its ETA would again wait in a worker.
A publisher declares the levels and binds its queues once per process
(:func:`declare_delayed_delivery`, what a worker does at start), so a countdown
sent before any worker ran on a new vhost is neither refused nor dropped.
"""

from __future__ import annotations

import math
from typing import Any

from celery.utils.quorum_queues import detect_quorum_queues
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    calculate_routing_key,
    declare_native_delayed_delivery_exchanges_and_queues,
)

# Celery's entry into the levels (celery/app/base.py send_task).
DELAYED_ENTRY_EXCHANGE = "celery_delayed_27"
RABBITMQ_SCHEMES = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})


def is_rabbitmq_url(url: str) -> bool:
    """Whether a broker URL names RabbitMQ (the AMQP transports)."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() in RABBITMQ_SCHEMES


def uses_native_delay(app: Any) -> bool:
    """Celery's own test: an AMQP broker and at least one quorum queue."""
    driver_type = app.connection_for_write().transport.driver_type
    return bool(detect_quorum_queues(app, driver_type)[0])


def whole_seconds(countdown: float) -> int:
    """The delay the levels can express without delivering early: at least 1 s."""
    return max(1, math.ceil(countdown))


def delayed_route(countdown: float, routing_key: str) -> tuple[str, str]:
    """(exchange, routing key) that deliver a message to ``routing_key`` after ``countdown``."""
    return DELAYED_ENTRY_EXCHANGE, calculate_routing_key(whole_seconds(countdown), routing_key)


def declare_delayed_delivery(app: Any, queues: Any) -> None:
    """Declare the levels and bind ``queues`` to their exit, as Celery's worker does."""
    with app.connection_for_write() as connection:  # its channels close with it
        declare_native_delayed_delivery_exchanges_and_queues(
            connection, app.conf.broker_native_delayed_delivery_queue_type
        )
        channel = connection.channel()
        for queue in queues:
            queue.bind(channel).declare()  # its exchange must exist to be bound
            bind_queue_to_native_delayed_delivery_exchange(connection, queue)
