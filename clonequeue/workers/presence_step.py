"""Each worker says it runs, every few seconds, in Redis (store/presence.py)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import bootsteps

from clonequeue.redis_refusals import error_line
from clonequeue.store.keys import Keys
from clonequeue.store.outage import RedisOutage
from clonequeue.store.presence import BEAT_EVERY_S, Presence

log = logging.getLogger(__name__)


class PresenceStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """A thread that marks the worker as seen; a clean stop marks it stopped at once."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._presence: Presence | None = None
        self._clock: Callable[[], float] = time.time
        self._thread: threading.Thread | None = None
        self._written = False  # the last mark went through
        self._name = ""

    def start(self, worker: Any) -> None:
        from clonequeue.store.connect import store_client

        app = worker.app
        settings = app.clonequeue_settings
        # no riding out an outage: a stop must not wait on it, and a beat missed is fine
        self._presence = Presence(store_client(settings, ride_out_s=0), Keys(settings.namespace))
        self._name = str(worker.hostname)
        self._clock = app.clonequeue_clock
        args = (self._presence, self._clock)
        self._thread = threading.Thread(target=self._run, args=args, name="presence", daemon=True)
        self._thread.start()

    def _run(self, presence: Presence, clock: Any) -> None:
        # A worker cut off from Redis otherwise logged nothing: its tasks wait inside
        # their retries, in silence (QA pass). Said once an outage, and its end.
        outage = RedisOutage(math.inf, _say_cut_off, _say_back)
        while not self._stop.is_set():
            try:
                presence.mark(self._name, now=clock(), pid=os.getpid())
            except redis.exceptions.RedisError as exc:  # Redis away: the next one will do
                self._written = False
                outage.next_wait(exc)
            else:
                self._written = True
                outage.end()
            self._stop.wait(BEAT_EVERY_S)

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)  # its last mark must not come after this one
        # Not when Redis was away at the last mark: the fleet clock might wait out the
        # outage, and this worker then shows as gone 20 s later anyway.
        if self._presence is not None and self._written:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._presence.mark(self._name, now=self._clock(), pid=os.getpid(), stopped=True)


def _say_cut_off(exc: BaseException) -> None:
    log.warning(
        "cannot reach Redis (%s: %s): this worker's tasks wait and retry, and steps they "
        "hold are re-driven by the others' watchdog; check this host's route to Redis",
        type(exc).__name__,
        error_line(exc),
    )


def _say_back(down_s: float) -> None:
    log.warning("Redis answers this worker again (unreachable for %.0f s)", down_s)
