"""``clonequeue worker`` with experimental changes applied in-process, to measure them.

Run: ``BENCH_PATCHES=kombu_client,no_events,quiet_logs python bench/_patched_worker.py
worker [--no-events] …``. Nothing under clonequeue/ changes: each patch is what a
proposal in bench/proposals.py would do in the core, applied here before the CLI
starts, so its saving can be measured before anyone commits to it.

kombu_client
    kombu's Redis channel builds a new ``redis.Redis`` object for every publish,
    event and unacked-bookkeeping call (``Channel.conn_or_acquire``); with redis-py
    7 each costs tens of µs. Reuse one client per channel (it is thread-safe: it
    takes a pooled connection per command).
no_events
    Celery task events off (``worker_send_task_events=False``); pass ``--no-events``
    too, or the CLI flag turns them back on.
quiet_logs
    Celery's per-task INFO lines ("received", "succeeded") at WARNING.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any


def patch_kombu_client() -> None:
    from kombu.transport import redis as kombu_redis

    @contextlib.contextmanager
    def conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        cached = self.__dict__.get("_bench_client")
        if cached is None:
            cached = self.__dict__["_bench_client"] = self._create_client()
        yield cached

    kombu_redis.Channel.conn_or_acquire = conn_or_acquire


def patch_no_events() -> None:
    from clonequeue.workers import app as app_module

    original = app_module.create_app

    def create_app(settings: Any) -> Any:
        app = original(settings)
        app.conf.worker_send_task_events = False
        return app

    app_module.create_app = create_app


def patch_quiet_logs() -> None:
    from celery import signals

    @signals.worker_ready.connect(weak=False)
    def quiet(**_: Any) -> None:
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)


PATCHES = {
    "kombu_client": patch_kombu_client,
    "no_events": patch_no_events,
    "quiet_logs": patch_quiet_logs,
}

if __name__ == "__main__":
    for name in filter(None, os.environ.get("BENCH_PATCHES", "").split(",")):
        PATCHES[name]()
        print(f"bench patch applied: {name}", flush=True)
    from clonequeue.cli.main import run

    sys.argv[0] = "clonequeue"
    run()
