"""Sends the message a step's record calls for: the one seam between records and the broker.

Every message stands for a step whose `due` entry was written by the same Lua script
that recorded it (see due.py), so a message lost on the way — never published, held by
a dead worker, dropped by a crashed Redis, acknowledged after its task raised — is
re-driven by the watchdog. Callers record first, then send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from clonequeue.dispatch.broker import queue_depths
from clonequeue.dispatch.messages import TaskPublisher, clone_call, create_call, poll_call
from clonequeue.dispatch.queues import QueueNames
from clonequeue.store.jobs import Dispatch


class Dispatcher(Protocol):
    """Sends the message for a step: the Celery implementation, or a fake in tests."""

    def create(self, step: Dispatch, *, countdown: float | None = None) -> None: ...

    def poll(self, step: Dispatch, *, countdown: float | None = None) -> None: ...

    def queue_depths(self) -> dict[str, int]: ...


def send_all(dispatcher: Dispatcher, steps: Iterable[Dispatch]) -> None:
    """The messages for steps a state change released (fan-out, unparked, re-driven)."""
    for step in steps:
        if step.remote_id is not None:
            dispatcher.poll(step)
        else:
            dispatcher.create(step)


class CeleryDispatcher:
    """Publishes step messages through the app's producer pool (messages.py)."""

    def __init__(self, app: Any, queues: QueueNames | None = None) -> None:
        self._app = app
        self.queues: QueueNames = queues or app.clonequeue_queues
        self._publisher = TaskPublisher(app)

    def create(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._publisher.publish_one(
            create_call(step, self.queues.submit, self.queues.produce), countdown=countdown
        )

    def poll(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._publisher.publish_one(poll_call(step, self.queues.poll), countdown=countdown)

    def publish_creates(self, steps: Iterable[Dispatch]) -> int:
        """Many create messages in one pipelined batch (producers, `retry`); returns how many."""
        q = self.queues
        return self._publisher.publish(create_call(step, q.submit, q.produce) for step in steps)

    def publish_first_creates(self, job_ids: Iterable[str]) -> int:
        """The first message of each new job (generation 0), pipelined: the producers' path."""
        queue = self.queues.submit
        return self._publisher.publish(clone_call(job_id, 0, queue) for job_id in job_ids)

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting on the broker per queue (not those held by workers)."""
        return queue_depths(self._app, self.queues.all)
