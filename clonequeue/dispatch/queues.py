"""The broker queues. Separate queues keep a flood of new jobs from starving running ones."""

from __future__ import annotations

from dataclasses import dataclass


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
