"""The Python API for pipelines: submit rows, follow the batch, read results back.

``clonequeue.submit`` behaves like ``clonequeue submit``: every row is checked,
bad rows are reported (``on_error``, an errors file) and never stop the good ones,
custom_ids that exist already are not sent again, and ``max_chars`` refuses a
batch before anything is sent.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clonequeue.arguments import FUNCTION, NONE, argument_error, check_arg
from clonequeue.config import Settings
from clonequeue.jobspec import JobSpec
from clonequeue.producers.errors import RejectedRowsWarning
from clonequeue.producers.frames import FrameSource, frame_kind
from clonequeue.producers.rows import Row, RowError
from clonequeue.producers.sources import InputFile, IterableSource, RowSource
from clonequeue.producers.submission import (
    Progress,
    Submission,
    SubmitReport,
    describe_rejected,
    nothing_submitted,
)
from clonequeue.services import Services

if TYPE_CHECKING:
    from clonequeue.batch import Batch


# A pandas or Polars DataFrame is accepted too (typed Any: neither library is required).
Rows = Iterable[JobSpec | dict[str, Any]] | str | os.PathLike[str] | Any
ROWS_EXPECTED = "an iterable of dicts (or JobSpecs), a DataFrame or a file path"


def submit(
    rows: Rows,
    batch: str | None = None,
    *,
    settings: Settings | None = None,
    services: Services | None = None,
    dry_run: bool = False,
    max_chars: int | None = None,
    strict: bool = False,
    errors: str | os.PathLike[str] | None = None,
    on_error: Callable[[RowError], None] | None = None,
    on_progress: Progress | None = None,
    webhook: str | None = None,
    artifacts: str | None = None,
) -> Batch:
    """Validate and submit job rows; returns the batch id, as a :class:`~clonequeue.Batch`.

    A ``Batch`` is a ``str`` (the id) with ways to follow the batch: ``status()``,
    ``wait()``, ``results()``, ``errors()``.

    ``rows`` is an iterable of dicts in the JSONL shape (or :class:`JobSpec`), read
    once and never held whole; a pandas or Polars DataFrame (the CSV columns, with
    ``audios`` a list column of dicts), read a slice at a time; or the path (``str``
    or ``pathlib.Path``) of a JSONL, CSV or Parquet file; a ``str`` that names no
    file is a ``TypeError``.

    Rejected rows never stop the good ones, and are never silent: they are in
    ``batch.rejected`` (line, custom_id, field, rule), a :class:`RejectedRowsWarning`
    names them, ``on_error`` gets each one and ``errors`` (a path) gets them all.
    ``strict=True`` raises :class:`~clonequeue.producers.errors.RowsRejectedError`
    at the first pass instead, before anything is sent. When no row at all is
    accepted (an empty input, or every row bad) nothing is sent and
    :class:`~clonequeue.producers.errors.NothingSubmittedError` is raised.
    ``batch.submission`` has the counts and the estimate. ``max_chars`` raises
    :class:`~clonequeue.producers.errors.EstimateTooHighError` before anything is sent
    when the new jobs would bill more characters. ``dry_run`` sends nothing.
    ``webhook`` (a URL) gets this batch's signed events; ``artifacts`` (``file:///dir``,
    ``s3://bucket/prefix``) gets a copy of every finished file (README, "Using it").
    """
    _check_submit_args(locals())  # first: locals() is the arguments only
    from clonequeue.batch import Batch
    from clonequeue.outputs.operate import check_targets

    check_targets(webhook, artifacts)

    source = row_source(rows)
    services = services or _services(settings)
    report = Submission(
        source,
        services=services,
        batch=batch,
        dry_run=dry_run,
        max_chars=max_chars,
        strict=strict,
        errors_path=Path(errors) if errors is not None else None,
        on_error=on_error,
        on_progress=on_progress,
        webhook=webhook,
        artifacts=artifacts,
    ).run()
    nothing = nothing_submitted(report)
    if nothing is not None and not dry_run:
        raise nothing
    if report.rejected:
        where = f" (all in {report.errors_path})" if report.errors_path else ""
        warnings.warn(
            f"{describe_rejected(report)}{where}; they were not submitted, the other rows "
            "were: see batch.rejected",
            RejectedRowsWarning,
            stacklevel=2,
        )
    holders = list(report.already_in)
    if not report.new and len(holders) == 1 and services.batches.info(report.batch_id) is None:
        # every row was submitted before, into one batch: that batch is where they are
        return Batch(holders[0], services=services, submission=report)
    return Batch(report.batch_id, services=services, submission=report)


def _check_submit_args(args: dict[str, Any]) -> None:
    """Every argument of :func:`submit` but ``rows`` (:func:`row_source` checks it)."""
    for name, accepted, expected in (
        ("batch", (str, NONE), "a batch name (str) or None"),
        ("settings", (Settings, NONE), "a clonequeue.Settings or None"),
        ("services", (Services, NONE), "a clonequeue.services.Services or None"),
        ("dry_run", (bool,), "True or False"),
        ("max_chars", (int, NONE), "a number of characters (int) or None"),
        ("strict", (bool,), "True or False"),
        ("errors", (str, os.PathLike, NONE), "a file path (str or pathlib.Path) or None"),
        ("on_error", (FUNCTION, NONE), "a function or None"),
        ("on_progress", (FUNCTION, NONE), "a function or None"),
        ("webhook", (str, NONE), "a URL (str) or None"),
        ("artifacts", (str, NONE), "a URL (str) or None"),
    ):
        check_arg("submit", name, args[name], accepted, expected)


def row_source(rows: Rows, call: str = "submit") -> RowSource:
    """Where the rows come from: a file named by a path, a DataFrame, else an iterable.

    ``call`` is the public function that was given ``rows``, for the message of a
    ``TypeError``.
    """
    if isinstance(rows, str | os.PathLike):
        return _file_source(rows)
    if frame_kind(rows) is not None:  # before Iterable: a pandas frame iterates its columns
        return FrameSource(rows)
    if type(rows).__name__ == "LazyFrame" and type(rows).__module__.startswith("polars"):
        raise TypeError("rows is a Polars LazyFrame: pass frame.collect() (a DataFrame)")
    if isinstance(rows, bytes | bytearray | Mapping) or not isinstance(rows, Iterable):
        hint = "; put one row in a list: [row]" if isinstance(rows, Mapping) else ""
        raise argument_error(call, "rows", rows, ROWS_EXPECTED, hint=hint)
    return IterableSource(rows)


def _file_source(path: str | os.PathLike[str]) -> InputFile:
    name = os.fspath(path)
    if isinstance(path, str) and not os.path.isfile(name):
        problem = "is not a regular file" if os.path.exists(name) else "names no file"
        raise TypeError(
            f"rows is the str {name!r}, which {problem}; pass the path of a JSONL, CSV or "
            "Parquet file that exists, a DataFrame, or an iterable of dicts"
        )
    return InputFile.from_arg(os.path.join(".", name) if name == "-" else name)


def estimate(
    rows: Rows,
    *,
    on_error: Callable[[RowError], None] | None = None,
) -> SubmitReport:
    """Check rows and estimate what they would bill, without Redis (nothing is sent).

    ``rows`` as for :func:`submit`; the report's ``errors`` holds the rejected rows.
    """
    check_arg("estimate", "on_error", on_error, (FUNCTION, NONE), "a function or None")
    return Submission(row_source(rows, "estimate"), services=None, on_error=on_error).run()


@dataclass
class SubmitResult:
    """The outcome of :func:`submit_specs`: every rejected row is kept in ``rejected``."""

    batch_id: str
    accepted: int = 0
    rejected: list[RowError] = field(default_factory=list)
    report: SubmitReport | None = None


def submit_specs(
    rows: Iterable[JobSpec | dict[str, Any] | Row],
    *,
    services: Services,
    batch: str | None = None,
    on_error: Callable[[RowError], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SubmitResult:
    """Submit rows with already-built services, keeping every rejected row (small inputs).

    ``on_progress`` gets the number of rows read so far.
    """
    rejected: list[RowError] = []

    def collect(error: RowError) -> None:
        rejected.append(error)
        if on_error is not None:
            on_error(error)

    def progress(report: SubmitReport, _position: int | None, _size: int | None) -> None:
        if on_progress is not None:
            on_progress(report.rows)

    report = Submission(
        IterableSource(rows),
        services=services,
        batch=batch,
        on_error=collect,
        on_progress=progress,
    ).run()
    return SubmitResult(report.batch_id, report.accepted, rejected, report)


def results(batch: str | Batch, *, settings: Settings | None = None) -> Iterator[dict[str, Any]]:
    """The result record of every job of ``batch``, in submission order (streaming)."""
    from clonequeue.batch import Batch

    check_arg("results", "batch", batch, (str,), "a batch id (str or Batch)")
    check_arg("results", "settings", settings, (Settings, NONE), "a clonequeue.Settings or None")
    if isinstance(batch, Batch):
        return batch.results()
    return Batch(batch, services=_services(settings)).results()


def _services(settings: Settings | None) -> Services:
    return Services(settings) if settings is not None else Services()
