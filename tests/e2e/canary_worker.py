"""``clonequeue worker`` (our app, our logging, Celery's own worker) plus one task that
leaks the API token, in every printable form of tests/leak_forms.py, into log lines,
its exception (Celery's traceback and the task-failed event Flower shows) and its
result (the task-succeeded event). tests/e2e/test_secrets.py checks none gets out.

Run as a script with the stack's environment; CLONEQUEUE_API_TOKEN is the canary.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clonequeue.config import load_settings
from clonequeue.logs import setup_logging
from clonequeue.workers.app import create_app
from tests.leak_forms import leak_forms

LEAK_TASK = "tests.leak_canary"


def main() -> None:
    settings = load_settings(env_file=None)
    setup_logging(settings)
    app = create_app(settings)
    log = logging.getLogger("tests.canary")
    token = settings.require_token().get_secret_value()
    texts = [text for text, _ in leak_forms(token).values()]

    @app.task(name=LEAK_TASK)  # type: ignore[untyped-decorator]
    def leak(fail: bool) -> str:
        for text in texts:
            log.warning("leaking %s", text)
        if fail:
            raise RuntimeError(" | ".join(texts))
        return " | ".join(texts)

    app.worker_main(
        [
            "worker",
            f"--queues={app.clonequeue_queues.submit}",
            "--pool=threads",
            "--concurrency=2",
            "--task-events",
            "--loglevel=INFO",
            "--hostname=canary@%h",
        ]
    )


if __name__ == "__main__":
    main()
