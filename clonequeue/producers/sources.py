"""Where rows come from: a JSONL, CSV (optionally gzipped) or Parquet file, stdin, or an iterable.

Gzip is recognised by its magic bytes, not by the name: ``jobs.jsonl`` that is
gzipped and ``gzip -c jobs.jsonl | clonequeue submit -`` are read like
``jobs.jsonl.gz`` (and a ``.gz`` that is not compressed is read as it is).

A source is opened once per pass. Files can be read twice (validate and estimate,
then enqueue); stdin and iterables can be read once, so when a second pass is
needed they are first spooled to a temporary file. Nothing holds more than one
row (or one CSV job, or one Parquet record batch) in memory. Parquet is read from
files only: its reader starts at the footer, at the end.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol, cast

from clonequeue.errors import InputError
from clonequeue.producers.csv_reading import read_csv
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.producers.reading import bounded_lines, read_jsonl
from clonequeue.producers.rows import Row, row_from

STDIN_LABEL = "<stdin>"
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
GZIP_MAGIC = b"\x1f\x8b"


class InputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


EXTENSIONS = {
    ".jsonl": InputFormat.JSONL,
    ".ndjson": InputFormat.JSONL,
    ".csv": InputFormat.CSV,
    ".parquet": InputFormat.PARQUET,
    ".pq": InputFormat.PARQUET,
}


def detect_format(
    name: str, explicit: str | None = None, *, option: str = "--format"
) -> InputFormat:
    """The format named by ``--format``, else by the file's extension (``.gz`` looked through).

    ``option`` is how the caller names the choice in a message: the CLI's ``--format``,
    or the Python API's ``format=`` (which has no ``--format``).
    """
    if explicit is not None:
        try:
            return InputFormat(explicit.lower())
        except ValueError:
            raise InputError(f"--format {explicit!r}: use jsonl, csv or parquet") from None
    stem = name.removesuffix(".gz")
    suffix = os.path.splitext(stem)[1].lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise InputError(
        f"cannot tell the format of {name} from its extension (.jsonl, .ndjson, .csv or "
        f".parquet); pass {format_choices(option)}"
    )


def format_choices(option: str) -> str:
    """``--format jsonl, --format csv or --format parquet``; ``format='jsonl', …`` in Python."""
    cli = option.startswith("-")
    named = [f"{option} {f.value}" if cli else f"{option}{f.value!r}" for f in InputFormat]
    return ", ".join(named[:-1]) + " or " + named[-1]


@dataclass
class RowStream:
    """Rows of one pass, with how far into the input they are (for progress)."""

    rows: Iterator[Row]
    position: Callable[[], int | None] = lambda: None
    size: int | None = None


class RowSource(Protocol):
    label: str

    @property
    def rereadable(self) -> bool: ...

    def open(self) -> Any:
        """A context manager giving a :class:`RowStream`."""

    def spool(self, directory: Path) -> RowSource:
        """A source that can be read again (itself, if it can)."""


@dataclass
class InputFile:
    """A file of rows, or stdin (``path is None``)."""

    path: Path | None
    format: InputFormat
    label: str = ""
    stdin: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.label = self.label or (str(self.path) if self.path else STDIN_LABEL)

    @classmethod
    def from_arg(
        cls, arg: str, explicit_format: str | None = None, *, format_option: str = "--format"
    ) -> InputFile:
        """``-`` is stdin (its format sniffed unless given); anything else a path.

        ``format_option`` names the format choice in messages (``format=`` in Python).
        """
        if arg == "-":
            stream = gunzipped(sys.stdin.buffer)
            try:
                fmt = detect_format("", explicit_format) if explicit_format else _sniff(stream)
            except _READ_ERRORS as exc:
                raise UnreadableInputError(
                    f"cannot read {STDIN_LABEL}: {exc}; nothing was read"
                ) from None
            if fmt is InputFormat.PARQUET:
                raise UnreadableInputError(
                    f"cannot read Parquet from {STDIN_LABEL}: a Parquet reader starts at the "
                    "file's end (its footer); pass the file's path instead of -"
                )
            return cls(None, fmt, stdin=stream)
        path = Path(arg)
        # the path first: a mistyped name was told its extension was unknown (QA pass)
        if not path.is_file():
            problem = "no such file" if not path.exists() else "not a regular file"
            raise UnreadableInputError(f"cannot read {arg}: {problem}; check the path")
        return cls(path, detect_format(path.name, explicit_format, option=format_option))

    @property
    def rereadable(self) -> bool:
        return self.path is not None

    @contextmanager
    def open(self) -> Iterator[RowStream]:
        if self.format is InputFormat.PARQUET and self.path is not None:
            with self._parquet_rows() as stream:
                yield stream
            return
        if self.path is None:
            assert self.stdin is not None
            with self._rows_of(self.stdin) as rows:
                yield RowStream(rows)
            return
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise UnreadableInputError(
                f"cannot read {self.label}: {exc.strerror or exc}; check the path and permissions"
            ) from None
        with raw, self._rows_of(raw) as rows:
            yield RowStream(rows, raw.tell, os.fstat(raw.fileno()).st_size)

    @contextmanager
    def _parquet_rows(self) -> Iterator[RowStream]:
        from clonequeue.producers.parquet_reading import ParquetRows

        assert self.path is not None
        parquet = ParquetRows(self.path, self.label)
        try:
            yield RowStream(parquet.rows(), lambda: parquet.position, parquet.size)
        finally:
            parquet.close()

    @contextmanager
    def _rows_of(self, raw: IO[bytes]) -> Iterator[Iterator[Row]]:
        # stdin was looked through in from_arg (its format is sniffed from the content)
        binary = gunzipped(raw) if self.path is not None else raw
        if self.format is InputFormat.JSONL:
            yield self._guarded(read_jsonl(bounded_lines(binary)))
            return
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield self._guarded(read_csv(text))
        finally:
            text.detach()  # closing the wrapper would close stdin

    def spool(self, directory: Path) -> InputFile:
        """A re-readable copy: stdin is copied to a file in ``directory``; a file is itself."""
        if self.path is not None:
            return self
        assert self.stdin is not None
        target = directory / f"stdin.{self.format.value}"
        try:
            with target.open("wb") as out:
                shutil.copyfileobj(self.stdin, out, 1 << 20)
        except OSError as exc:
            raise UnreadableInputError(f"cannot spool stdin to {directory}: {exc}") from None
        return InputFile(target, self.format, label=STDIN_LABEL)

    def _guarded(self, rows: Iterator[Row]) -> Iterator[Row]:
        line = 0
        try:
            for row in rows:
                line = row.line
                yield row
        except _READ_ERRORS as exc:
            raise UnreadableInputError(
                f"reading {self.label} failed after line {line}: {exc}; nothing after it was read"
            ) from None


def gunzipped(raw: IO[bytes]) -> IO[bytes]:
    """``raw`` itself, or its decompressed content when it starts with gzip's magic bytes.

    The decompressing wrapper leaves ``raw`` open (closing it is the caller's job).
    """
    peek = getattr(raw, "peek", None)
    head = peek(len(GZIP_MAGIC)) if peek is not None else b""
    if head[: len(GZIP_MAGIC)] != GZIP_MAGIC:
        return raw
    return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))


def _sniff(stream: IO[bytes]) -> InputFormat:
    """JSONL when the first non-blank byte of stdin is '{', Parquet's magic, else CSV."""
    peek = getattr(stream, "peek", None)
    head = peek(4096) if peek is not None else b""
    if head.startswith(b"PAR1"):
        return InputFormat.PARQUET
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return InputFormat.CSV if head and not head.startswith(b"{") else InputFormat.JSONL


class IterableSource:
    """Rows a pipeline hands over in Python (dicts, JobSpecs or Rows); read once."""

    def __init__(self, rows: Iterable[Any], label: str = "rows") -> None:
        self._rows = rows
        self.label = label
        self._used = False

    @property
    def rereadable(self) -> bool:
        return False

    @contextmanager
    def open(self) -> Iterator[RowStream]:
        if self._used:
            raise RuntimeError("an iterable of rows can be read once; spool it first")
        self._used = True
        yield RowStream(row_from(value, line) for line, value in enumerate(self._rows, start=1))

    def spool(self, directory: Path) -> PickleSpool:
        """Copy the rows to a file, so that they can be read twice."""
        spool = PickleSpool(directory / "rows.pickle", self.label)
        with self.open() as stream, spool.path.open("wb") as out:
            for row in stream.rows:
                out.write(_pickled(row))
        return spool


def _pickled(row: Row) -> bytes:
    try:
        return pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any object a pipeline hands in may refuse pickling
        unpicklable = Row(
            row.line, error="a row must hold only JSON-like values (dict, list, str…)"
        )
        return pickle.dumps(unpicklable, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass
class PickleSpool:
    """Rows spooled by :meth:`IterableSource.spool`: our own file, read back in order."""

    path: Path
    label: str

    @property
    def rereadable(self) -> bool:
        return True

    @contextmanager
    def open(self) -> Iterator[RowStream]:
        with self.path.open("rb") as raw:

            def rows() -> Iterator[Row]:
                while True:
                    try:
                        # one unpickler per row: a shared one keeps every row in its memo
                        yield pickle.load(raw)
                    except EOFError:
                        return

            yield RowStream(rows())

    def spool(self, directory: Path) -> PickleSpool:
        return self


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    """Where spools and the duplicate index live for one submission."""
    return tempfile.TemporaryDirectory(prefix="clonequeue-submit-")
