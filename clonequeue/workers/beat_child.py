"""An embedded beat (``worker --beat``) dies with its worker.

Celery runs it in a child process; a worker killed alone (``kill -9 PID``, the OOM
killer) left it running under init, scheduling the watchdog for good beside the
worker's replacement and its beat. On Linux the child asks the kernel for a SIGTERM
when its parent dies (``PR_SET_PDEATHSIG``); a standalone ``clonequeue beat`` is left
alone (its parent is a shell or a supervisor).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

from celery.signals import beat_embedded_init

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


def install() -> None:
    """Connect :func:`die_with_parent` (in the worker, before beat's child is forked)."""
    beat_embedded_init.connect(die_with_parent, weak=False)
