"""A Redis that cannot persist (MISCONF: its disk full, its folder gone) refuses writes and
PING, and serves reads: the commands that only read must go on (QA pass: status, batches
and results all failed, as redis-py's health-check PING on each new connection did)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

import clonequeue
from clonequeue.config import load_settings
from clonequeue.local import EmbeddedRedis, free_port
from clonequeue.services import Services
from tests.cli_run import clonequeue_cli

pytestmark = pytest.mark.slow


def test_reads_go_on_while_redis_cannot_persist(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis().start(port=port, directory=tmp_path / "redis"):
        url = f"redis://127.0.0.1:{port}/0"
        services = Services(load_settings(env_file=None, redis_url=url, namespace="mc"))
        row = {"custom_id": "m1", "clone": {"fileUrl": "https://v.example.com/m1.mp3"}}
        clonequeue.submit([row], batch="m", services=services)
        client = redis.Redis(port=port)
        gone = tmp_path / "gone"
        gone.mkdir()
        client.config_set("dir", str(gone))
        client.config_set("save", "3600 1")  # refusals count only with save points
        client.config_set("stop-writes-on-bgsave-error", "yes")
        shutil.rmtree(gone)
        client.bgsave()
        deadline = time.monotonic() + 10
        while client.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline, "the snapshot did not fail"
            time.sleep(0.05)
        with pytest.raises(redis.exceptions.ResponseError, match="MISCONF"):
            client.ping()  # what redis-py's health check sends on every new connection
        settings = {"CLONEQUEUE_REDIS_URL": url, "CLONEQUEUE_NAMESPACE": "mc"}
        for args, shown in (
            (("status", "m"), "m: 1 job: pending 1"),
            (("results", "m"), '"custom_id": "m1"'),
        ):
            out = clonequeue_cli(*args, cwd=tmp_path, settings=settings)
            assert out.returncode == 0, out.stderr
            assert shown in out.stdout
            assert out.stderr.count("cannot write its AOF or snapshot") == 1  # said once
        gone.mkdir()
        client.config_set("stop-writes-on-bgsave-error", "no")
