"""Secrets through real worker processes: a canary token in every printable form reaches
no log line, traceback or task event; a token ending in a newline just works."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clonequeue.local.processes import ManagedProcess
from clonequeue.local.stack import SimulatorAdmin
from clonequeue.redaction import REDACTED
from tests.e2e.canary_worker import LEAK_TASK
from tests.e2e.system import System, make_rows
from tests.leak_forms import CANARY, leak_forms, leaked

pytestmark = pytest.mark.e2e


class EventCapture:
    """What Flower would see: every event on the fleet's event exchange."""

    def __init__(self, app: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self._connection = app.connection_for_read()
        self._receiver = app.events.Receiver(self._connection, handlers={"*": self.events.append})
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._receiver.should_stop = True
        self._thread.join(10)
        self._connection.release()

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no such event in {timeout_s} s: {[e['type'] for e in self.events]}")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_canary_token_in_every_form_reaches_no_log_traceback_or_task_event(
    make_system: type[System], tmp_path: Path, log_format: str
) -> None:
    system = make_system(api_token=CANARY, log_format=log_format)
    worker = ManagedProcess(
        [sys.executable, str(Path(__file__).with_name("canary_worker.py"))],
        log_path=tmp_path / "canary.log",
        env=system.stack.env(),
        name="canary",
    )
    app = system.services.app
    with worker, EventCapture(app) as capture:
        worker.wait_ready(line="ready.", timeout_s=60)
        capture.wait_for(lambda e: e["type"] == "worker-heartbeat")  # we hear the worker
        queue = app.clonequeue_queues.submit
        failing = app.send_task(LEAK_TASK, args=[True], queue=queue).id
        passing = app.send_task(LEAK_TASK, args=[False], queue=queue).id
        failed = capture.wait_for(lambda e: e["type"] == "task-failed" and e["uuid"] == failing)
        succeeded = capture.wait_for(
            lambda e: e["type"] == "task-succeeded" and e["uuid"] == passing
        )
        time.sleep(0.5)  # the log lines after the events
    event_text = "\n".join(json.dumps(e) + "\n" + str(e) for e in capture.events)
    assert "Traceback" in failed[0]["traceback"]  # Celery did send the traceback
    assert REDACTED in failed[0]["exception"]
    assert REDACTED in succeeded[0]["result"]
    assert leaked(event_text) == []
    log_text = worker.log_path.read_text()
    assert "raised unexpected" in log_text  # Celery's own line, with its traceback
    assert log_text.count(REDACTED) >= 2 * len(leak_forms())
    assert leaked(log_text) == []


def test_a_token_ending_in_a_newline_completes_every_job(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    """Issue 14: `CLONEQUEUE_API_TOKEN=$'sim-token\\n'` made every create `unknown`."""
    system = make_system(api_token="sim-token\n")
    worker = system.start_worker()
    batch = system.submit(make_rows(6, audios=1))
    info = system.wait(batch, 60)
    assert info.counts.get("completed") == 6, info.counts
    assert not info.counts.get("unknown")
    assert simulator.summary()["creates_total"] == 12
    log_text = worker.log_path.read_text()
    assert "Invalid header value" not in log_text
    assert "sim-token" not in log_text


def test_a_rotated_token_file_is_used_by_running_workers_after_a_401(
    make_system: type[System], simulator: SimulatorAdmin, tmp_path: Path
) -> None:
    """The worker starts with a token the API refuses (from a file): creates pause on the
    401. The file is rotated to the right token; without a restart the next probe reads
    it and every job completes."""
    token_file = tmp_path / "api-token"
    token_file.write_text("tok_revoked_0000\n")
    system = make_system()
    env = {k: v for k, v in system.stack.env().items() if k != "CLONEQUEUE_API_TOKEN"}
    env["CLONEQUEUE_API_TOKEN_FILE"] = str(token_file)
    worker = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "worker", "--beat", "--concurrency", "10"],
        log_path=tmp_path / "rotating.log",
        env=env,
        name="rotating",
    )
    with worker:
        worker.wait_ready(line="ready.", timeout_s=60)
        batch = system.submit(make_rows(4, audios=1))
        deadline = time.monotonic() + 30
        while system.services.fleet.pause_reason() is None:
            assert time.monotonic() < deadline, worker.log_tail(30)
            time.sleep(0.2)
        assert system.services.fleet.pause_reason()["kind"] == "auth"  # type: ignore[index]
        token_file.write_text("sim-token\n")  # the secret manager rotates it
        info = system.wait(batch, 90)
    assert info.counts.get("completed") == 4, info.counts
    assert not info.counts.get("unknown")
    assert system.services.fleet.pause_reason() is None
    log_text = worker.log_path.read_text()
    assert "tok_revoked_0000" not in log_text
    assert "the API token changed" in log_text


def test_workers_lose_no_create_to_a_server_that_closes_idle_connections(
    make_system: type[System], simulator: SimulatorAdmin
) -> None:
    """The keep-alive race through real workers: the simulator drops a request sent on a
    connection idle for 0.7 s. Audio creates come after the clone's ~1.3 s: on a reused
    connection they would be `unknown`; creates reuse only one used in the last 0.3 s."""
    simulator.configure(idle_close_s=0.7)
    system = make_system(http_create_max_idle_s="0.3")
    system.start_worker()
    batch = system.submit(make_rows(8, audios=2))
    info = system.wait(batch, 90)
    assert info.counts.get("completed") == 8, info.counts
    assert not info.counts.get("unknown")
    counts = simulator.ledger()["counts"]
    assert not any("POST" in k and "idle_closed" in k for k in counts), counts
    assert simulator.summary()["creates_total"] == 8 * 3
    assert any("idle_closed" in k for k in counts), counts  # the server did close some (polls)
