"""Publish Celery task messages without ``send_task``'s per-message overhead.

``apply_async``/``send_task`` spend ~300 µs of a ~650 µs publish on routing, option
merging, tracing and declaring the queue again (measured alone; a worker publishes
once per poll). Here Celery still builds each message (``app.amqp.as_task_v2``) and
publishes it (``app.amqp.send_task_message``, which fires the publish signals), but
each queue is declared once per process. Producers send many at once through
kombu's ``Producer.batch()``, which pipelines the writes; workers send one at a
time. Workers see ordinary messages either way.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from celery.utils.nodenames import anon_nodename

from clonequeue.constants import CREATE_AUDIO, POLL_AUDIO, POLL_CLONE, SUBMIT_CLONE
from clonequeue.dispatch.delayed import (
    declare_delayed_delivery,
    delayed_route,
    uses_native_delay,
    whole_seconds,
)
from clonequeue.dispatch.scheduled import (
    DELAY_HEADER,
    FIRST_HEADER,
    install,
    uses_scheduled_delay,
)
from clonequeue.store.jobs import Dispatch

_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant

# The fleet time (seconds) a natively delayed message is due at: it carries no ETA.
DUE_HEADER = "clonequeue_due_at"

# (task name, positional args, queue name, argsrepr)
TaskCall = tuple[str, tuple[Any, ...], str, str]


class TaskPublisher:
    """Publishes task calls in pipelined batches; queues are declared once each."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._origin = anon_nodename()  # what send_task puts in the header
        self._declared: set[str] = set()
        self._random = random.Random()  # seeded from os.urandom once
        self.native_delay = uses_native_delay(app)  # RabbitMQ with quorum queues
        # Redis: a countdown waits in a sorted set until due (scheduled.py); the header
        # that says so is set here, so the hook that honours it is installed here too
        self.scheduled_delay = uses_scheduled_delay(app)
        if self.scheduled_delay:
            install()
        self._delay_ready = False

    def publish(self, calls: Iterable[TaskCall]) -> int:
        """Send every call; returns how many. A failed flush raises (kombu's BatchPublishError)."""
        sent = 0
        with self._app.producer_or_acquire() as producer, producer.batch():
            for call in calls:
                # retry=False: a batch writes on flush, outside any retry wrapper.
                self._send(producer, call, countdown=None, retry=False)
                sent += 1
        return sent

    def publish_one(self, call: TaskCall, *, countdown: float | None = None) -> None:
        """Send one call now (retrying through a broker blip), to run ``countdown`` s later."""
        with self._app.producer_or_acquire() as producer:
            self._send(producer, call, countdown=countdown, retry=True)

    def _send(self, producer: Any, call: TaskCall, *, countdown: float | None, retry: bool) -> None:
        name, args, queue, argsrepr = call
        amqp = self._app.amqp
        if queue not in self._declared:
            producer.maybe_declare(amqp.queues[queue])
            self._declared.add(queue)
        route: dict[str, str] = {}
        due_at: float | None = None
        delay_s: float | None = None
        if countdown and countdown > 0 and self.native_delay:
            if not self._delay_ready:
                declare_delayed_delivery(self._app, amqp.queues.values())
                self._delay_ready = True
            delay = whole_seconds(countdown)  # the delay the levels can express
            exchange, routing_key = delayed_route(delay, amqp.queues[queue].routing_key)
            route = {"exchange": exchange, "routing_key": routing_key}
            # The broker is the timer: with an ETA as well, every such message would
            # pass through the worker's timer on arrival (held, if only briefly, and
            # longer the more the host is loaded). The due time rides in a header of
            # ours, for the lateness metric only.
            due_at = self._app.now().timestamp() + delay
            countdown = None
        elif countdown and countdown > 0 and self.scheduled_delay:
            # Redis: the message waits in its queue's scheduled set, not in the list
            # nor in a worker's memory (scheduled.py); no ETA, for the same reason.
            delay_s = countdown
            due_at = self._app.now().timestamp() + countdown
            countdown = None
        message = amqp.as_task_v2(
            self.task_id(),
            name,
            args,
            countdown=countdown,
            argsrepr=argsrepr,
            kwargsrepr="{}",
            origin=self._origin,
            # The header wins over task_ignore_result on the worker, and as_task_v2
            # defaults it to False: every task would write a celery-task-meta key
            # that nothing reads.
            ignore_result=True,
        )
        if due_at is not None:
            message.headers[DUE_HEADER] = due_at
        if delay_s is not None:
            message.headers[DELAY_HEADER] = delay_s
            if name == POLL_CLONE:  # a done clone unlocks its audios: fetched first
                message.headers[FIRST_HEADER] = 1
        amqp.send_task_message(
            producer, name, message, queue=queue, declare=(), retry=retry, **route
        )

    def task_id(self) -> str:
        """A random (version 4) UUID, as ``send_task`` gives, without a syscall per message.

        ``uuid.uuid4()`` reads ``os.urandom`` for every id, ~6 % of enqueueing here.
        """
        bits = self._random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
        text = f"{bits:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def clone_call(job_id: str, gen: int, queue: str) -> TaskCall:
    return (SUBMIT_CLONE, (job_id, gen), queue, f"job={job_id} gen={gen}")


def create_call(step: Dispatch, submit_queue: str, produce_queue: str) -> TaskCall:
    """The create message of a step: submit_clone, or create_audio on the produce queue."""
    if step.is_clone:
        return clone_call(step.job_id, step.gen, submit_queue)
    index = int(step.item)
    return (
        CREATE_AUDIO,
        (step.job_id, index, step.gen),
        produce_queue,
        f"job={step.job_id} audio={index} gen={step.gen}",
    )


def poll_call(step: Dispatch, queue: str) -> TaskCall:
    """The poll message of a running step: poll_clone or poll_audio, with its remote id."""
    assert step.remote_id is not None
    if step.is_clone:
        return (
            POLL_CLONE,
            (step.job_id, step.remote_id, step.gen),
            queue,
            f"job={step.job_id} remote={step.remote_id} gen={step.gen}",
        )
    index = int(step.item)
    return (
        POLL_AUDIO,
        (step.job_id, index, step.remote_id, step.gen),
        queue,
        f"job={step.job_id} audio={index} remote={step.remote_id} gen={step.gen}",
    )
