"""Parquet files and DataFrames into the suite's real Redis, and results back out as both."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

import clonequeue
from clonequeue.config import load_settings
from clonequeue.producers import parallel
from clonequeue.services import Services
from tests.cli_run import clonequeue_cli


def job(cid: str, audios: int = 1, url: str | None = None) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "fileUrl": url or f"https://v.example.com/{cid}.mp3",
        "language": "English",
        "audios": [{"contentText": f"Line {k} of {cid}", "speed": 1.0} for k in range(audios)],
    }


@pytest.fixture
def services(redis_client: redis.Redis, redis_url: str) -> Services:
    return Services(load_settings(env_file=None, redis_url=redis_url, namespace="pq"))


def cli(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    settings = {"CLONEQUEUE_REDIS_URL": redis_url, "CLONEQUEUE_NAMESPACE": "pq"}
    return clonequeue_cli(*args, cwd=tmp_path, settings=settings)


def test_cli_submits_parquet_rejects_bad_rows_and_exports_parquet(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    rows = [job("p1", 2), job("p2", url="https://v.example.com/p2.txt"), job("p3", 0)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "jobs.parquet")

    submitted = cli(tmp_path, redis_url, "submit", "jobs.parquet", "--batch", "pq1")
    assert submitted.returncode == 3, submitted.stderr
    assert submitted.stdout.strip() == "pq1"
    assert "rejected: line 2 (p2): fileUrl: extension .txt" in submitted.stderr
    errors = [
        json.loads(x) for x in (tmp_path / "jobs.parquet.errors.jsonl").read_text().split("\n") if x
    ]
    assert [(e["line"], e["custom_id"], e["row"]["fileUrl"]) for e in errors] == [
        (2, "p2", "https://v.example.com/p2.txt")
    ]
    docs = {d["id"]: d for d in services.batches.docs("pq1")}
    assert sorted(docs) == ["p1", "p3"]
    assert [a["custom_id"] for a in docs["p1"]["audios"]] == ["p1-1", "p1-2"]

    exported = cli(tmp_path, redis_url, "results", "pq1", "--format", "parquet", "-o", "out.pq")
    assert exported.returncode == 0, exported.stderr
    table = pq.read_table(tmp_path / "out.pq")
    assert table.column("custom_id").to_pylist() == ["p1", "p3"]
    assert table.column("status").to_pylist() == ["pending", "pending"]
    assert [[a["custom_id"] for a in x] for x in table.column("audios").to_pylist()] == [
        ["p1-1", "p1-2"],
        [],
    ]
    to_stdout = cli(tmp_path, redis_url, "results", "pq1", "--format", "parquet")
    assert to_stdout.returncode == 2
    assert "add -o FILE.parquet" in to_stdout.stderr


def test_a_big_parquet_file_is_checked_in_the_helper_process(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "CHILD_MIN_BYTES", 0)  # every file counts as big
    rows = [job(f"h{i}") for i in range(300)] + [{**job("bad"), "audios": [{"speed": 1.0}]}]
    path = tmp_path / "jobs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    assert parallel.use_child(clonequeue.producers.api.row_source(path))
    with pytest.warns(clonequeue.RejectedRowsWarning):
        batch = clonequeue.submit(path, batch="big", services=services)
    assert [(e.line, e.field, e.rule) for e in batch.rejected] == [
        (301, "audios[0].contentText", "is required")
    ]
    assert batch.status().total == 300


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_dataframe_submit_and_results_frame(services: Services, kind: str) -> None:
    rows = [job("f1", 2), {**job("f2"), "audios": [{"contentText": "x", "pitch": 40}]}]
    frame = pd.DataFrame(rows) if kind == "pandas" else pl.DataFrame(rows)
    with pytest.warns(clonequeue.RejectedRowsWarning, match=r"line 2 \(f2\): audios\[0\].pitch"):
        batch = clonequeue.submit(frame, batch=f"df-{kind}", services=services, max_chars=10**6)
    assert [(e.line, e.custom_id, e.field) for e in batch.rejected] == [
        (2, "f2", "audios[0].pitch")
    ]
    results = batch.results_frame(kind=kind)  # type: ignore[arg-type]
    assert type(results).__module__.split(".")[0] == kind
    rows_out = results.to_dicts() if kind == "polars" else results.to_dict("records")
    assert [(r["custom_id"], r["status"]) for r in rows_out] == [("f1", "pending")]
    assert [a["custom_id"] for a in rows_out[0]["audios"]] == ["f1-1", "f1-2"]
    assert type(batch.results_frame()).__module__.startswith("pandas")  # the default
