"""The whole system on one machine: Redis, the API simulator, workers (and Flower).

Used by ``clonequeue demo``, the end-to-end tests, the chaos suite and the
benchmarks. Every service is a real child process on a free port; everything
started here is stopped by :meth:`LocalStack.stop` (or the context manager).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import urllib3

from clonequeue.config.redis_urls import is_sentinel_url
from clonequeue.local.ports import free_port
from clonequeue.local.processes import ManagedProcess
from clonequeue.local.redis import EmbeddedRedis, redis_answers

SIMULATOR_TOKEN = "sim-token"


class SimulatorAdmin:
    """The simulator's test-only admin API (``/_sim/...``): knobs, clock, balance, ledger."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10, 60))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(
            method,
            f"{self.base_url}/_sim/{path}",
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if response.status >= 400:
            raise RuntimeError(
                f"simulator {method} {path}: HTTP {response.status}: {response.data[:300]!r}"
            )
        return json.loads(response.data) if response.data else None

    def configure(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", "config", knobs)
        return result

    def ledger(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "ledger")
        return result

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "ledger/summary")
        return result

    def set_balance(self, balance: float, token: str = SIMULATOR_TOKEN) -> None:
        self._call("POST", "balance", {"token": token, "balance": balance})

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "clock/advance", {"seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except (urllib3.exceptions.HTTPError, RuntimeError, ValueError):
            return False


class LocalStack:
    """Start and stop the pieces; hand out the environment child processes need."""

    def __init__(
        self,
        workdir: Path,
        *,
        namespace: str = "clonequeue",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.extra_env = dict(extra_env or {})
        self.redis_url = ""
        self.redis_server: EmbeddedRedis | None = None
        self.simulator: ManagedProcess | None = None
        self.simulator_url = ""
        self.admin: SimulatorAdmin | None = None
        self.workers: list[ManagedProcess] = []
        self._workers_started = 0  # names are never reused, even after one was removed
        self._stack = ExitStack()

    # --- services ------------------------------------------------------------------

    def start_redis(self, url: str | None = None, *, embedded: bool = False) -> str:
        """Use ``url`` when it answers (and ``embedded`` is False), else start our own.

        A Sentinel URL is used as given: its sentinels say where the master is.
        """
        if url and not embedded and (is_sentinel_url(url) or redis_answers(url)):
            self.redis_url = url
        else:
            self.redis_server = EmbeddedRedis().start(directory=self.workdir / "redis")
            self._stack.callback(self.redis_server.close)
            self.redis_url = self.redis_server.url
        return self.redis_url

    def start_simulator(self, *args: str, port: int | None = None) -> SimulatorAdmin:
        """Run ``clonequeue simulator`` with CLI ``args`` (its knobs) on a free port."""
        port = port or free_port()
        self.simulator = ManagedProcess(
            [sys.executable, "-m", "clonequeue", "simulator", "--port", str(port), *args],
            log_path=self.workdir / "simulator.log",
            env=self._base_env(),
            name="simulator",
        )
        self._stack.enter_context(self.simulator)
        self.simulator.wait_ready(line="simulator listening on", timeout_s=30)
        self.simulator_url = f"http://127.0.0.1:{port}"
        self.admin = SimulatorAdmin(self.simulator_url)
        return self.admin

    def start_worker(
        self, *args: str, name: str | None = None, env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """Run ``clonequeue worker`` with ``args``; ready when Celery says so."""
        # A reused node name clashes with the live worker of that name (on RabbitMQ
        # its exclusive pidbox queue is locked: the newcomer never gets ready).
        self._workers_started += 1
        name = name or f"worker{self._workers_started}"
        process = ManagedProcess(
            [sys.executable, "-m", "clonequeue", "worker", f"--hostname={name}@%h", *args],
            log_path=self.workdir / f"{name}.log",
            env={**self.env(), **(env or {})},
            name=name,
        )
        process.start()
        self.workers.append(process)
        process.wait_ready(line="ready.", timeout_s=60)
        return process

    # --- environment -----------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def settings_env(self) -> dict[str, str]:
        """The CLONEQUEUE_* variables that point a process at this stack."""
        env = {"CLONEQUEUE_REDIS_URL": self.redis_url, "CLONEQUEUE_NAMESPACE": self.namespace}
        if self.simulator_url:
            env["CLONEQUEUE_API_BASE_URL"] = self.simulator_url
            env["CLONEQUEUE_API_TOKEN"] = SIMULATOR_TOKEN
        return {**env, **self.extra_env}

    def env(self) -> dict[str, str]:
        return {**self._base_env(), **self.settings_env()}

    # --- lifecycle ---------------------------------------------------------------------

    def stop_workers(self, timeout_s: float = 20.0) -> None:
        for worker in self.workers:
            worker.terminate(timeout_s)
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
