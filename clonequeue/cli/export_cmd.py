"""``results`` and ``errors``: a batch's records out as JSONL or CSV, streamed from Redis."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from clonequeue.batch import Batch
from clonequeue.cli import context
from clonequeue.cli.errors import fail
from clonequeue.producers.export import output_format, write_records
from clonequeue.services import Services

FORMAT_OPT = typer.Option(
    "jsonl", "--format", "-f", help="jsonl (one record per job) or csv (one row per audio)."
)
OUTPUT_OPT = typer.Option(None, "--output", "-o", help="Write here, not to stdout.")


def results(
    batch: str = typer.Argument(..., help="Batch id."),
    output_format_name: str = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Write one result record per job, in submission order (failed jobs with their error)."""
    handle = Batch(batch, services=Services(context.settings()))
    handle.status()
    _write(handle.results(), output_format_name, output)


def errors(
    batch: str = typer.Argument(..., help="Batch id."),
    output_format_name: str = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Write the records of jobs that failed, are unknown or were cancelled, with why."""
    handle = Batch(batch, services=Services(context.settings()))
    handle.status()
    count = _write(handle.errors(), output_format_name, output)
    typer.echo(f"{count:,} jobs did not complete", err=True)


def _write(records: Iterable[dict[str, Any]], format_name: str, output: Path | None) -> int:
    fmt = output_format(format_name)
    if output is None:
        return write_records(records, sys.stdout, fmt)
    try:
        sink = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    with sink:
        return write_records(records, sink, fmt)
