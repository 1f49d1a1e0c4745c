"""pandas and Polars DataFrames in (``clonequeue.submit(df)``) and out (``results_frame``).

In, a frame has the columnar layout of :mod:`clonequeue.producers.columns` (the
CSV columns, ``audios`` a list of dicts/structs) and is read a slice of
``SLICE_ROWS`` rows at a time, so only one slice is ever Python dicts; a frame can be
read twice (validate, then send) without a copy. Out, a frame has the Parquet
export's columns, built a slice at a time and joined once. pandas and Polars (the
``frames`` extra) are imported only when a frame of their kind is handed over or
asked for; a frame is recognised by its type's module, without importing either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from clonequeue.producers.columns import check_columns, row_of
from clonequeue.producers.export import AUDIO_COLUMNS, JOB_COLUMNS, job_row
from clonequeue.producers.optional import require
from clonequeue.producers.rows import Row
from clonequeue.producers.sources import RowStream

SLICE_ROWS = 2_000

FrameKind = Literal["pandas", "polars"]
FRAME_KINDS: tuple[FrameKind, ...] = ("pandas", "polars")

_INTS = {"error_code", "attempts", "retries"}
_FLOATS = {"created_at", "finished_at"}


def frame_kind(value: object) -> FrameKind | None:
    """``"pandas"`` or ``"polars"`` for a DataFrame of that library (or a subclass: a
    GeoDataFrame is a pandas one), else None."""
    for cls in type(value).__mro__:
        module = cls.__module__.split(".")[0]
        if cls.__name__ == "DataFrame" and module in FRAME_KINDS:
            return module
    return None


class FrameSource:
    """The rows of a pandas or Polars DataFrame; re-readable (the frame is not consumed)."""

    def __init__(self, frame: Any, label: str = "DataFrame") -> None:
        kind = frame_kind(frame)
        if kind is None:
            raise TypeError(f"not a pandas or Polars DataFrame: {type(frame).__name__}")
        require(kind, f"a {kind} DataFrame")
        self.kind: FrameKind = kind
        self.label = label
        self._frame = frame
        check_columns(list(frame.columns), label)

    @property
    def rereadable(self) -> bool:
        return True

    @contextmanager
    def open(self) -> Iterator[RowStream]:
        done = 0
        total = len(self._frame)

        def rows() -> Iterator[Row]:
            nonlocal done
            for records in self._slices():
                for record in records:
                    done += 1
                    yield row_of(record, done)

        yield RowStream(rows(), lambda: done, total)

    def spool(self, directory: Path) -> FrameSource:
        return self

    def _slices(self) -> Iterator[list[dict[str, Any]]]:
        frame = self._frame
        if self.kind == "polars":
            for piece in frame.iter_slices(n_rows=SLICE_ROWS):
                yield piece.to_dicts()
            return
        for start in range(0, len(frame), SLICE_ROWS):
            yield frame.iloc[start : start + SLICE_ROWS].to_dict("records")


def results_frame(records: Iterable[dict[str, Any]], kind: FrameKind = "pandas") -> Any:
    """A DataFrame of ``records``: one row per job, the Parquet export's columns."""
    if kind not in FRAME_KINDS:
        raise ValueError(f"kind={kind!r}: use 'pandas' or 'polars'")
    build = _polars_slice if kind == "polars" else _pandas_slice
    library = require(kind, f"results_frame(kind={kind!r})")
    pieces = []
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(job_row(record))
        if len(chunk) >= SLICE_ROWS:
            pieces.append(build(library, chunk))
            chunk = []
    if chunk or not pieces:
        pieces.append(build(library, chunk))
    if len(pieces) == 1:
        return pieces[0]
    if kind == "polars":
        return library.concat(pieces, rechunk=True)
    return library.concat(pieces, ignore_index=True)


def _polars_slice(pl: Any, rows: list[dict[str, Any]]) -> Any:
    def kind(name: str) -> Any:
        return pl.Int64 if name in _INTS else pl.Float64 if name in _FLOATS else pl.String

    audio = pl.Struct({name: kind(name) for name in AUDIO_COLUMNS})
    schema = {**{name: kind(name) for name in JOB_COLUMNS}, "audios": pl.List(audio)}
    return pl.DataFrame(rows, schema=schema)


def _pandas_slice(pd: Any, rows: list[dict[str, Any]]) -> Any:
    """The Parquet schema's types whatever the rows hold: pandas infers a column's type
    from its values, so a text column of nulls only (``error_msg`` of a batch with no
    failure) was ``object`` beside ``str`` ones. Text columns get the type pandas gives
    text (``str`` in pandas 3, ``object`` in 2), as ``pandas.read_parquet`` of the
    export does; ``audios`` stays ``object`` (a list of dicts per job)."""
    frame = pd.DataFrame.from_records(rows, columns=[*JOB_COLUMNS, "audios"])
    text = pd.Series(["text"]).dtype
    dtypes = {
        name: "Int64" if name in _INTS else "float64" if name in _FLOATS else text
        for name in JOB_COLUMNS
    }
    return frame.astype(dtypes)
