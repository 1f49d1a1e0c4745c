"""Thin Celery tasks: decode ids, call one plain function from steps.py or watchdog.py.

Arguments are ids only (job id, audio index, remote task id, generation): never the
token, never a script's text. ``argsrepr`` makes them read well in Flower.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clonequeue.config import Settings
from clonequeue.constants import CREATE_AUDIO, POLL_AUDIO, POLL_CLONE, SUBMIT_CLONE, WATCHDOG
from clonequeue.logs import set_log_context
from clonequeue.metrics import POLL_LAG
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.context import WorkerContext
from clonequeue.workers.publish import TaskPublisher, create_call, poll_call
from clonequeue.workers.queues import QueueNames


@dataclass
class Tasks:
    submit_clone: Any
    create_audio: Any
    poll_clone: Any
    poll_audio: Any
    watchdog: Any


class CeleryDispatcher:
    """Publishes step messages through the app's producer pool (workers/publish.py)."""

    def __init__(self, app: Any, queues: QueueNames) -> None:
        self._app = app
        self._queues = queues
        self._publisher = TaskPublisher(app)

    def create(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._publisher.publish_one(
            create_call(step, self._queues.submit, self._queues.produce), countdown=countdown
        )

    def poll(self, step: Dispatch, *, countdown: float | None = None) -> None:
        self._publisher.publish_one(poll_call(step, self._queues.poll), countdown=countdown)

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting on the broker per queue (not those held by workers)."""
        from clonequeue.workers.inspect import queue_depths

        return queue_depths(self._app, self._queues.all)


def _observe_lag(request: Any) -> None:
    """How late this countdown message ran (metric clonequeue_poll_lag_seconds)."""
    eta = getattr(request, "eta", None)
    if eta:
        due = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        POLL_LAG.observe(max(0.0, time.time() - due.timestamp()))


def register_tasks(app: Any, settings: Settings, queues: QueueNames) -> Tasks:
    """Define clonequeue's tasks on ``app``; each builds the process's context on first use."""
    lock = threading.Lock()
    holder: dict[str, WorkerContext] = {}

    def context() -> WorkerContext:
        if "ctx" not in holder:
            with lock:
                if "ctx" not in holder:
                    holder["ctx"] = WorkerContext.build(settings, CeleryDispatcher(app, queues))
        return holder["ctx"]

    from clonequeue.workers import steps, watchdog

    @app.task(name=SUBMIT_CLONE)  # type: ignore[untyped-decorator]
    def submit_clone(job_id: str, gen: int) -> str:
        """Send the clone (preview) create of a job, once."""
        set_log_context(job=job_id)
        return steps.run_create(context(), Dispatch(job_id, "c", gen))

    @app.task(name=CREATE_AUDIO)  # type: ignore[untyped-decorator]
    def create_audio(job_id: str, index: int, gen: int) -> str:
        """Send the create of production audio ``index`` of a job, once."""
        set_log_context(job=job_id)
        return steps.run_create(context(), Dispatch(job_id, str(index), gen))

    @app.task(name=POLL_CLONE, bind=True)  # type: ignore[untyped-decorator]
    def poll_clone(self: Any, job_id: str, remote_id: str, gen: int) -> str:
        """Poll a job's clone task; re-schedules itself until it is done."""
        set_log_context(job=job_id, remote_id=remote_id)
        _observe_lag(self.request)
        return steps.run_poll(context(), Dispatch(job_id, "c", gen, remote_id))

    @app.task(name=POLL_AUDIO, bind=True)  # type: ignore[untyped-decorator]
    def poll_audio(self: Any, job_id: str, index: int, remote_id: str, gen: int) -> str:
        """Poll a production audio task; re-schedules itself until it is done."""
        set_log_context(job=job_id, remote_id=remote_id)
        _observe_lag(self.request)
        return steps.run_poll(context(), Dispatch(job_id, str(index), gen, remote_id))

    @app.task(name=WATCHDOG)  # type: ignore[untyped-decorator]
    def run_watchdog() -> str:
        """Re-drive overdue steps, probe a paused fleet, release parked steps."""
        set_log_context()
        return watchdog.run_watchdog(context(), queues)

    return Tasks(submit_clone, create_audio, poll_clone, poll_audio, run_watchdog)
