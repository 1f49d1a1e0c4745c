"""The results tasks on Celery: ids only in their arguments (never a secret or a body)."""

from __future__ import annotations

import threading
from typing import Any

from clonequeue.config import Settings
from clonequeue.outputs.keys import ARTIFACT, WEBHOOK

RESULTS_PASS = "clonequeue.results_pass"
DELIVER_WEBHOOK = "clonequeue.deliver_webhook"
FETCH_ARTIFACT = "clonequeue.fetch_artifact"
TASK_OF = {WEBHOOK: DELIVER_WEBHOOK, ARTIFACT: FETCH_ARTIFACT}


def queue_names(ns: str) -> dict[str, str]:
    """Their own queues: a slow receiver or a 100 MB file never delays a poll."""
    return {WEBHOOK: f"{ns}.webhooks", ARTIFACT: f"{ns}.artifacts"}


def publisher(app: Any, ns: str) -> Any:
    """``publish(kind, item_id, countdown)`` for webhook deliveries and downloads.

    Through our ``TaskPublisher``, as every step is sent: on RabbitMQ a countdown waits
    on the broker (native delayed delivery, whole seconds, no ETA), so a retry an hour
    out never sits in a worker's timer; on Redis it carries the ETA as usual.
    """
    from clonequeue.dispatch.messages import TaskPublisher

    queues = queue_names(ns)
    tasks = TaskPublisher(app)

    def publish(kind: str, item_id: str, countdown: float | None) -> None:
        call = (TASK_OF[kind], (item_id,), queues[kind], f"item={item_id}")
        tasks.publish_one(call, countdown=countdown)

    return publish


def register_results_tasks(app: Any, settings: Settings) -> None:
    from clonequeue.logs import set_log_context
    from clonequeue.outputs import runner
    from clonequeue.store.connect import store_client

    lock = threading.Lock()
    holder: dict[str, runner.ResultsContext] = {}

    def context() -> runner.ResultsContext:
        if "ctx" not in holder:
            with lock:
                if "ctx" not in holder:
                    holder["ctx"] = runner.ResultsContext(
                        settings,
                        store_client(settings),
                        publisher(app, settings.namespace),
                        clock=app.clonequeue_clock,  # the fleet's (Redis's time)
                    )
        return holder["ctx"]

    @app.task(name=RESULTS_PASS, shared=False)  # type: ignore[untyped-decorator]
    def results_pass() -> str:
        """Record webhooks and downloads for finished jobs; re-drive overdue ones."""
        set_log_context()
        return runner.run_pass(context())

    @app.task(name=DELIVER_WEBHOOK, shared=False)  # type: ignore[untyped-decorator]
    def deliver_webhook(msg_id: str) -> str:
        """One signed attempt of a webhook delivery."""
        set_log_context()
        return runner.deliver_webhook(context(), msg_id)

    @app.task(name=FETCH_ARTIFACT, shared=False)  # type: ignore[untyped-decorator]
    def fetch_artifact(item_id: str) -> str:
        """Download one audio or subtitle file into the artifact store."""
        set_log_context(job=item_id.partition("|")[0])
        return runner.fetch_artifact(context(), item_id)
