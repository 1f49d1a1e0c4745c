"""Checked chunks of an input: made in this process, or in a helper process for big files.

Reading and validating a row, building its job document and checking it against
the duplicate index is half the per-row work; recording and publishing is the
other half. For a file of at least ``CHILD_MIN_BYTES`` the first half runs in a
child process whose chunks come back pickled through a pipe (its buffer bounds
what is in transit: memory stays flat), so the two halves use both cores.
Smaller files, stdin and Python iterables are checked here: a child's start-up
(~1 s) would cost more.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from clonequeue.config.settings import ENV_PREFIX
from clonequeue.jobspec import JobSpec
from clonequeue.producers import intake
from clonequeue.producers.dedupe import SeenIds
from clonequeue.producers.errors import ProducerError, UnreadableInputError
from clonequeue.producers.sources import InputFile, InputFormat, RowSource
from clonequeue.store.records import new_job_doc

CHILD_MIN_BYTES = 4 << 20

Piece = tuple[intake.Chunk, int | None, int | None]  # chunk, input position, input size


def build_doc(batch_id: str, spec: JobSpec) -> dict[str, Any]:
    """The job document of ``spec`` in ``batch_id`` (module level, so a child can use it)."""
    return new_job_doc(spec, batch_id, time.time())


def use_child(source: RowSource) -> bool:
    if not isinstance(source, InputFile) or source.path is None:
        return False
    try:
        return source.path.stat().st_size >= CHILD_MIN_BYTES
    except OSError:
        return False  # opening it reports the problem


@contextmanager
def checked_chunks(
    source: RowSource, seen_path: Path, *, batch_id: str | None, child: bool
) -> Iterator[Iterator[Piece]]:
    """Chunks of ``source``; with ``batch_id``, each valid row carries its job document."""
    if child and isinstance(source, InputFile):
        with _child_chunks(source, seen_path, batch_id) as pieces:
            yield pieces
        return
    seen = SeenIds(seen_path)
    builder = functools.partial(build_doc, batch_id) if batch_id is not None else None
    try:
        with source.open() as stream:
            yield (
                (chunk, stream.position(), stream.size)
                for chunk in intake.chunks(stream.rows, seen, build_doc=builder)
            )
    finally:
        seen.close()


@contextmanager
def _child_chunks(
    source: InputFile, seen_path: Path, batch_id: str | None
) -> Iterator[Iterator[Piece]]:
    """Run ``python -m clonequeue.producers._child``; read pickled chunks from its stdout.

    A plain subprocess, not multiprocessing: a spawned multiprocessing child would
    re-import the caller's ``__main__``, which a pipeline's script may not guard.
    """
    assert source.path is not None
    request = json.dumps(
        {
            "path": str(source.path),
            "format": source.format.value,
            "label": source.label,
            "seen": str(seen_path),
            "batch": batch_id,
        }
    )
    log_path = seen_path.with_suffix(".log")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clonequeue.producers._child", request],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=child_env(os.environ),
        )
    try:
        yield _receive(process, log_path)
    finally:
        if process.poll() is None:
            process.kill()
        assert process.stdout is not None
        process.stdout.close()
        process.wait()


# A variable whose name says it holds a secret (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, ...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE|AUTH", re.I)
# A value holding a URL with a password (``redis://:pw@host``, ``amqp://user:pw@host``).
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@]*:[^/\s@]*@")


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The helper's environment: ``environ`` without what it does not read and must not
    hold (every process of the user can read another's environment through ps or /proc
    for as long as it runs): no CLONEQUEUE_* variable (it reads no setting: the API
    token, the webhook secret, Flower's logins, a Redis URL with its password, their
    _FILE paths), no variable named for a secret and no URL with a password. The
    package's own root leads PYTHONPATH, so it imports this very clonequeue."""
    env = {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith(ENV_PREFIX)
        and not (_SECRET_NAME.search(name) and not name.upper().startswith("PYTHON"))
        and not _URL_WITH_PASSWORD.search(value)
    }
    package_root = str(Path(__file__).resolve().parents[2])  # where clonequeue/ is
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _receive(process: subprocess.Popen[bytes], log_path: Path) -> Iterator[Piece]:
    assert process.stdout is not None
    while True:
        try:
            # A new unpickler each time: one kept for the stream keeps every chunk's
            # objects alive in its memo (hundreds of MB over a million rows).
            message = pickle.load(process.stdout)
        except EOFError:
            code = process.wait()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise ProducerError(
                f"the validating helper process stopped (exit code {code}) before the end of "
                "the input: " + (" | ".join(tail) or "no message")
            ) from None
        kind = message[0]
        if kind == "done":
            return
        if kind == "chunk":
            yield message[1], message[2], message[3]
        elif kind == "unreadable":
            raise UnreadableInputError(message[1])
        else:
            raise ProducerError(f"the validating helper process failed: {message[1]}")


def child_main(request: dict[str, Any], out: IO[bytes]) -> None:
    """In the child: check every row and send the chunks; the parent handles Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source = InputFile(Path(request["path"]), InputFormat(request["format"]), request["label"])

    def send(message: tuple[Any, ...]) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        with checked_chunks(
            source, Path(request["seen"]), batch_id=request["batch"], child=False
        ) as chunks:
            for chunk, position, size in chunks:
                send(("chunk", chunk, position, size))
        send(("done",))
    except UnreadableInputError as exc:
        send(("unreadable", str(exc)))
    except BrokenPipeError:
        pass  # the parent stopped reading (it failed, or was interrupted)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        send(("crash", traceback.format_exc(limit=5).strip().replace("\n", " | ")))
