"""The Python API for pipelines: submit rows, follow the batch, read results back.

``clonequeue.submit`` behaves like ``clonequeue submit``: every row is checked,
bad rows are reported (``on_error``, an errors file) and never stop the good ones,
custom_ids that exist already are not sent again, and ``max_chars`` refuses a
batch before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clonequeue.config import Settings
from clonequeue.jobspec import JobSpec
from clonequeue.producers.rows import Row, RowError
from clonequeue.producers.sources import InputFile, IterableSource, RowSource
from clonequeue.producers.submission import Progress, Submission, SubmitReport
from clonequeue.services import Services

if TYPE_CHECKING:
    from clonequeue.batch import Batch


def submit(
    rows: Iterable[JobSpec | dict[str, Any]] | os.PathLike[str],
    batch: str | None = None,
    *,
    settings: Settings | None = None,
    services: Services | None = None,
    dry_run: bool = False,
    max_chars: int | None = None,
    errors: str | os.PathLike[str] | None = None,
    on_error: Callable[[RowError], None] | None = None,
    on_progress: Progress | None = None,
) -> Batch:
    """Validate and submit job rows; returns the batch id, as a :class:`~clonequeue.Batch`.

    A ``Batch`` is a ``str`` (the id) with ways to follow the batch: ``status()``,
    ``wait()``, ``results()``, ``errors()``.

    ``rows`` is an iterable of dicts in the JSONL shape (or :class:`JobSpec`), read
    once and never held whole, or the path of a JSONL/CSV file. Rejected rows go to
    ``on_error`` and, with ``errors``, to that file; ``batch.submission`` has the
    counts and the estimate. ``max_chars`` raises
    :class:`~clonequeue.producers.errors.EstimateTooHighError` before anything is sent
    when the new jobs would bill more characters. ``dry_run`` sends nothing.
    """
    from clonequeue.batch import Batch

    services = services or _services(settings)
    source: RowSource
    if isinstance(rows, os.PathLike):
        source = InputFile.from_arg(os.fspath(rows))
    else:
        source = IterableSource(rows)
    report = Submission(
        source,
        services=services,
        batch=batch,
        dry_run=dry_run,
        max_chars=max_chars,
        errors_path=Path(errors) if errors is not None else None,
        on_error=on_error,
        on_progress=on_progress,
    ).run()
    return Batch(report.batch_id, services=services, submission=report)


def estimate(
    rows: Iterable[JobSpec | dict[str, Any]] | os.PathLike[str],
    *,
    on_error: Callable[[RowError], None] | None = None,
) -> SubmitReport:
    """Check rows and estimate what they would bill, without Redis (nothing is sent)."""
    source: RowSource
    if isinstance(rows, os.PathLike):
        source = InputFile.from_arg(os.fspath(rows))
    else:
        source = IterableSource(rows)
    return Submission(source, services=None, on_error=on_error).run()


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

    if isinstance(batch, Batch):
        return batch.results()
    return Batch(batch, services=_services(settings)).results()


def _services(settings: Settings | None) -> Services:
    return Services(settings) if settings is not None else Services()
