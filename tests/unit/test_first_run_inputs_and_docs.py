"""A new user's second QA pass, offline: pitch as a float, result frames' types, ``--help``
at 80 columns, the worker's start-up note, and the README's first examples as written."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

import clonequeue
from clonequeue.cli.worker_cmd import real_api_notice
from clonequeue.config import load_settings
from clonequeue.config.settings import known_variables
from clonequeue.jobspec import JobSpec
from clonequeue.producers.frames import results_frame
from clonequeue.producers.rows import RowError, validate_row
from clonequeue.producers.sources import InputFile
from tests.unit.test_cli_help import commands, help_of

README = Path(__file__).resolve().parents[2] / "README.md"
PITCH_RULE = "the API accepts whole numbers from -12 to 12 (default 0)"


def read(path: Path) -> list[JobSpec | RowError]:
    with InputFile.from_arg(str(path)).open() as stream:
        return [validate_row(r) for r in stream.rows]


# --- 7. a whole-number pitch written as a float counts as the integer --------------------------


def jsonl_job(custom_id: str, pitch: Any) -> str:
    audio = {"contentText": "Hi", "pitch": pitch}
    clone = {"fileUrl": f"https://v.example.com/{custom_id}.mp3"}
    return json.dumps({"custom_id": custom_id, "clone": clone, "audios": [audio]}) + "\n"


def test_jsonl_takes_a_whole_float_pitch_as_the_integer_and_rejects_a_fraction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(jsonl_job("p1", 1.0) + jsonl_job("p2", -12.0) + jsonl_job("p3", 1.5))
    one, two, three = read(path)
    assert isinstance(one, JobSpec), str(one)
    assert isinstance(two, JobSpec), str(two)
    assert (one.audios[0].pitch, two.audios[0].pitch) == (1, -12)
    assert type(one.audios[0].pitch) is int
    assert isinstance(three, RowError)
    assert str(three) == (
        f"line 3 (p3): audios[0].pitch: Input should be a valid integer; {PITCH_RULE}"
    )


def test_a_whole_float_pitch_out_of_range_is_rejected_with_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(jsonl_job("p4", 20.0))
    (result,) = read(path)
    assert str(result) == f"line 1 (p4): audios[0].pitch: 20 is out of range; {PITCH_RULE}"


@pytest.mark.parametrize(
    ("cell", "expected"), [("1.0", 1), ("-2.00", -2), ("+3.0", 3), ("1e1", 10), ("-0.0", 0)]
)
def test_csv_takes_a_whole_number_written_with_a_point_as_the_integer(
    tmp_path: Path, cell: str, expected: int
) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        f"custom_id,fileUrl,audio_contentText,audio_pitch\nc1,https://v.example.com/a.mp3,Hi,{cell}\n"
    )
    (result,) = read(path)
    if expected > 12:
        assert str(result) == f"line 2 (c1): audio_pitch: {expected} is out of range; {PITCH_RULE}"
        return
    assert isinstance(result, JobSpec), str(result)
    assert result.audios[0].pitch == expected
    assert type(result.audios[0].pitch) is int


@pytest.mark.parametrize("cell", ["1.5", "1.0000000000000001"])
def test_csv_still_rejects_a_pitch_with_a_fraction(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        f"custom_id,fileUrl,audio_contentText,audio_pitch\nc1,https://v.example.com/a.mp3,Hi,{cell}\n"
    )
    (result,) = read(path)
    assert str(result) == f"line 2 (c1): audio_pitch: '{cell}' is not a whole number; {PITCH_RULE}"


# --- 14. results_frame: the fixed schema's types, whatever the rows hold ------------------------


def record(error: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "custom_id": "a",
        "batch": "b",
        "status": "failed" if error else "completed",
        "audios": [],
        "error": error,
        "attempts": 1,
        "retries": 0,
        "created_at": 1.0,
        "finished_at": 2.0,
    }


def test_a_pandas_results_frame_has_the_same_types_with_or_without_errors() -> None:
    clean = results_frame([record(None)])
    failed = results_frame([record({"kind": "api", "msg": "no", "code": 40001})])
    empty = results_frame([])
    assert dict(clean.dtypes) == dict(failed.dtypes) == dict(empty.dtypes)
    pd = pytest.importorskip("pandas")
    text = pd.Series(["text"]).dtype
    assert clean.dtypes["error_msg"] == clean.dtypes["custom_id"] == text
    assert str(clean.dtypes["error_code"]) == "Int64"


def test_a_polars_results_frame_has_the_same_schema_with_or_without_errors() -> None:
    clean = results_frame([record(None)], kind="polars")
    failed = results_frame([record({"kind": "api", "msg": "no", "code": 40001})], kind="polars")
    assert clean.schema == failed.schema
    assert str(clean.schema["error_msg"]) == "String"


# --- 11. --help names settings whole at 80 columns ----------------------------------------------


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "clonequeue")
def test_help_at_80_columns_names_every_setting_whole(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = help_of(*path)
    assert "Usage: clonequeue" in text, text
    assert not re.search(r"CLONEQUEUE_[A-Z0-9_]*…", text), text
    named = set(re.findall(r"CLONEQUEUE_[A-Z0-9_]*[A-Z0-9]", text))
    assert named <= set(known_variables()), named - set(known_variables())


def test_worker_help_at_80_columns_names_both_concurrency_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = help_of("worker")
    assert "CLONEQUEUE_WORKER_CONCURRENCY" in text
    assert "CLONEQUEUE_ARTIFACT_CONCURRENCY" in text


# --- 1. the worker's note says how to run the simulator with the token it will send -------------


def test_the_real_api_notice_says_to_start_the_simulator_with_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLONEQUEUE_API_BASE_URL", raising=False)
    monkeypatch.setenv("CLONEQUEUE_API_TOKEN", "sk-mine")
    notice = real_api_notice(load_settings(env_file=None)) or ""
    assert "run `clonequeue simulator --token-from-env`" in notice
    assert "without it only the token sim-token" in notice
    assert "--token " not in notice  # a command line is readable by every local user


# --- 1, 2, 3, 13, 15. the README's first examples as a new user copies them ---------------------


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_using_it_starts_a_redis_and_points_the_url_at_its_port() -> None:
    first = blocks(section("## Using it"), "bash")[0]
    assert "clonequeue redis &" in first
    urls = re.findall(r"^export CLONEQUEUE_REDIS_URL=(\S+)", first, re.M)
    assert urls == ["redis://127.0.0.1:6390/0"]  # `clonequeue redis`'s default port
    assert "clonequeue simulator --token-from-env &" in first


def test_using_it_says_the_simulator_takes_only_its_tokens() -> None:
    text = " ".join(section("## Using it").split())
    assert "without one only `sim-token`" in text
    assert "clonequeue simulator --token-from-env` (port 8765" in text


def test_the_jsonl_example_is_one_valid_job_per_line(tmp_path: Path) -> None:
    text = section("## Using it")
    example = blocks(text[text.index("One job per JSONL line") :], "json")[0]
    path = tmp_path / "jobs.jsonl"
    path.write_text(example)
    assert all(json.loads(line) for line in example.splitlines())
    report = clonequeue.estimate(path)
    assert (report.rows, report.accepted, report.rejected) == (1, 1, 0), report.errors


def test_the_python_examples_define_rows_before_using_them() -> None:
    for source in blocks(section("## Using it"), "python"):
        tree = ast.parse(source)
        assigned: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                assigned |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        if "rows" in used:
            assert "rows" in assigned, source
    example = next(b for b in blocks(section("## Using it"), "python") if "submit(rows" in b)
    (value,) = [
        node.value
        for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["rows"]
    ]
    report = clonequeue.estimate(ast.literal_eval(value))
    assert (report.accepted, report.rejected) == (1, 0), report.errors


def test_no_example_url_is_an_ellipsis_placeholder() -> None:
    assert "https://…/" not in section("## Using it")


def test_the_processes_table_gives_the_two_workers_different_metrics_ports() -> None:
    table = section("## Operations")
    ports = re.findall(r"clonequeue worker -Q \S+ --metrics-port (\d+)", table)
    assert len(ports) == 2, ports
    assert len(set(ports)) == 2, ports


def test_using_it_explains_attempts_and_retries() -> None:
    text = " ".join(section("## Using it").split())
    assert "`attempts` counts the times a worker sent" in text
    assert "`retries` counts the times the job was queued again with `clonequeue retry`" in text
