"""The chaos table: rows travel through a file, and the controller prints them at the end.

Registered as a plugin by tests/conftest.py: under pytest-xdist the controller never
loads tests/chaos/conftest.py, so hooks there would neither clear old rows nor
print the table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FULL = os.environ.get("CHAOS_FULL") == "1"
REPORT_PATH = Path(os.environ.get("CHAOS_REPORT", "bench/out/chaos.json"))
ROWS_PATH = REPORT_PATH.with_suffix(".rows.jsonl")
EXPECTED_FAILURE_KINDS = {"remote"}  # the simulator's failure_rate; faults must add none


def chaos_settings(wait_s: float) -> dict[str, str]:
    """The fleet's settings under a fault. Retries must outlast an outage: 0.2 s doubling
    to 10 s over 15 attempts is ~100 s. A job's deadline is the batch's wait (the default
    is 2 h; the e2e suite's 120 s is shorter than 1,000 jobs' calls take at 25/s)."""
    return {
        "retry_max_s": "10",
        "submit_max_attempts": "15",
        "http_read_timeout_s": "1.5",
        "job_deadline_s": str(int(wait_s)),
    }


def _is_controller(config: pytest.Config) -> bool:
    """The xdist controller, or a run without xdist."""
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config):
        ROWS_PATH.unlink(missing_ok=True)


class ChaosReport:
    def append(self, row: dict[str, Any]) -> None:
        ROWS_PATH.parent.mkdir(parents=True, exist_ok=True)
        with ROWS_PATH.open("a") as sink:
            sink.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _is_controller(terminalreporter.config) or not ROWS_PATH.exists():
        return
    rows = [json.loads(line) for line in ROWS_PATH.read_text().splitlines()]
    if not rows:
        return
    columns = list(dict.fromkeys(c for row in rows for c in row))  # every column, in order
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    terminalreporter.section("chaos: what survived what")
    terminalreporter.line("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        terminalreporter.line("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
    REPORT_PATH.write_text(json.dumps({"full": FULL, "rows": rows}, indent=2))
