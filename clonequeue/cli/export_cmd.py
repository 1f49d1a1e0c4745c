"""``results`` and ``errors``: a batch's records out as JSONL, CSV or Parquet, streamed."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from clonequeue.batch import Batch
from clonequeue.cli import context
from clonequeue.cli.errors import EXIT_OK, EXIT_USAGE, fail
from clonequeue.producers.export import OutputFormat, output_format, write_records
from clonequeue.services import Services
from clonequeue.wording import plural

FORMAT_OPT = typer.Option(
    "jsonl",
    "--format",
    "-f",
    help="jsonl (one record per job), csv (one row per audio; cells starting with = + - @ "
    "tab or CR get a leading ' so a spreadsheet never runs them) or parquet (one row per "
    "job, `audios` a list of structs; needs -o and the parquet extra: pyarrow).",
)
OUTPUT_OPT = typer.Option(
    None,
    "--output",
    "-o",
    help="Write here, not to stdout (required for parquet); replaced only by a whole "
    "export (an export that fails leaves the file as it was).",
)


def results(
    batch: str = typer.Argument(..., help="Batch id."),
    output_format_name: str = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Write one result record per job, in submission order (failed jobs with their error).

    Streamed from Redis: memory does not grow with the batch. CSV mirrors the CSV
    input (one row per production audio) and is safe to open in a spreadsheet; Parquet
    has the CSV's job columns and `audios` as a list column, 10,000 jobs per row group.
    """
    handle = Batch(batch, services=Services(context.settings()))
    handle.status()
    _write(handle.results(), output_format_name, output)


def errors(
    batch: str = typer.Argument(..., help="Batch id."),
    output_format_name: str = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Write the records of jobs that failed, are unknown or were cancelled, with why.

    The same formats and columns as `results`; the count goes to stderr.
    """
    handle = Batch(batch, services=Services(context.settings()))
    info = handle.status()
    count = _write(handle.errors(), output_format_name, output)
    # not "did not complete" alone: with the batch still running it read as all done
    running = f"; {info.open_jobs:,} not finished yet" if info.open_jobs else ""
    typer.echo(f"{plural(count, 'job')} failed, unknown or cancelled{running}", err=True)


def _write(records: Iterable[dict[str, Any]], format_name: str, output: Path | None) -> int:
    fmt = output_format(format_name)
    if fmt is OutputFormat.PARQUET:
        return _write_parquet(records, output)
    if output is None:
        try:
            count = write_records(records, sys.stdout, fmt)
            sys.stdout.flush()
        except BrokenPipeError:
            _reader_gone()
        return count
    with _replaced_on_success(output) as path:
        try:
            sink = path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
        with sink:
            return write_records(records, sink, fmt)


@contextmanager
def _replaced_on_success(output: Path) -> Iterator[Path]:
    """A file beside ``output`` to write, moved onto it only when the writing ended well.

    An export that failed halfway (the batch purged meanwhile, a Redis outage) left a
    shorter file that read as whole, in place of the good one it overwrote (QA pass).
    A path that is no regular file (``/dev/stdout``, a pipe) is written as it is.
    """
    if output.exists() and not output.is_file():
        yield output
        return
    part = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        yield part
        if part.exists():
            os.replace(part, output)
    finally:
        with contextlib.suppress(OSError):
            part.unlink()


def _reader_gone() -> NoReturn:
    """The reader closed stdout (``| head``): it has what it wanted, so exit 0, quietly.

    Python's advice (signal module docs, "Note on SIGPIPE"): stdout goes to /dev/null
    first, else flushing it once more at exit raises again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise typer.Exit(EXIT_OK)


def _write_parquet(records: Iterable[dict[str, Any]], output: Path | None) -> int:
    from clonequeue.producers.parquet_export import write_parquet

    if output is None:
        fail("--format parquet writes a file: add -o FILE.parquet", EXIT_USAGE)
    try:
        with _replaced_on_success(output) as path:
            return write_parquet(records, path)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
