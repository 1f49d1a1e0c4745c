"""Every result says why it is what it is: a failed clone's audios, and the worker's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clonequeue.local.stack import SimulatorAdmin
from clonequeue.simulator.tasks import CLONE_FAILURES, FAIL_TRIGGER
from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def test_a_failed_clone_skips_its_audios_and_the_log_says_why(
    system: System, simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    rows = [
        {
            "custom_id": "ok-1",
            "clone": {"fileUrl": "https://v.example.com/ok-1.mp3"},
            "audios": [{"contentText": "Hello one"}],
        },
        {
            "custom_id": "bad-1",
            "clone": {"fileUrl": f"https://v.example.com/{FAIL_TRIGGER}.mp3"},
            "audios": [{"custom_id": "bad-1-a", "contentText": "Hi"}, {"contentText": "Bye"}],
        },
    ]
    worker = system.start_worker()
    batch = system.submit(rows, batch="fx")
    info = system.wait(batch, 60)
    assert (info.counts["completed"], info.counts["failed"]) == (1, 1)

    out = subprocess.run(
        [sys.executable, "-m", "clonequeue", "results", "fx"],
        env=system.stack.env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    records = {r["custom_id"]: r for r in map(json.loads, out.splitlines())}
    failed = records["bad-1"]
    reason = CLONE_FAILURES[0]
    assert failed["status"] == "failed"
    assert failed["error"]["msg"] == reason
    assert [(a["status"], a["error"]) for a in failed["audios"]] == [
        ("skipped", {"kind": "skipped", "msg": f"not made: the clone failed ({reason})"})
    ] * 2
    assert [a["status"] for a in records["ok-1"]["audios"]] == ["completed"]

    log = worker.log_path.read_text()
    failed_lines = [line for line in log.splitlines() if "clone failed" in line]
    assert failed_lines, log[-2000:]
    assert all(f"clone failed: {reason}" in line for line in failed_lines), failed_lines
