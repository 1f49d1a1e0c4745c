"""Read job rows from Parquet, streaming: one record batch of one row group at a time.

The layout is :mod:`clonequeue.producers.columns` (the CSV columns, ``audios`` a list
of structs). pyarrow (the ``parquet`` extra) is imported only here, when a Parquet
file is read. Memory holds one batch of ``BATCH_ROWS`` rows as Python values, whatever
the size of the file or of its row groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clonequeue.producers.columns import check_columns, row_of
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.producers.optional import require
from clonequeue.producers.rows import Row

BATCH_ROWS = 2_000
PARQUET_MAGIC = b"PAR1"


class ParquetRows:
    """The rows of one Parquet file, with how far into it they are (compressed bytes)."""

    def __init__(self, path: Path, label: str) -> None:
        pq = require("pyarrow.parquet", "reading Parquet")
        self.label = label
        self.position = 0
        try:
            self._file: Any = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise UnreadableInputError(
                f"cannot read {label} as Parquet: {exc}; nothing was read"
            ) from None
        self.columns = check_columns(self._file.schema_arrow.names, label)
        meta = self._file.metadata
        self._groups = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
        self.size = sum(self._groups)

    def rows(self) -> Iterator[Row]:
        number = 0
        done = 0
        for group, group_bytes in enumerate(self._groups):
            try:
                for batch in self._file.iter_batches(
                    batch_size=BATCH_ROWS, row_groups=[group], use_threads=False
                ):
                    for record in batch.to_pylist():
                        number += 1
                        yield row_of(record, number, plain=True)
            except (OSError, ValueError) as exc:
                raise UnreadableInputError(
                    f"reading {self.label} failed after row {number}: {exc}; "
                    "nothing after it was read"
                ) from None
            done += group_bytes
            self.position = done

    def close(self) -> None:
        self._file.close()
