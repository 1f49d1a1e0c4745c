"""The Python API for pipelines: submit rows, follow the batch, read results back.

``clonequeue.submit`` behaves like ``clonequeue submit``: every row is checked,
bad rows are reported (``on_error``, an errors file) and never stop the good ones,
custom_ids that exist already are not sent again, and ``max_chars`` refuses a
batch before anything is sent.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clonequeue.arguments import (
    FUNCTION,
    NONE,
    argument_error,
    check_arg,
    check_value,
    value_error,
)
from clonequeue.config import Settings
from clonequeue.errors import InputError
from clonequeue.jobspec import JobSpec
from clonequeue.producers.enqueue import check_batch_id
from clonequeue.producers.errors import (
    EstimateTooHighError,
    NothingSubmittedError,
    RejectedRowsWarning,
    UnreadableInputError,
)
from clonequeue.producers.frames import FrameSource, frame_kind
from clonequeue.producers.rows import Row, RowError
from clonequeue.producers.sources import InputFile, InputFormat, IterableSource, RowSource
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
# The CLI's --format, as a keyword: for a file whose name does not tell (.txt, .json, .gz).
FormatName = Literal["jsonl", "csv", "parquet"]
FORMATS = tuple(f.value for f in InputFormat)
FORMAT_EXPECTED = "'jsonl', 'csv', 'parquet' or None"
FORMAT_OPTION = "format="  # how messages name the choice (the CLI's say --format)
MAX_CHARS_EXPECTED = "a number of characters (int), 1 or more, or None"
SHOWN_STR_CHARS = 100  # of a str given as rows, in the message
# A str given as rows that names no file is a missing file when it looks like a path
# (a separator, or a name ending in an extension such as .jsonl, .tsv, .gz): the
# caller meant one. Anything else (a custom_id, JSON text, a URL) was never a path.
PATH_END = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")


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
    format: FormatName | None = None,
) -> Batch:
    """Validate and submit job rows; returns the batch id, as a :class:`~clonequeue.Batch`.

    A ``Batch`` is a ``str`` (the id) with ways to follow the batch: ``status()``,
    ``wait()``, ``results()``, ``errors()``. Two outcomes return a ``Batch`` that does
    not exist, and its methods raise :class:`~clonequeue.BatchNotFoundError` saying
    why: a dry run ("a dry run creates no batch"), and rows all submitted before in
    several batches (it names them, with their row counts: follow those). Rows all
    submitted before in one batch return that batch. ``batch.submission`` has the
    counts either way.

    ``rows`` is an iterable of dicts in the JSONL shape (or :class:`JobSpec`), read
    once and never held whole (an iterator that yields nothing, e.g. a generator
    ``estimate()`` read already, raises ``NothingSubmittedError`` saying so: pass a
    list, or a fresh generator); a pandas or Polars DataFrame (the CSV columns, with
    ``audios`` a list column of dicts), read a slice at a time; or the path (``str``
    or ``pathlib.Path``) of a JSONL, CSV or Parquet file. The format comes from the
    name (``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``, ``.pq``, ``.gz`` looked
    through); ``format="jsonl"``, ``"csv"`` or ``"parquet"`` names it for any other
    name (as the CLI's ``--format``). A path that names no file raises
    :class:`~clonequeue.producers.errors.UnreadableInputError`; so does a ``str``
    that looks like one (it has a path separator or ends in an extension, e.g.
    ``jobs.jsonl``, or ``format`` is given). Any other ``str`` that names no file
    (a custom_id, JSON text, a URL) is a ``TypeError``: it was never rows.

    Rejected rows never stop the good ones, and are never silent: they are in
    ``batch.rejected`` (line, custom_id, field, rule), a :class:`RejectedRowsWarning`
    names them, ``on_error`` gets each one and ``errors`` (a path) gets them all.
    ``strict=True`` raises :class:`~clonequeue.producers.errors.RowsRejectedError`
    at the first pass instead, before anything is sent. When no row at all is
    accepted (an empty input, or every row bad) nothing is sent and
    :class:`~clonequeue.producers.errors.NothingSubmittedError` is raised.
    ``batch.submission`` has the counts and the estimate. ``max_chars`` (1 or more)
    raises :class:`~clonequeue.producers.errors.EstimateTooHighError` before anything is
    sent when the new jobs would bill more characters. ``dry_run`` sends nothing.
    ``webhook`` (a URL) gets this batch's signed events; ``artifacts`` (``file:///dir``,
    ``s3://bucket/prefix``) gets a copy of every finished file (README, "Using it").
    """
    _check_submit_args(locals())  # first: locals() is the arguments only
    from clonequeue.batch import Batch
    from clonequeue.outputs.operate import check_targets

    check_targets(webhook, artifacts)

    source = row_source(rows, format=format)
    services = services or _services(settings)
    try:
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
    except EstimateTooHighError as exc:
        raise _over_max_chars(exc) from None
    if report.accepted == 0 and not dry_run:
        exists = services.batches.info(report.batch_id) is not None
        if not report.rows and isinstance(rows, Iterator):
            raise _read_already(rows, report.batch_id, exists=exists)
        nothing = nothing_submitted(report, batch_exists=exists)
        if nothing is not None:
            raise nothing
    if report.rejected:
        where = f" (all in {report.errors_path})" if report.errors_path else ""
        outcome = (
            "a dry run submits nothing; these rows would be rejected and the others "
            "accepted: see batch.rejected"
            if dry_run
            else "they were not submitted, the other rows were: see batch.rejected"
        )
        warnings.warn(
            f"{describe_rejected(report)}{where}; {outcome}",
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
        ("format", (str, NONE), FORMAT_EXPECTED),
    ):
        check_arg("submit", name, args[name], accepted, expected)
    max_chars = args["max_chars"]
    check_value(
        "submit", "max_chars", max_chars, max_chars is None or max_chars >= 1, MAX_CHARS_EXPECTED
    )
    _check_format("submit", args["format"])
    batch = args["batch"]
    if batch is not None:
        try:
            check_batch_id(batch)
        except ValueError as exc:  # the CLI's words name --batch; these, the argument
            raise InputError(f"submit(batch={batch!r}): {exc}") from None


def _check_format(call: str, format: str | None) -> None:
    check_arg(call, "format", format, (str, NONE), FORMAT_EXPECTED)
    check_value(call, "format", format, format is None or format in FORMATS, FORMAT_EXPECTED)


def _over_max_chars(exc: EstimateTooHighError) -> EstimateTooHighError:
    """The same refusal, naming the argument (``max_chars=100``), not the CLI's option."""
    limit = exc.limit_chars
    message = str(exc).replace(f"--max-chars {limit:,}", f"max_chars={limit}")
    return EstimateTooHighError(message, estimate_chars=exc.estimate_chars, limit_chars=limit)


def _read_already(
    rows: Iterator[Any], batch_id: str, *, exists: bool = False
) -> NothingSubmittedError:
    """An iterator that yielded nothing is most often one read before (by ``estimate()``)."""
    batch = "was left as it was" if exists else "was not created"
    return NothingSubmittedError(
        f"the input holds no job: rows is a {type(rows).__name__} that yielded nothing, and "
        "an iterator can be read once, so it may have been consumed already (e.g. by "
        "estimate()); pass a list, or a fresh generator from its function; nothing was "
        f"submitted and batch {batch_id} {batch}"
    )


def row_source(rows: Rows, call: str = "submit", *, format: str | None = None) -> RowSource:
    """Where the rows come from: a file named by a path, a DataFrame, else an iterable.

    ``call`` is the public function that was given ``rows``, for the message of a
    ``TypeError``; ``format`` (checked by the caller) is a file's format, for a path only.
    """
    if isinstance(rows, str | os.PathLike):
        return _file_source(rows, format)
    source: RowSource
    if frame_kind(rows) is not None:  # before Iterable: a pandas frame iterates its columns
        source = FrameSource(rows)
    elif type(rows).__name__ == "LazyFrame" and type(rows).__module__.startswith("polars"):
        raise TypeError("rows is a Polars LazyFrame: pass frame.collect() (a DataFrame)")
    elif isinstance(rows, bytes | bytearray | Mapping) or not isinstance(rows, Iterable):
        hint = "; put one row in a list: [row]" if isinstance(rows, Mapping) else ""
        raise argument_error(call, "rows", rows, ROWS_EXPECTED, hint=hint)
    else:
        source = IterableSource(rows)
    if format is not None:
        expected = "None, as rows is not a file path (format= names a file's format)"
        raise value_error(call, "format", format, expected)
    return source


def _file_source(path: str | os.PathLike[str], format: str | None) -> InputFile:
    name = os.fspath(path)
    if not os.path.isfile(name):
        exists = os.path.exists(name)
        if isinstance(path, str) and not exists and format is None and not _looks_like_path(name):
            raise TypeError(
                f"rows is the str {_shown(name)}, which names no file; pass the path of a "
                f"JSONL, CSV or Parquet file that exists, a DataFrame, or an iterable of dicts"
                f"{_not_a_path_hint(name)}"
            )
        problem = "not a regular file" if exists else "no such file"
        raise UnreadableInputError(f"cannot read {name}: {problem}; check the path")
    return InputFile.from_arg(
        os.path.join(".", name) if name == "-" else name, format, format_option=FORMAT_OPTION
    )


def _looks_like_path(text: str) -> bool:
    """A separator, or a name with an extension; never JSON text or a URL."""
    if _not_a_path_hint(text):
        return False
    separators = [sep for sep in (os.sep, os.altsep, "/") if sep]
    return any(sep in text for sep in separators) or PATH_END.search(text) is not None


def _not_a_path_hint(text: str) -> str:
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return (
            " (it looks like JSON text, not a path: pass the rows as dicts, e.g. "
            "[json.loads(line) for line in text.splitlines() if line.strip()])"
        )
    if "://" in text:
        return " (it is a URL, and only local files are read: download it first)"
    return ""


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= SHOWN_STR_CHARS else shown[: SHOWN_STR_CHARS - 3] + "..."


def estimate(
    rows: Rows,
    *,
    on_error: Callable[[RowError], None] | None = None,
    format: FormatName | None = None,
) -> SubmitReport:
    """Check rows and estimate what they would bill, without Redis (nothing is sent).

    ``rows`` and ``format`` as for :func:`submit`; the report's ``errors`` holds the
    rejected rows. An iterator is read here, so pass :func:`submit` a fresh one (or a list).
    """
    check_arg("estimate", "on_error", on_error, (FUNCTION, NONE), "a function or None")
    _check_format("estimate", format)
    source = row_source(rows, "estimate", format=format)
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
    """The result record of every job of ``batch``, in submission order (streaming).

    ``settings`` name the Redis to read; given with a ``Batch``, they win over its own
    (they were ignored, without a word)."""
    from clonequeue.batch import Batch

    check_arg("results", "batch", batch, (str,), "a batch id (str or Batch)")
    check_arg("results", "settings", settings, (Settings, NONE), "a clonequeue.Settings or None")
    if isinstance(batch, Batch) and settings is None:
        return batch.results()
    return Batch(batch, services=_services(settings)).results()


def _services(settings: Settings | None) -> Services:
    return Services(settings) if settings is not None else Services()
