"""The baseline worker: a bare Celery app with one no-op task, configured like ours.

Run: ``python bench/_bare_worker.py BROKER_URL CONCURRENCY on|off [threads|gevent]``
(events on or off). Same broker transport, pool, concurrency, serializer, acks_late,
prefetch and ignore_result as clonequeue's app (clonequeue/workers/app.py); no
routing, no countdowns, no Redis or HTTP work in the task. Used by _harness.bare_noop.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[4:5] == ["gevent"]:
    from gevent import monkey

    monkey.patch_all()

from typing import Any

QUEUE = "bench.noop"


def make_app(broker_url: str, concurrency: int) -> Any:
    from celery import Celery
    from kombu import Exchange, Queue

    app = Celery("bench_bare", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)],
        task_default_queue=QUEUE,
        task_send_sent_event=False,
        worker_concurrency=concurrency,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="bench.noop")
    def noop() -> None:
        return None

    return app


def main() -> None:
    broker_url, concurrency, events = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
    pool = sys.argv[4] if len(sys.argv) > 4 else "threads"
    app = make_app(broker_url, concurrency)
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO"]
    if events:
        argv.append("--task-events")
    app.worker_main(argv)


if __name__ == "__main__":
    main()
