"""Streaming: memory stays flat however big the input (each run in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

pytestmark = pytest.mark.slow

# Peak RSS is VmHWM, this process's own: ru_maxrss is carried over from the parent
# across fork and exec, so a child of a big pytest worker would report the worker's
# peak and never grow.
SCRIPT = """
import json, sys
from pathlib import Path
from typing import Any


def peak_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


from clonequeue.config import load_settings
from clonequeue.producers.sources import InputFile, IterableSource
from clonequeue.producers.submission import Submission
from clonequeue.services import Services

path, redis_url, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[4]
services = None
if redis_url != "-":
    services = Services(load_settings(env_file=None, redis_url=redis_url, namespace=sys.argv[3]))
    services.app.connection_for_write().ensure_connection()
    services.batches
warm = {"custom_id": "warm-up", "clone": {"fileUrl": "https://v.example.com/w.mp3"}}
Submission(IterableSource([warm]), services=services, batch="warm").run()  # every import
before = peak_kb()
if mode == "generator":  # the Python API with a character limit: rows are spooled first
    def rows():
        with path.open() as lines:
            for line in lines:
                yield json.loads(line)
    source = IterableSource(rows())
else:
    source = InputFile.from_arg(str(path))
report = Submission(
    source, services=services, batch="mem", parallel=False, max_chars=10**9
).run()
after = peak_kb()
print(json.dumps({"rows": report.rows, "growth_kb": after - before, "peak_kb": after}))
"""


def write_rows(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            cid = f"m-{i:07d}"
            out.write(
                json.dumps(
                    {
                        "custom_id": cid,
                        "clone": {"fileUrl": f"https://v.example.com/{cid}.mp3"},
                        "audios": [{"contentText": f"Line of {cid} <#0.3#> to speak."}],
                    }
                )
                + "\n"
            )
    return path


def write_parquet_rows(path: Path, count: int) -> Path:
    """The same jobs as Parquet: row groups of 10,000 rows and 32 KB pages, so that the
    reader's buffers reach their full size already in the small file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, _parquet_schema(pa), data_page_size=32 << 10) as out:
        for start in range(0, count, 10_000):
            cids = [f"m-{i:07d}" for i in range(start, min(start + 10_000, count))]
            rows = [
                {
                    "custom_id": cid,
                    "fileUrl": f"https://v.example.com/{cid}.mp3",
                    "audios": [{"contentText": f"Line of {cid} <#0.3#> to speak."}],
                }
                for cid in cids
            ]
            out.write_table(pa.Table.from_pylist(rows, schema=_parquet_schema(pa)))
    return path


def _parquet_schema(pa: Any) -> Any:
    audio = pa.struct([("contentText", pa.string())])
    return pa.schema(
        [("custom_id", pa.string()), ("fileUrl", pa.string()), ("audios", pa.list_(audio))]
    )


def peak_growth_kb(
    tmp_path: Path,
    rows: int,
    redis_url: str = "-",
    ns: str = "-",
    mode: str = "file",
    fmt: str = "jsonl",
) -> int:
    writer = write_parquet_rows if fmt == "parquet" else write_rows
    path = writer(tmp_path / f"rows-{rows}.{fmt}", rows)
    script = tmp_path / "measure.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    out = subprocess.run(
        [sys.executable, str(script), str(path), redis_url, ns, mode],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] == rows
    growth: int = result["growth_kb"]
    print(f"{rows} rows: peak RSS grew {growth} KB to {result['peak_kb']} KB")
    return growth


# Growth beyond the small run's, allowed: the runs differ by 1-4 MB (2026-12-07), while a
# validated row kept in a list takes ~1.8 KB (tracemalloc), so 10k kept rows are ~18 MB.
ALLOWED_KB = 10 * 1024


def test_validating_50k_rows_holds_no_more_than_2k_rows_do(tmp_path: Path) -> None:
    small = peak_growth_kb(tmp_path, 2_000)
    large = peak_growth_kb(tmp_path, 50_000)
    # A list of 50k validated rows would take ~90 MB; streaming stays flat.
    assert large - small < ALLOWED_KB, (small, large)


def test_validating_40k_parquet_rows_holds_no_more_than_3k_rows_do(tmp_path: Path) -> None:
    small = peak_growth_kb(tmp_path, 3_000, fmt="parquet")
    large = peak_growth_kb(tmp_path, 40_000, fmt="parquet")
    # Read whole (read_table, to_pylist) 40k rows take ~65 MB; record batches stay flat.
    assert large - small < 20 * 1024, (small, large)


@pytest.mark.parametrize("mode", ["file", "generator"])
def test_submitting_10k_rows_into_redis_holds_no_more_than_1k_rows_do(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, mode: str
) -> None:
    """Both passes of a --max-chars run; a generator's rows are spooled to disk between."""
    small = peak_growth_kb(tmp_path, 1_000, redis_url, "mem-small", mode)
    large = peak_growth_kb(tmp_path, 10_000, redis_url, "mem-large", mode)
    assert large - small < ALLOWED_KB, (small, large)
    assert redis_client.llen("mem-large.submit") == 10_000 + 1  # and the warm-up row
    redis_client.flushall()
