"""``clonequeue worker`` under gevent: monkey-patch first, then the normal CLI.

Run: ``python bench/_gevent_worker.py worker --concurrency 200 --pool=gevent``. Celery
patches for gevent only when started as ``celery -P gevent``; clonequeue's own
command does not, so bench/worker_pool.py starts the worker through this file.
``--pool=gevent`` after the known options overrides the ``--pool=threads`` that
``clonequeue worker`` passes (the last one wins).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from clonequeue.cli.main import run  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "clonequeue"
    run()
