"""Parquet files and DataFrames in and out, without Redis: layout, per-row errors, extras."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import clonequeue
from clonequeue.errors import MissingExtraError
from clonequeue.producers import frames, parquet_reading
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.producers.frames import FrameSource, results_frame
from clonequeue.producers.parquet_export import result_schema, write_parquet
from clonequeue.producers.sources import InputFile

ROWS: list[dict[str, Any]] = [
    {
        "custom_id": "a",
        "fileUrl": "https://v.example.com/a.mp3",
        "language": "English",
        "audios": [
            {"contentText": "Hi", "speed": 1.1},
            {"custom_id": "a-x", "contentText": "Yo", "pitch": 2},
        ],
    },
    {"custom_id": "b", "fileUrl": "https://v.example.com/b.txt", "language": None, "audios": []},
    {"custom_id": None, "fileUrl": "https://v.example.com/c.mp3", "language": None, "audios": None},
    {
        "custom_id": "d",
        "fileUrl": "https://v.example.com/d.mp3",
        "language": None,
        "audios": [{"contentText": "Hi", "speed": 9.0}],
    },
]
EXPECTED_ERRORS = [
    (2, "b", "fileUrl", "extension .txt is not an audio or video type"),
    (3, None, "custom_id", "is required"),
    (4, "d", "audios[0].speed", "9.0 is out of range; the API accepts 0.5 to 2 (default 1)"),
]


def errors_of(report: Any) -> list[tuple[int, str | None, str | None, str]]:
    return [(e.line, e.custom_id, e.field, e.rule) for e in report.errors]


def check_report(report: Any) -> None:
    assert (report.rows, report.accepted, report.rejected) == (4, 1, 3)
    got = errors_of(report)
    assert [g[:3] for g in got] == [e[:3] for e in EXPECTED_ERRORS]
    for (*_, rule), (*_, expected) in zip(got, EXPECTED_ERRORS, strict=True):
        assert rule.startswith(expected), rule
    # the good job: two audios from the list column, its fields as given
    assert report.estimate.audios == 2


def test_parquet_rows_are_checked_with_row_number_field_and_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet_reading, "BATCH_ROWS", 1)  # several batches and row groups
    path = tmp_path / "jobs.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 2
    check_report(clonequeue.estimate(path))


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_dataframe_rows_are_checked_like_parquet(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "SLICE_ROWS", 3)  # two slices
    frame = pd.DataFrame(ROWS) if kind == "pandas" else pl.DataFrame(ROWS)
    check_report(clonequeue.estimate(frame))
    check_report(clonequeue.estimate(frame))  # a frame can be read again: nothing consumed


def test_a_pandas_frame_read_from_parquet_holds_numpy_values_and_is_checked_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    frame = pd.read_parquet(path)  # list cells are numpy arrays, nulls NaN/None
    check_report(clonequeue.estimate(frame))


def test_wrong_columns_stop_before_any_row_with_every_problem_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"custom_id": ["x"], "fileURL": ["u"], "audio_speed": [1.0]}), path)
    with pytest.raises(UnreadableInputError) as caught:
        clonequeue.estimate(path)
    message = str(caught.value)
    assert "unknown column 'fileURL' (did you mean 'fileUrl'?)" in message
    assert "column 'audio_speed': audios are one list column here, 'audios'" in message
    assert "missing column 'fileUrl'" in message
    with pytest.raises(UnreadableInputError, match="unknown column 'fileURL'"):
        FrameSource(pl.DataFrame({"custom_id": ["x"], "fileURL": ["u"]}))


def test_a_file_that_is_not_parquet_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "jobs.parquet"
    path.write_text("custom_id,fileUrl\n")
    with pytest.raises(UnreadableInputError, match=r"cannot read .*jobs.parquet as Parquet"):
        clonequeue.estimate(path)


def test_parquet_on_stdin_says_to_pass_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = __import__("io").BufferedReader(__import__("io").BytesIO(b"PAR1\x00\x00"))

    monkeypatch.setattr(sys, "stdin", Stdin)
    with pytest.raises(UnreadableInputError, match="pass the file's path instead of -"):
        InputFile.from_arg("-")


@pytest.mark.parametrize(
    ("module", "call"),
    [
        ("pyarrow", lambda tmp: clonequeue.estimate(tmp / "jobs.parquet")),
        ("pyarrow", lambda tmp: write_parquet([], tmp / "out.parquet")),
        ("polars", lambda tmp: results_frame([], "polars")),
        ("pandas", lambda tmp: results_frame([], "pandas")),
    ],
)
def test_a_missing_extra_says_exactly_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, call: Any
) -> None:
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "jobs.parquet")
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # import now fails, as if not installed
    extra = "parquet" if module == "pyarrow" else "frames"
    with pytest.raises(MissingExtraError, match=rf"pip install 'clonequeue\[{extra}\]'"):
        call(tmp_path)


def record(cid: str, audios: int = 1) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "batch": "b",
        "status": "failed",
        "modelId": "model_1",
        "audioUrl": None,
        "audios": [
            {
                "custom_id": f"{cid}-{k}",
                "status": "failed",
                "audioUrl": None,
                "subtitleFile": None,
                "error": {"kind": "remote", "msg": "=1+1", "code": 40001},
            }
            for k in range(audios)
        ],
        "error": {"kind": "remote", "msg": "-bad", "code": -5},
        "attempts": 1,
        "retries": 0,
        "created_at": 1.5,
        "finished_at": None,
    }


def test_parquet_export_has_one_row_per_job_with_audios_as_a_list_in_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clonequeue.producers import parquet_export

    monkeypatch.setattr(parquet_export, "ROW_GROUP_ROWS", 2)
    path = tmp_path / "out.parquet"
    assert write_parquet((record(f"j{i}", audios=i) for i in range(5)), path) == 5
    file = pq.ParquetFile(path)
    assert file.schema_arrow == result_schema()
    assert file.num_row_groups == 3
    rows = file.read().to_pylist()
    assert [len(r["audios"]) for r in rows] == [0, 1, 2, 3, 4]
    first = rows[2]
    assert (first["error_msg"], first["error_code"], first["finished_at"]) == ("-bad", -5, None)
    assert first["audios"][1] == {
        "custom_id": "j2-1",
        "status": "failed",
        "audioUrl": None,
        "subtitleFile": None,
        "error_kind": "remote",
        "error_code": 40001,
        "error_msg": "=1+1",  # Parquet is data: values unchanged
        "artifact_state": None,  # no artifact store
        "artifact_url": None,
        "subtitleArtifact_url": None,
    }
    empty = tmp_path / "empty.parquet"
    assert write_parquet([], empty) == 0
    assert pq.read_table(empty).schema == result_schema()


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_results_frame_has_the_parquet_columns(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "SLICE_ROWS", 2)
    frame = results_frame((record(f"j{i}", audios=2) for i in range(5)), kind)  # type: ignore[arg-type]
    assert list(frame.columns) == result_schema().names
    rows = frame.to_dicts() if kind == "polars" else frame.to_dict("records")
    assert [r["custom_id"] for r in rows] == [f"j{i}" for i in range(5)]
    assert [a["custom_id"] for a in rows[4]["audios"]] == ["j4-0", "j4-1"]
    assert int(rows[0]["error_code"]) == -5
    with pytest.raises(ValueError, match="use 'pandas' or 'polars'"):
        results_frame([], "arrow")  # type: ignore[arg-type]


def test_a_subclass_of_a_pandas_frame_is_a_frame_and_other_values_are_not() -> None:
    class Geo(pd.DataFrame):
        pass

    assert frames.frame_kind(Geo(ROWS)) == "pandas"
    assert frames.frame_kind(pl.DataFrame(ROWS)) == "polars"
    assert frames.frame_kind(ROWS) is None
    assert frames.frame_kind(pd.Series([1])) is None


def test_a_repeated_column_and_a_lazy_frame_are_refused_with_what_to_do() -> None:
    twice = pd.DataFrame([["a", "https://v.example.com/a.mp3", "b"]])
    twice.columns = ["custom_id", "fileUrl", "custom_id"]
    with pytest.raises(UnreadableInputError, match="column 'custom_id' appears twice"):
        clonequeue.estimate(twice)
    with pytest.raises(TypeError, match=r"pass frame.collect\(\)"):
        clonequeue.estimate(pl.DataFrame(ROWS).lazy())
