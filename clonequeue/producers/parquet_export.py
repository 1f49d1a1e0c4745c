"""Result records out as Parquet, one row group at a time (bounded memory).

One row per job: the CSV export's job columns, and its audio columns as ``audios``,
a list of structs (``custom_id, status, audioUrl, subtitleFile, error_kind,
error_code, error_msg``). The schema is fixed, so every file of every batch reads
the same, empty or not. pyarrow (the ``parquet`` extra) is imported only here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from clonequeue.producers.export import AUDIO_COLUMNS, JOB_COLUMNS, job_row
from clonequeue.producers.optional import require

ROW_GROUP_ROWS = 10_000  # jobs per row group: what is held in memory while writing

_INTS = {"error_code", "attempts", "retries"}
_FLOATS = {"created_at", "finished_at"}


def result_schema() -> Any:
    """The pyarrow schema of a results file."""
    pa = require("pyarrow", "Parquet output")

    def kind(name: str) -> Any:
        return pa.int64() if name in _INTS else pa.float64() if name in _FLOATS else pa.string()

    audio = pa.struct([(name, kind(name)) for name in AUDIO_COLUMNS])
    return pa.schema([*((name, kind(name)) for name in JOB_COLUMNS), ("audios", pa.list_(audio))])


def row_groups(records: Iterable[dict[str, Any]], size: int = ROW_GROUP_ROWS) -> Iterator[Any]:
    """pyarrow RecordBatches of at most ``size`` jobs each."""
    pa = require("pyarrow", "Parquet output")
    schema = result_schema()
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(job_row(record))
        if len(chunk) >= size:
            yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            chunk = []
    if chunk:
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


def write_parquet(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write every record to ``path``; returns how many jobs were written."""
    pq = require("pyarrow.parquet", "Parquet output")
    count = 0
    with pq.ParquetWriter(path, result_schema(), compression="zstd") as writer:
        for batch in row_groups(records):
            writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
            count += batch.num_rows
    return count
