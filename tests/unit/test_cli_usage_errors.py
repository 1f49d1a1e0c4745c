"""Usage errors as a pipeline meets them: one JSON object with --json, click's text without.

Each command here fails before it reads a file or reaches Redis, so nothing runs but
the CLI (Redis points at a port where nothing listens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import clonequeue_cli

NOWHERE = "redis://127.0.0.1:1/0"


def cli(tmp_path: Path, *args: str) -> Any:
    settings = {"CLONEQUEUE_REDIS_URL": NOWHERE, "COLUMNS": "200"}
    return clonequeue_cli(*args, cwd=tmp_path, settings=settings)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("submit", "jobs.jsonl", "--json", "--bogus-option", "x"),
            "No such option: --bogus-option",
        ),
        (
            ("submit", "jobs.jsonl", "--json", "--max-chars", "abc"),
            "Invalid value for '--max-chars'",
        ),
        (("submit", "--json"), "Missing argument 'FILE|-'; see"),
        (("status", "--json"), "Missing argument 'BATCH'; see"),
        (("estimate", "--json", "jobs.jsonl", "--nope"), "No such option: --nope"),
        (("batches", "--json", "--limit", "0"), "Invalid value for '--limit'"),
        (("config", "show", "--json", "--nope"), "No such option: --nope"),
    ],
)
def test_with_json_a_usage_error_is_one_json_object_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    out = cli(tmp_path, *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    failure = json.loads(out.stdout)  # one object and nothing else
    # submit's --json always has `batch` (null: nothing submitted) and `dry_run`
    fields = {"batch", "dry_run", "error"} if args[0] == "submit" else {"error"}
    assert failure.keys() == fields
    assert failure["error"].startswith(error), failure
    command = " ".join(args[:2] if args[0] == "config" else args[:1])
    assert failure["error"].endswith(f"; see `clonequeue {command} --help`"), failure
    assert out.stderr == f"error: {failure['error']}\n"  # the same words, no usage text


def test_submit_keeps_its_dry_run_field(tmp_path: Path) -> None:
    out = cli(tmp_path, "submit", "jobs.jsonl", "--dry-run", "--json", "--bogus")
    assert json.loads(out.stdout)["dry_run"] is True


def test_without_json_click_prints_its_usage_text(tmp_path: Path) -> None:
    out = cli(tmp_path, "submit", "jobs.jsonl", "--bogus-option", "x")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Usage: " in out.stderr
    assert "No such option: --bogus-option" in out.stderr


def test_a_dash_first_batch_name_is_refused_by_the_cli(tmp_path: Path) -> None:
    (tmp_path / "jobs.jsonl").write_text(
        '{"custom_id": "a", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}\n'
    )
    out = cli(tmp_path, "submit", "jobs.jsonl", "--batch", "-x")
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        "error: --batch '-x': a batch name is 1-64 letters, digits, '.', '_' or '-', and does "
        "not start with '-' (it would read as an option: `clonequeue status -x`)\n"
    )
