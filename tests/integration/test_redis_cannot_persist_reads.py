"""A Redis that cannot persist (MISCONF: its disk full, its folder gone) refuses writes and
PING, and serves reads: the commands that only read must go on (QA pass: status, batches
and results all failed, as redis-py's health-check PING on each new connection did), and
say so in one line each (QA pass: a paragraph, Redis's own reply in it cut mid-word); a
command that writes fails with that line."""

from __future__ import annotations

import json
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
from tests.integration.conftest import workers_running

pytestmark = pytest.mark.slow


def test_reads_go_on_while_redis_cannot_persist(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis().start(port=port, directory=tmp_path / "redis"):
        url = f"redis://127.0.0.1:{port}/0"
        services = Services(load_settings(env_file=None, redis_url=url, namespace="mc"))
        row = {"custom_id": "m1", "clone": {"fileUrl": "https://v.example.com/m1.mp3"}}
        clonequeue.submit([row], batch="m", services=services)
        workers_running(services)  # this test is about the refusal's one line
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
        said = (
            "Redis cannot save to disk and refuses writes until it can: check the disk it "
            "saves to (`CONFIG GET dir` on the Redis server); nothing is lost (Redis: MISCONF "
            "Redis is configured to save RDB snapshots, but it is currently not able to "
            "persist on disk. …)"
        )
        for args, shown in (
            (("status", "m"), "m: 1 job: pending 1"),
            (("batches",), "1 job: pending 1"),
            (("results", "m"), '"custom_id": "m1"'),
        ):
            out = clonequeue_cli(*args, cwd=tmp_path, settings=settings)
            assert out.returncode == 0, out.stderr
            assert shown in out.stdout
            assert out.stderr.splitlines() == [said]  # once, in one line
        out = clonequeue_cli("cancel", "m", cwd=tmp_path, settings=settings)
        assert out.returncode == 1, out.stderr
        assert f"error: {said}" in out.stderr.splitlines()
        # the broker is this Redis: it answered, so not "cannot reach the broker … start it"
        rows = tmp_path / "rows.jsonl"
        rows.write_text(json.dumps({**row, "custom_id": "m2"}) + "\n")
        out = clonequeue_cli("submit", str(rows), cwd=tmp_path, settings=settings)
        assert out.returncode == 1, out.stderr
        assert f"error: {said}; nothing was submitted" in out.stderr.splitlines(), out.stderr
        gone.mkdir()
        client.config_set("stop-writes-on-bgsave-error", "no")


def test_a_submit_into_a_full_redis_says_it_is_full_not_to_wait_for_it(tmp_path: Path) -> None:
    """Out of memory under noeviction, submit said "run the same command again once Redis
    answers": it answers; what it needs is memory (operator QA pass)."""
    port = free_port()
    with EmbeddedRedis().start(port=port, directory=tmp_path / "redis"):
        url = f"redis://127.0.0.1:{port}/0"
        services = Services(load_settings(env_file=None, redis_url=url, namespace="oom"))
        client = redis.Redis(port=port)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 1024))
        row = {"custom_id": "o1", "clone": {"fileUrl": "https://v.example.com/o1.mp3"}}
        with pytest.raises(clonequeue.ProducerError) as raised:
            clonequeue.submit([row], batch="full", services=services)
        message = str(raised.value)
        assert message.startswith("Redis is full"), message
        assert "raise maxmemory or free memory" in message
        assert "once Redis answers" not in message
        assert "0 new jobs were recorded in batch full" in message  # the recording's, not the
        # broker check's (which passes: it writes nothing)
        client.config_set("maxmemory", "0")
