"""What this process started and has not stopped yet, so an exit hook can stop it."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LiveSet(Generic[T]):
    """A thread-safe set of running things (servers, child processes)."""

    def __init__(self) -> None:
        self._items: set[T] = set()
        self._lock = threading.Lock()

    def add(self, item: T) -> None:
        with self._lock:
            self._items.add(item)

    def discard(self, item: T) -> None:
        with self._lock:
            self._items.discard(item)

    def snapshot(self) -> list[T]:
        with self._lock:
            return list(self._items)
