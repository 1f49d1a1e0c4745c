"""An embedded beat (``worker --beat``) lives and dies with its worker.

Celery runs it in a child process; a worker killed alone (``kill -9 PID``, the OOM
killer) left it running under init, scheduling the watchdog for good beside the
worker's replacement and its beat. On Linux the child asks the kernel for a SIGTERM
when its parent dies (``PR_SET_PDEATHSIG``); a standalone ``clonequeue beat`` is left
alone (its parent is a shell or a supervisor).

The other way round, a beat child that died (killed, or an error at its start) was
never noticed: the worker ran on with no watchdog, and lost messages waited for good
(QA pass: 18 steps overdue for 5 minutes, nothing said). The worker now looks every
``CHECK_S`` and starts it again, at most every ``RESTART_GAP_S``, saying so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

from celery.signals import beat_embedded_init, worker_ready

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CHECK_S = 1.0  # the worker looks at its beat child this often...
RESTART_GAP_S = 5.0  # ...and starts it again at most this often (one that dies at start)
BEAT_STEP = "celery.worker.components.Beat"


def die_with_parent(**_: Any) -> None:
    """In the beat child: SIGTERM when the worker that started it dies."""
    if not sys.platform.startswith("linux"):
        return
    parent = multiprocessing.parent_process()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("beat cannot ask to die with its worker: errno %d", ctypes.get_errno())
        return
    if parent is not None and os.getppid() != parent.pid:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def keep_alive(sender: Any = None, **_: Any) -> None:
    """In the worker, once ready: watch its embedded beat child (if it has one)."""
    worker = getattr(sender, "controller", None)
    if worker is None or getattr(worker, "beat", None) is None:
        return
    threading.Thread(target=_watch, args=(worker,), name="beat-keeper", daemon=True).start()


def _watch(worker: Any) -> None:
    from celery.beat import EmbeddedService
    from celery.bootsteps import RUN

    started = time.monotonic()
    while True:
        time.sleep(CHECK_S)
        beat = worker.beat
        if beat is None or not hasattr(beat, "is_alive") or worker.blueprint.state != RUN:
            return  # a threaded beat, or the worker is stopping
        if beat.is_alive():
            continue
        time.sleep(max(started + RESTART_GAP_S - time.monotonic(), 0.0))
        if worker.blueprint.state != RUN:
            return
        log.error(
            "the embedded beat died (exit code %s): starting it again; without it no "
            "watchdog runs and lost messages are not sent again",
            beat.exitcode,
        )
        beat = EmbeddedService(
            worker.app, schedule_filename=worker.schedule_filename, scheduler_cls=worker.scheduler
        )
        beat.start()
        worker.beat = beat
        step = worker.blueprint.steps.get(BEAT_STEP)
        if step is not None:
            step.obj = beat  # the worker's shutdown stops this one
        started = time.monotonic()


def install() -> None:
    """Connect :func:`die_with_parent` (in the worker, before beat's child is forked)
    and :func:`keep_alive` (in the worker, once it is ready)."""
    beat_embedded_init.connect(die_with_parent, weak=False)
    worker_ready.connect(keep_alive, weak=False)
