"""Thin Celery tasks: decode ids, call one plain function from steps.py or watchdog.py.

Arguments are ids only (job id, audio index, remote task id, generation): never the
token, never a script's text. ``argsrepr`` makes them read well in Flower. Tasks are
registered on their app only (``shared=False``): Celery's default shares each one
with every app created later in the process, and a second app then met the first's
tasks under the same names (DuplicateTaskNameWarning, seen in the test suite).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clonequeue.config import Settings
from clonequeue.constants import CREATE_AUDIO, POLL_AUDIO, POLL_CLONE, SUBMIT_CLONE, WATCHDOG
from clonequeue.dispatch.dispatcher import CeleryDispatcher
from clonequeue.dispatch.messages import DUE_HEADER
from clonequeue.dispatch.queues import QueueNames
from clonequeue.logs import set_log_context
from clonequeue.metrics import POLL_LAG
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.context import WorkerContext


@dataclass
class Tasks:
    submit_clone: Any
    create_audio: Any
    poll_clone: Any
    poll_audio: Any
    watchdog: Any


def _observe_lag(request: Any, now: float) -> None:
    """How late this countdown message ran (metric clonequeue_poll_lag_seconds).

    The message's ETA is in fleet time (fleet_time.py), so ``now`` is too; a message
    the broker delayed (RabbitMQ) has no ETA but its due time in a header.
    """
    due_at = getattr(request, DUE_HEADER, None)
    if due_at is None:
        eta = getattr(request, "eta", None)
        if not eta:
            return
        due_at = (datetime.fromisoformat(eta) if isinstance(eta, str) else eta).timestamp()
    POLL_LAG.observe(max(0.0, now - float(due_at)))


def register_tasks(app: Any, settings: Settings, queues: QueueNames) -> Tasks:
    """Define clonequeue's tasks on ``app``; each builds the process's context on first use."""
    lock = threading.Lock()
    holder: dict[str, WorkerContext] = {}

    def context() -> WorkerContext:
        if "ctx" not in holder:
            with lock:
                if "ctx" not in holder:
                    holder["ctx"] = WorkerContext.build(
                        settings, CeleryDispatcher(app, queues), app.clonequeue_clock
                    )
        return holder["ctx"]

    from clonequeue.workers import steps, watchdog

    @app.task(name=SUBMIT_CLONE, shared=False)  # type: ignore[untyped-decorator]
    def submit_clone(job_id: str, gen: int) -> str:
        """Send the clone (preview) create of a job, once."""
        set_log_context(job=job_id)
        return steps.run_create(context(), Dispatch(job_id, "c", gen))

    @app.task(name=CREATE_AUDIO, shared=False)  # type: ignore[untyped-decorator]
    def create_audio(job_id: str, index: int, gen: int) -> str:
        """Send the create of production audio ``index`` of a job, once."""
        set_log_context(job=job_id)
        return steps.run_create(context(), Dispatch(job_id, str(index), gen))

    @app.task(name=POLL_CLONE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def poll_clone(self: Any, job_id: str, remote_id: str, gen: int) -> str:
        """Poll a job's clone task; re-schedules itself until it is done."""
        set_log_context(job=job_id, remote_id=remote_id)
        _observe_lag(self.request, context().clock())
        return steps.run_poll(context(), Dispatch(job_id, "c", gen, remote_id))

    @app.task(name=POLL_AUDIO, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def poll_audio(self: Any, job_id: str, index: int, remote_id: str, gen: int) -> str:
        """Poll a production audio task; re-schedules itself until it is done."""
        set_log_context(job=job_id, remote_id=remote_id)
        _observe_lag(self.request, context().clock())
        return steps.run_poll(context(), Dispatch(job_id, str(index), gen, remote_id))

    @app.task(name=WATCHDOG, shared=False)  # type: ignore[untyped-decorator]
    def run_watchdog() -> str:
        """Re-drive overdue steps, probe a paused fleet, release parked steps."""
        set_log_context()
        return watchdog.run_watchdog(context(), queues)

    return Tasks(submit_clone, create_audio, poll_clone, poll_audio, run_watchdog)
