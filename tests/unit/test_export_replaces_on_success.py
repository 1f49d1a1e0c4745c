"""`results -o FILE` / `errors -o FILE`: a file is replaced only by a whole export (QA: one
that failed halfway, the batch purged meanwhile, left a shorter file that read as whole
in place of the good one it overwrote)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clonequeue.cli import export_cmd


class Gone(Exception):
    pass


def records_then_gone(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {"custom_id": f"j{i}", "batch": "b", "status": "completed", "audios": []}
    raise Gone("no batch 'b': only 2 of its 10 job records could be read")


@pytest.mark.parametrize("format_name", ["jsonl", "csv", "parquet"])
def test_an_export_that_fails_halfway_leaves_the_earlier_file_as_it_was(
    tmp_path: Path, format_name: str
) -> None:
    if format_name == "parquet":
        pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    output = tmp_path / f"results.{format_name}"
    output.write_bytes(b"the good export from before")
    with pytest.raises(Gone):
        export_cmd._write(records_then_gone(2), format_name, output)
    assert output.read_bytes() == b"the good export from before"
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # no .part left
    assert export_cmd._write(iter([]), format_name, output) == 0  # a whole one replaces it
    assert output.read_bytes() != b"the good export from before"
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]
