"""`clonequeue demo`, as `make demo` runs it: a real child process, the suite's Redis,
or (without CLONEQUEUE_REDIS_URL) its own embedded one."""

from __future__ import annotations

import json
import os
import shutil
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


# Runs inside a network namespace of its own (``unshare --net``): there, 127.0.0.1:6379
# is a Redis this test starts, standing in for "whatever Redis listens on 6379".
INSIDE = """
import json, subprocess, sys
import redis
from clonequeue.local import EmbeddedRedis
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
workdir, jobs = sys.argv[1], sys.argv[2]
with EmbeddedRedis().start(port=6379, directory=workdir + "/on-6379") as server:
    client = redis.Redis(port=6379)
    before = client.info("stats")["total_connections_received"]
    demo = subprocess.run(
        [sys.executable, "-m", "clonequeue", "demo", "--jobs", jobs,
         "--workdir", workdir + "/demo"],
        capture_output=True, text=True, timeout=150, check=False,
    )
    after = client.info("stats")["total_connections_received"]
    print(json.dumps({"code": demo.returncode, "out": demo.stdout + demo.stderr,
                      "connections": after - before, "keys": client.dbsize()}))
"""


def test_demo_without_a_redis_url_never_writes_into_the_redis_on_6379(
    tmp_path: Path, tmp_env: dict[str, str]
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip: the test gives the demo a network namespace")
    jobs = tmp_path / "two.jsonl"
    jobs.write_text(
        '{"custom_id": "d-1", "clone": {"fileUrl": "https://v.example.com/d1.mp3"}, '
        '"audios": [{"contentText": "Hello one"}]}\n'
        '{"custom_id": "d-2", "clone": {"fileUrl": "https://v.example.com/d2.mp3"}}\n'
    )
    env = {k: v for k, v in tmp_env.items() if k != "CLONEQUEUE_REDIS_URL"}
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", INSIDE, str(tmp_path), str(jobs)],
        env={**env, "COLUMNS": "120"},
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0, seen["out"]
    assert "(embedded, AOF on; set CLONEQUEUE_REDIS_URL to use yours;" in seen["out"]
    assert "redis://127.0.0.1:6379/" not in seen["out"]
    assert "completed 2" in seen["out"]
    assert (seen["connections"], seen["keys"]) == (0, 0)  # nobody but us ever connected
