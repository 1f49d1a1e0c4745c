"""The broker queues. Separate queues keep a flood of new jobs from starving running ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# RabbitMQ: replicated (Raft), durable, at-least-once dead-lettering; and the
# queue type that turns on Celery's native delayed delivery (delayed.py).
QUORUM_ARGUMENTS = {"x-queue-type": "quorum"}


@dataclass(frozen=True, slots=True)
class QueueNames:
    submit: str  # new clones from producers: may hold millions
    produce: str  # production audios of voices just cloned: never behind the backlog
    poll: str  # polls of running remote tasks
    watchdog: str  # the watchdog's runs alone: no backlog of steps can starve it

    @classmethod
    def for_namespace(cls, ns: str) -> QueueNames:
        return cls(
            submit=f"{ns}.submit",
            produce=f"{ns}.produce",
            poll=f"{ns}.poll",
            watchdog=f"{ns}.watchdog",
        )

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.submit, self.produce, self.poll, self.watchdog)

    def for_create(self, is_clone: bool) -> str:
        return self.submit if is_clone else self.produce

    def for_step(self, is_clone: bool, *, running: bool) -> str:
        """The queue a step's next message waits in: its poll's, or its create's."""
        return self.poll if running else self.for_create(is_clone)


def broker_queue(name: str, *, rabbitmq: bool) -> Any:
    """One kombu queue and its own exchange, routing key = name: a message reaches one queue.

    Redis: a direct exchange. RabbitMQ: a quorum queue on a topic exchange, because
    native delayed delivery binds ``#.<name>`` and skips direct exchanges.
    """
    from kombu.entity import Exchange, Queue

    if not rabbitmq:
        return Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True)  # type: ignore[no-untyped-call]
    return Queue(  # type: ignore[no-untyped-call]
        name,
        Exchange(name, type="topic"),  # type: ignore[no-untyped-call]
        routing_key=name,
        durable=True,
        queue_arguments=dict(QUORUM_ARGUMENTS),
    )
