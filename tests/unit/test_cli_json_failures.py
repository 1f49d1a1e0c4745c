"""Runtime failures as a pipeline meets them: with --json, one JSON object on stdout too.

Usage errors are tests/unit/test_cli_usage_errors.py's. Here each command parses
fine and then fails: Redis points at a port where nothing listens, a file is not
there, a setting cannot be read. The exit code and the ``error:`` line on stderr
are what they are without --json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import clonequeue_cli

NOWHERE = "redis://127.0.0.1:1/0"
NO_REDIS = "cannot reach Redis at redis://127.0.0.1:1/0"
JOB = '{"custom_id": "a", "clone": {"fileUrl": "https://v.example.com/a.mp3"}}\n'


def cli(tmp_path: Path, *args: str, **settings: str) -> Any:
    (tmp_path / "jobs.jsonl").write_text(JOB)
    env = {"CLONEQUEUE_REDIS_URL": NOWHERE, "COLUMNS": "200", **settings}
    return clonequeue_cli(*args, cwd=tmp_path, settings=env)


@pytest.mark.parametrize(
    ("args", "settings", "code", "error"),
    [
        (("status", "b1", "--json"), {}, 1, NO_REDIS),
        (("status", "b1", "--wait", "--json"), {}, 1, NO_REDIS),
        (("batches", "--json"), {}, 1, NO_REDIS),
        (("webhooks", "b1", "--json"), {}, 1, NO_REDIS),
        (("estimate", "missing.jsonl", "--json"), {}, 1, "cannot read missing.jsonl"),
        (
            ("config", "show", "--json"),
            {"CLONEQUEUE_API_TOKEN_FILE": "/nonexistent/token"},
            2,
            "CLONEQUEUE_API_TOKEN_FILE: cannot read /nonexistent/token",
        ),
    ],
)
def test_with_json_a_runtime_failure_is_one_json_object(
    tmp_path: Path, args: tuple[str, ...], settings: dict[str, str], code: int, error: str
) -> None:
    out = cli(tmp_path, *args, **settings)
    assert out.returncode == code, (out.stdout, out.stderr)
    failure = json.loads(out.stdout)  # one object and nothing else
    assert failure.keys() == {"error"}, failure
    assert failure["error"].startswith(error), failure
    assert out.stderr == f"error: {failure['error']}\n"  # the same words, as without --json


def test_without_json_stdout_stays_empty(tmp_path: Path) -> None:
    out = cli(tmp_path, "status", "b1")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.startswith(f"error: {NO_REDIS}")


@pytest.mark.parametrize("dry_run", [False, True])
def test_submit_keeps_its_own_richer_object_printed_once(tmp_path: Path, dry_run: bool) -> None:
    """submit's object (``batch``, ``dry_run``, ``error``) is its own: not doubled, not cut.

    Its --max-chars fields are pinned in tests/integration/test_producers_input_edges.py.
    """
    out = cli(tmp_path, "submit", "jobs.jsonl", "--json", *(["--dry-run"] if dry_run else []))
    assert out.returncode == 1, (out.stdout, out.stderr)
    failure = json.loads(out.stdout)  # exactly one object, not two
    assert failure.keys() == {"batch", "dry_run", "error"}
    assert (failure["batch"], failure["dry_run"]) == (None, dry_run)
    assert failure["error"].startswith(NO_REDIS)
    assert out.stderr.endswith(f"error: {failure['error']}\n")
