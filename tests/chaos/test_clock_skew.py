"""A worker whose wall clock runs 2 minutes ahead (Debian's faketime), beside an honest one.

Every state change takes its "now" from the worker that makes it (the Lua scripts'
``now`` argument, Celery's absolute ETA of a countdown), so the skewed worker's due
times, leases and ETAs are off by the skew. Judged like every fault; the table shows
what the skew costs in time. CI skews by 30 s, ``make chaos`` by the full 2 minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from shutil import which

import pytest

from clonequeue.local import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from tests.chaos.report import FULL, ChaosReport
from tests.chaos.run import JOBS, SETTINGS, WAIT_S, ChaosRun, check
from tests.e2e.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(int(WAIT_S) + 300)]

CLOCK_AHEAD_S = 120 if FULL else 30


def faketime_reason() -> str | None:
    if os.environ.get("CHAOS_NO_APT") != "1" and which("faketime") is None and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "faketime"],
            capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=300, check=False,
        )  # fmt: skip
    if which("faketime") is None:
        return "Debian's faketime is not installed and apt-get could not install it"
    return None


def test_worker_clock_two_minutes_ahead(
    make_system: type[System], simulator: SimulatorAdmin, chaos_report: ChaosReport
) -> None:
    """One of two workers runs with its wall clock 2 minutes ahead (libfaketime)."""
    reason = faketime_reason()
    if reason is not None:
        pytest.skip(reason)
    system = make_system(**SETTINGS)
    run = ChaosRun(f"worker clock +{CLOCK_AHEAD_S} s", system, simulator, chaos_report)
    system.start_worker(name="honest")
    skewed = ManagedProcess(
        ["faketime", "-f", f"+{CLOCK_AHEAD_S}s", sys.executable, "-m", "clonequeue", "worker",
         "--hostname=skewed@%h", "--concurrency", "30"],
        log_path=system.stack.workdir / "skewed.log",
        env={**system.stack.env(), "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
        name="skewed",
    )  # fmt: skip
    skewed.start()
    system.stack.workers.append(skewed)
    skewed.wait_ready(line="ready.", timeout_s=60)
    run.submit()
    check(run.finish(), JOBS, unknown_allowed=False)
