"""Turn failures into one line on stderr and an exit code; never a traceback.

Exit codes: 0 success, 1 a fatal problem (Redis unreachable, unreadable file, API
refused), 2 usage or configuration error, 3 some input rows rejected, 4 some jobs
failed. Tracebacks are never printed (they could carry a token in a local).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import redis.exceptions
import typer
import typer.core

from clonequeue.errors import ClonequeueError, ConfigError, InputError
from clonequeue.redis_refusals import error_line, refusal_line
from clonequeue.store.unreachable import unreachable_hint, unreachable_reason

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_REJECTED_ROWS = 3
EXIT_JOBS_FAILED = 4

# click's UsageError (an unknown option, a bad or missing value): typer 0.29 vendors
# click privately, so it is reached through typer's public BadParameter, its subclass.
USAGE_ERROR: Any = typer.BadParameter.__base__


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
            f"cannot reach Redis ({exc.__class__.__name__}: {unreachable_reason(exc)}); "
            f"{unreachable_hint(exc, sentinel=_uses_sentinel())}",
            EXIT_FATAL,
        )
    refused = refusal_line(exc)
    if refused is not None:
        return refused, EXIT_FATAL
    if isinstance(exc, redis.exceptions.RedisError):
        return f"Redis error: {error_line(exc)}", EXIT_FATAL
    if isinstance(exc, ClonequeueError):  # StoreError and ProducerError among them
        return str(exc), EXIT_FATAL
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    return None


class JsonCommand(typer.core.TyperCommand):
    """A command with ``--json``: given it, every failure is one JSON object on stdout too.

    A pipeline that asked for JSON parses stdout, and an empty stdout (or click's usage
    text) tells it nothing. So, with ``--json``:

    * a usage error prints :meth:`usage_failure`'s object, the same words as one
      ``error:`` line on stderr and click's exit code (2), instead of the usage text;
    * a runtime failure (Redis unreachable, no such batch, an unreadable file or
      setting: whatever :func:`explain` knows) prints :meth:`runtime_failure`'s object,
      then goes on to :func:`run_guarded` as without ``--json`` (its ``error:`` line,
      its exit code).

    Without ``--json``, nothing changes.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as exc:
            explained = explain(exc) if _json_asked(self, ctx) else None
            if explained is not None:
                from clonequeue.redaction import redact

                print(json.dumps(self.runtime_failure(exc, redact(explained[0]), ctx.params)))
            raise

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        given = list(args)  # parsing consumes the list
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except USAGE_ERROR as exc:
            options = given[: given.index("--")] if "--" in given else given
            if "--json" not in options:
                raise
            from clonequeue.redaction import redact

            command = " ".join([*_parent_names(parent), info_name or self.name or ""])
            message = redact(f"{exc.format_message().rstrip('.')}; see `{command} --help`")
            print(json.dumps(self.usage_failure(message, options)))
            fail(message, exc.exit_code)

    def usage_failure(self, message: str, options: list[str]) -> dict[str, object]:
        """The object printed for a usage error; a command whose --json promises more
        fields (``submit``: ``batch``, ``dry_run``) gives them here."""
        return {"error": message}

    def runtime_failure(
        self, exc: BaseException, message: str, params: dict[str, Any]
    ) -> dict[str, object]:
        """The object printed when the command fails while running; ``message`` is the
        ``error:`` line's (redacted). ``params`` are the parsed options, for a command
        whose object says more (``submit``: ``dry_run``, the --max-chars numbers)."""
        return {"error": message}


def _json_asked(command: Any, ctx: Any) -> bool:
    """Whether the command line gave ``--json`` (whatever the parameter's Python name)."""
    return any(
        "--json" in param.opts and bool(ctx.params.get(param.name)) for param in command.params
    )


def _parent_names(parent: Any) -> list[str]:
    """``clonequeue`` and the groups above a command (``clonequeue config``), however the
    program was started (``python -m clonequeue`` too)."""
    names: list[str] = []
    while parent is not None and parent.parent is not None:
        names.insert(0, parent.info_name or "")
        parent = parent.parent
    return ["clonequeue", *names]


def _uses_sentinel() -> bool:
    """Whether the store's URL is a ``sentinel://`` one (False if the settings fail)."""
    from clonequeue.cli import context
    from clonequeue.config.redis_urls import is_sentinel_url

    try:
        return is_sentinel_url(context.settings().redis_url)
    except ClonequeueError:
        return False
