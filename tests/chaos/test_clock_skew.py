"""A worker whose wall clock runs 2 minutes ahead (Debian's faketime), beside an honest one.

Every state change takes its "now" from the fleet's clock, Redis's (store/clock.py):
the Lua scripts' ``now``, due times and leases, and Celery's absolute ETAs, which each
worker converts to its own clock (workers/fleet_time.py). Before that, the skewed
worker wrote due times two minutes late and the honest one held its polls two minutes
(45 s for this batch against 27 s). Judged like every fault, and: no due time the
fleet writes lies further ahead of Redis's clock than the longest wait it may stand for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from shutil import which

import pytest

from clonequeue.dispatch.bounds import longest_wait_s
from clonequeue.local import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from tests.chaos.report import ChaosReport
from tests.chaos.run import JOBS, SETTINGS, WAIT_S, ChaosRun, check
from tests.e2e.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(int(WAIT_S) + 300)]

CLOCK_AHEAD_S = float(os.environ.get("CHAOS_CLOCK_AHEAD_S", 120))


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
    run = ChaosRun(f"worker clock +{CLOCK_AHEAD_S:g} s", system, simulator, chaos_report)
    system.start_worker(name="honest")
    skewed = ManagedProcess(
        ["faketime", "-f", f"+{CLOCK_AHEAD_S:g}s", sys.executable, "-m", "clonequeue", "worker",
         "--hostname=skewed@%h", "--concurrency", "30"],
        log_path=system.stack.workdir / "skewed.log",
        # Monotonic clocks are faked too (by the same constant offset): with
        # FAKETIME_DONT_FAKE_MONOTONIC=1 libfaketime makes every time.sleep() fail (EINVAL).
        env=system.stack.env(),
        name="skewed",
    )  # fmt: skip
    skewed.start()
    system.stack.workers.append(skewed)
    skewed.wait_ready(line="ready.", timeout_s=60)
    run.submit()
    with DueSampler(system) as due:
        verdict = run.finish()
    check(verdict, JOBS, unknown_allowed=False)
    assert due.samples > 10, "the due-index was hardly sampled"
    assert due.furthest_s <= longest_wait_s(system.settings) + 5, (
        f"a due time {due.furthest_s:.0f} s ahead of Redis's clock: a worker's own clock was "
        f"trusted (the longest wait is {longest_wait_s(system.settings):.0f} s)"
    )
    said = (system.stack.workdir / "skewed.log").read_text(errors="replace")
    assert f"clock is {CLOCK_AHEAD_S:.1f} s ahead of Redis's" in said, (
        "the skewed worker did not say its clock is off"
    )


class DueSampler:
    """How far ahead of Redis's clock the due-index reaches, sampled while the batch runs."""

    def __init__(self, system: System) -> None:
        self._client = system.services.redis
        self._key = system.services.jobs.keys.due
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples = 0
        self.furthest_s = 0.0

    def __enter__(self) -> DueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            latest = self._client.zrange(self._key, -1, -1, withscores=True)
            seconds, micros = self._client.time()
            if latest:
                ahead = float(latest[0][1]) - (seconds + micros / 1e6)
                self.furthest_s = max(self.furthest_s, ahead)
            self.samples += 1
