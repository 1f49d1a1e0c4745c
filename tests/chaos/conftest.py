"""The chaos suite: ``make chaos`` runs it at full size (1,000 jobs per fault); CI runs a
short version. At the end it prints one table of what survived what.

Rows travel through a file, so the table also works when pytest-xdist runs the
scenarios in worker processes.
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


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a plain run)
        ROWS_PATH.unlink(missing_ok=True)


class ChaosReport:
    def append(self, row: dict[str, Any]) -> None:
        ROWS_PATH.parent.mkdir(parents=True, exist_ok=True)
        with ROWS_PATH.open("a") as sink:
            sink.write(json.dumps(row) + "\n")


@pytest.fixture
def chaos_report() -> ChaosReport:
    return ChaosReport()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if hasattr(terminalreporter.config, "workerinput") or not ROWS_PATH.exists():
        return
    rows = [json.loads(line) for line in ROWS_PATH.read_text().splitlines()]
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    terminalreporter.section("chaos: what survived what")
    terminalreporter.line("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        terminalreporter.line("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
    REPORT_PATH.write_text(json.dumps({"full": FULL, "rows": rows}, indent=2))
