"""Streaming: memory stays flat however big the input (each run in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.slow

SCRIPT = """
import json, resource, sys
from pathlib import Path
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
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
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
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
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


def peak_growth_kb(
    tmp_path: Path, rows: int, redis_url: str = "-", ns: str = "-", mode: str = "file"
) -> int:
    path = write_rows(tmp_path / f"rows-{rows}.jsonl", rows)
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


def test_validating_200k_rows_holds_no_more_than_2k_rows_do(tmp_path: Path) -> None:
    small = peak_growth_kb(tmp_path, 2_000)
    large = peak_growth_kb(tmp_path, 200_000)
    # A list of 200k validated rows would take several hundred MB; streaming stays flat.
    assert large - small < 20 * 1024, (small, large)


@pytest.mark.parametrize("mode", ["file", "generator"])
def test_submitting_40k_rows_into_redis_holds_no_more_than_2k_rows_do(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, mode: str
) -> None:
    """Both passes of a --max-chars run; a generator's rows are spooled to disk between."""
    small = peak_growth_kb(tmp_path, 2_000, redis_url, "mem-small", mode)
    large = peak_growth_kb(tmp_path, 40_000, redis_url, "mem-large", mode)
    assert large - small < 20 * 1024, (small, large)
    assert redis_client.llen("mem-large.submit") == 40_000 + 1  # and the warm-up row
    redis_client.flushall()
