"""Turn failures into one line on stderr and an exit code; never a traceback.

Exit codes: 0 success, 1 a fatal problem (Redis unreachable, unreadable file, API
refused), 2 usage or configuration error, 3 some input rows rejected, 4 some jobs
failed. Tracebacks are never printed (they could carry a token in a local).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

import redis.exceptions

from clonequeue.errors import ClonequeueError, ConfigError, InputError

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_REJECTED_ROWS = 3
EXIT_JOBS_FAILED = 4


def fail(message: str, code: int = EXIT_FATAL) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    from clonequeue.redaction import redact

    for line in redact(message).splitlines() or [message]:
        print(f"error: {line}", file=sys.stderr)
    raise SystemExit(code)


def run_guarded(main: Callable[[], object]) -> None:
    """Run the CLI, mapping our errors and Redis outages to one clear line each."""
    try:
        main()
    except (Exception, KeyboardInterrupt) as exc:
        explained = explain(exc)
        if explained is None:
            raise
        fail(*explained)


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The line and exit code the CLI gives for ``exc``; None for an error it does not expect.

    One mapping, so ``submit --json`` puts in its ``error`` field the words stderr gets.
    """
    if isinstance(exc, ConfigError | InputError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, redis.exceptions.ConnectionError):
        return (
            f"cannot reach Redis ({exc.__class__.__name__}: {_first_line(exc)}); start it "
            "(`make redis` or `clonequeue redis`) or set CLONEQUEUE_REDIS_URL",
            EXIT_FATAL,
        )
    if isinstance(exc, redis.exceptions.RedisError):
        return f"Redis error: {_first_line(exc)}", EXIT_FATAL
    if isinstance(exc, ClonequeueError):  # StoreError and ProducerError among them
        return str(exc), EXIT_FATAL
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
