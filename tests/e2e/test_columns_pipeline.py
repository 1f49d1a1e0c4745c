"""Parquet in, Parquet out and DataFrame in, DataFrame out, through a real worker and the
simulator: every audio of the list column is made, failures come back with the API's msg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import clonequeue
from clonequeue.local.stack import SimulatorAdmin
from clonequeue.simulator.tasks import AUDIO_FAILURES, FAIL_TRIGGER
from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def jobs(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "fileUrl": f"https://voices.example.com/{prefix}-{i}.mp3",
            "language": "English",
            "audios": [
                {"contentText": f"First line of {prefix}-{i}.", "speed": 1.1},
                {"custom_id": f"{prefix}-{i}-b", "contentText": f"Second of {prefix}-{i}."},
            ],
        }
        for i in range(count)
    ]


def test_parquet_in_parquet_out(system: System, simulator: SimulatorAdmin, tmp_path: Path) -> None:
    rows = jobs("pq", 4)
    rows[3]["audios"][1]["contentText"] = f"{FAIL_TRIGGER} this one"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "jobs.parquet", row_group_size=2)
    system.start_worker()
    cli = [sys.executable, "-m", "clonequeue"]
    run: dict[str, Any] = {"env": system.stack.env(), "cwd": tmp_path, "capture_output": True}
    submitted = subprocess.run([*cli, "submit", "jobs.parquet", "-b", "pqe"], text=True, **run)
    assert submitted.returncode == 0, submitted.stderr
    info = system.wait("pqe", 60)
    assert (info.counts["completed"], info.counts["failed"]) == (3, 1)

    exported = subprocess.run(
        [*cli, "results", "pqe", "-f", "parquet", "-o", "out.parquet"], text=True, **run
    )
    assert exported.returncode == 0, exported.stderr
    out = {r["custom_id"]: r for r in pq.read_table(tmp_path / "out.parquet").to_pylist()}
    assert sorted(out) == [f"pq-{i}" for i in range(4)]
    done = out["pq-0"]
    assert done["status"] == "completed"
    assert done["modelId"]
    assert [(a["custom_id"], a["status"]) for a in done["audios"]] == [
        ("pq-0-1", "completed"),
        ("pq-0-b", "completed"),
    ]
    assert all(a["audioUrl"] for a in done["audios"])
    failed = out["pq-3"]
    assert failed["status"] == "failed"
    assert [a["status"] for a in failed["audios"]] == ["completed", "failed"]
    assert failed["audios"][1]["error_msg"] == AUDIO_FAILURES[0]
    assert system.audit("pqe").ok


def test_dataframe_in_dataframe_out(system: System, simulator: SimulatorAdmin) -> None:
    frame = pl.DataFrame(jobs("df", 3))
    system.start_worker()
    batch = clonequeue.submit(frame, batch="dfe", services=system.services)
    assert batch.submission is not None
    assert batch.submission.new == 3
    batch.wait(timeout=60, poll_interval=0.25)
    results = batch.results_frame(kind="polars")
    assert results.get_column("custom_id").to_list() == ["df-0", "df-1", "df-2"]
    assert results.get_column("status").to_list() == ["completed"] * 3
    audios = results.select("audios").explode("audios").unnest("audios")
    assert audios.get_column("status").to_list() == ["completed"] * 6
    assert audios.get_column("custom_id").to_list()[:2] == ["df-0-1", "df-0-b"]
    as_pandas = batch.results_frame()
    assert list(as_pandas["custom_id"]) == ["df-0", "df-1", "df-2"]
    assert simulator.summary()["creates_total"] == 3 + 6
