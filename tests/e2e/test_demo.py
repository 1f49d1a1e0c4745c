"""`clonequeue demo`, as `make demo` runs it: a real child process, the suite's Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_the_sample_batch_to_a_results_table_and_cleans_up(
    tmp_path: Path, tmp_env: dict[str, str], redis_client: redis.Redis
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clonequeue", "demo", "--workdir", str(tmp_path / "demo")],
        env={**tmp_env, "COLUMNS": "120"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "rejected line 8 (spk-bad): clone.fileUrl: extension .txt" in text
    assert "accepted 20 jobs into batch 'demo'" in text
    assert "completed 19  failed 1" in text
    assert "Results" in text
    assert "the source audio must be between 15" in text  # the failed job says why
    assert ", 0 created twice," in text
    # a Redis it did not start keeps nothing of the demo
    assert not [k for k in redis_client.scan_iter(match=b"*demo-*")]
    deadlines = redis_client.zrange(b"_kombu.binding_deadlines", 0, -1)
    assert not [m for m in deadlines if b"demo-" in m]
