"""A running clonequeue for one test: its own namespace, real workers, the shared simulator."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from clonequeue.config import Settings, load_settings
from clonequeue.local.audit import AuditReport, audit
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.stack import LocalStack, SimulatorAdmin
from clonequeue.producers.api import submit_specs
from clonequeue.services import Services
from clonequeue.store.batches import BatchInfo
from clonequeue.store.records import TERMINAL_STATES

# Fast but realistic: polls every 0.5-1 s, the watchdog every 2 s with a 5 s grace.
FAST_SETTINGS = {
    "CLONEQUEUE_POLL_INTERVAL_MIN_S": "0.5",
    "CLONEQUEUE_POLL_INTERVAL_MAX_S": "1",
    "CLONEQUEUE_WATCHDOG_INTERVAL_S": "2",
    "CLONEQUEUE_WATCHDOG_GRACE_S": "5",
    "CLONEQUEUE_VISIBILITY_TIMEOUT_S": "30",
    "CLONEQUEUE_HTTP_CONNECT_TIMEOUT_S": "1",
    "CLONEQUEUE_HTTP_READ_TIMEOUT_S": "2",
    "CLONEQUEUE_RETRY_BASE_S": "0.2",
    "CLONEQUEUE_RETRY_MAX_S": "2",
    "CLONEQUEUE_API_RATE_LIMIT": "400/second",
    "CLONEQUEUE_PAUSE_PROBE_INTERVAL_S": "3",
    "CLONEQUEUE_JOB_DEADLINE_S": "120",
}


def make_rows(
    count: int, *, audios: int = 1, prefix: str = "job", subtitles: bool = False
) -> list[dict[str, Any]]:
    """Jobs whose bodies are unique, so the ledger can tell them apart."""
    rows = []
    for i in range(count):
        cid = f"{prefix}-{i:05d}"
        rows.append(
            {
                "custom_id": cid,
                "clone": {"fileUrl": f"https://voices.example.com/{cid}.mp3"},
                "audios": [
                    {
                        "contentText": f"Line {k} of {cid}. <#0.2#> Thank you.",
                        **({"subtitleEnable": True} if subtitles else {}),
                    }
                    for k in range(audios)
                ],
            }
        )
    return rows


class System:
    def __init__(self, workdir: Path, redis_url: str, simulator_url: str, **settings: str) -> None:
        self.namespace = f"t{uuid.uuid4().hex[:8]}"
        env = {**FAST_SETTINGS, **{f"CLONEQUEUE_{k.upper()}": v for k, v in settings.items()}}
        self.stack = LocalStack(workdir, namespace=self.namespace, extra_env=env)
        self.stack.start_redis(redis_url)
        self.stack.simulator_url = simulator_url
        self.admin = SimulatorAdmin(simulator_url)
        overrides = {
            k.removeprefix("CLONEQUEUE_").lower(): v for k, v in self.stack.settings_env().items()
        }
        self.settings: Settings = load_settings(env_file=None, **overrides)
        self.services = Services(self.settings)

    def start_worker(
        self,
        *args: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        beat: bool = True,
    ) -> ManagedProcess:
        extra = ("--beat",) if beat else ()
        return self.stack.start_worker(*extra, "--concurrency", "30", *args, name=name, env=env)

    def start_beat(self, name: str = "beat") -> ManagedProcess:
        """``clonequeue beat`` alone (a schedule file of its own: two may run at once)."""
        process = ManagedProcess(
            [
                sys.executable,
                "-m",
                "clonequeue",
                "beat",
                f"--schedule={self.stack.workdir / f'{name}-schedule'}",
            ],
            log_path=self.stack.workdir / f"{name}.log",
            env=self.stack.env(),
            name=name,
        )
        process.start()
        self.stack.workers.append(process)  # stopped with the workers
        process.wait_ready(line="beat: Starting", timeout_s=60)
        return process

    def submit(self, rows: list[dict[str, Any]], batch: str = "b") -> str:
        result = submit_specs(rows, services=self.services, batch=batch)
        assert not result.rejected, result.rejected
        return result.batch_id

    def info(self, batch: str) -> BatchInfo:
        info = self.services.batches.info(batch)
        assert info is not None
        return info

    def wait(self, batch: str, timeout_s: float = 90.0, *, until: str = "finished") -> BatchInfo:
        """Wait until every job is finished (or ``until`` a state has jobs); fail with detail."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.info(batch)
            done = info.is_finished if until == "finished" else info.counts.get(until, 0) > 0
            if done:
                return info
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.name}\n{w.log_tail(30)}" for w in self.stack.workers)
                open_jobs = [d for d in self.docs(batch) if d["state"] not in TERMINAL_STATES][:5]
                client, keys = self.services.redis, self.services.jobs.keys
                where = {
                    "due": client.zrange(keys.due, 0, 20, withscores=True),
                    "parked": [client.zrange(keys.parked(k), 0, 20) for k in ("clone", "audio")],
                    "inflight": client.scard(keys.inflight),
                    "paused": client.get(keys.paused),
                }
                raise AssertionError(
                    f"batch {batch} not {until} after {timeout_s} s: {info.counts}\n"
                    f"open jobs: {open_jobs}\nfleet: {where}\n{logs}"
                )
            time.sleep(0.25)

    def docs(self, batch: str) -> list[dict[str, Any]]:
        return list(self.services.batches.docs(batch))

    def audit(self, batch: str) -> AuditReport:
        docs = self.docs(batch)
        ledger = self.admin.ledger()
        tasks = {}
        for create in ledger["creates"]:
            tasks[create["task_id"]] = self.admin._call("GET", f"tasks/{create['task_id']}")
        return audit(docs, ledger, tasks)

    def stop(self) -> None:
        """Stop the processes and remove the broker queues (once: a test that deletes its
        own vhost stops its system before that)."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        self.stack.stop()
        if self.settings.effective_broker_url.startswith("amqp"):
            self._delete_broker_queues()

    def _delete_broker_queues(self) -> None:
        """RabbitMQ keeps queues and exchanges: remove this system's own."""
        app = self.services.app
        with app.connection_for_write() as connection:
            channel = connection.channel()
            for name in app.clonequeue_queues.all:
                channel.queue_delete(name)
                channel.exchange_delete(name)
