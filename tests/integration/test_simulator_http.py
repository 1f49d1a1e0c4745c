"""The simulator over real HTTP: every endpoint, every knob, and what our client makes of it.

One server in a background thread for the module, reset before each test. Tasks
move by advancing the simulated clock, never by sleeping; the few sleeps left are
the real-time knobs themselves (latency, slow answers, outages).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3
from pydantic import SecretStr

from clonequeue.api.client import ApiClient
from clonequeue.api.models import AudioRequest, CloneRequest
from clonequeue.constants import AUDIO_PATH, CLONE_PATH, MODEL_ID_TTL_S, TASK_PATH_PREFIX
from clonequeue.errors import (
    ApiUnavailableError,
    AuthenticationError,
    InsufficientBalanceError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
)
from clonequeue.simulator import RunningSimulator, SimConfig, serve_in_thread
from clonequeue.simulator.accounts import fingerprint

TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
CLONE = CloneRequest(fileUrl="https://example.com/voice.mp3")
START = SimConfig(
    clone_queue_s=1, clone_processing_s=2, audio_queue_s=1, audio_processing_s=2, slow_s=1
)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(START) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(
        maxsize=50, retries=False, timeout=urllib3.Timeout(connect=2, read=10)
    )
    yield pool
    pool.clear()


@pytest.fixture(autouse=True)
def _fresh(sim: RunningSimulator, http: urllib3.PoolManager) -> None:
    response = http.request("POST", f"{sim.admin_url}/reset")
    assert response.status == 200


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[ApiClient]:
    with ApiClient(sim.url, SecretStr(TOKEN), read_timeout_s=5) as api:
        yield api


def call(
    http: urllib3.PoolManager,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, urllib3.BaseHTTPResponse]:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = http.request(method, url, body=raw, headers=AUTH if headers is None else headers)
    return response.status, json.loads(response.data) if response.data else None, response


def admin(http: urllib3.PoolManager, sim: RunningSimulator, method: str, path: str, body=None):
    status, data, _ = call(http, method, f"{sim.admin_url}/{path}", body, {})
    return status, data


def configure(http: urllib3.PoolManager, sim: RunningSimulator, **knobs: Any) -> dict[str, Any]:
    status, data = admin(http, sim, "PATCH", "config", knobs)
    assert status == 200, data
    return data


def advance(http: urllib3.PoolManager, sim: RunningSimulator, seconds: float) -> None:
    assert admin(http, sim, "POST", "clock/advance", {"seconds": seconds})[0] == 200


def summary(http: urllib3.PoolManager, sim: RunningSimulator) -> dict[str, Any]:
    return admin(http, sim, "GET", "ledger/summary")[1]


def completed_model(client: ApiClient, http, sim) -> str:
    task = client.create_clone(CLONE)
    advance(http, sim, 3)
    done = client.get_task(task.id)
    assert done.is_completed
    assert done.modelId
    return done.modelId


# --- the API -------------------------------------------------------------------------------------


def test_a_clone_and_an_audio_run_to_completion(client: ApiClient, http, sim) -> None:
    task = client.create_clone(CLONE)
    assert task.status == "queued"
    assert task.id.startswith("audio_")
    assert task.model == "soundCloningClone"
    assert task.model_extra == {"traceId": task.traceId}
    advance(http, sim, 1)
    assert client.get_task(task.id).status == "processing"
    advance(http, sim, 2)
    clone = client.get_task(task.id)
    assert clone.is_completed
    assert clone.audioUrl
    assert clone.modelId

    audio = client.create_audio(
        AudioRequest(modelId=clone.modelId, contentText="Hello <#0.5#> world", subtitleEnable=True)
    )
    assert audio.model == "soundCloningAudio"
    advance(http, sim, 3)
    done = client.get_task(audio.id)
    assert done.is_completed
    assert done.audioUrl
    assert done.subtitleFile


def test_failed_tasks_say_why(client: ApiClient, http, sim) -> None:
    task = client.create_clone(CloneRequest(fileUrl="https://example.com/__fail__.mp3"))
    advance(http, sim, 3)
    failed = client.get_task(task.id)
    assert failed.is_failed
    assert "between 15 and 60 seconds" in failed.error_text()


def test_bad_token_is_401(client: ApiClient, http, sim) -> None:
    with ApiClient(sim.url, SecretStr("wrong")) as stranger, pytest.raises(AuthenticationError):
        stranger.create_clone(CLONE)
    status, body, _ = call(http, "POST", sim.url + CLONE_PATH, CLONE.to_body(), {})
    assert (status, body["code"]) == (401, 40100)


def test_invalid_bodies_are_400_with_the_rules(http, sim) -> None:
    status, body, _ = call(http, "POST", sim.url + CLONE_PATH, {"fileUrl": "ftp://x/a.mp3"})
    assert (status, body["code"]) == (400, 40000)
    assert body["msg"].startswith("fileUrl: has scheme 'ftp:'")
    status, body, _ = call(http, "POST", sim.url + AUDIO_PATH, {"contentText": "hi", "pitch": 99})
    assert status == 400
    assert "modelId: is required" in body["msg"]
    assert "pitch:" in body["msg"]
    status, body, _ = call(http, "POST", sim.url + CLONE_PATH, b"{not json")
    assert (status, body["code"]) == (400, 40000)
    assert summary(http, sim)["creates_total"] == 0


def test_unknown_paths_and_tasks_are_404(client: ApiClient, http, sim) -> None:
    status, body, _ = call(http, "GET", sim.url + "/api/open-api/v1/nothing")
    assert (status, body["code"]) == (404, 40400)
    with pytest.raises(RejectedError) as info:
        client.get_task("audio_unknown")
    assert (info.value.http_status, info.value.code) == (404, 40400)


# --- balance, refunds, expiry --------------------------------------------------------------------


def test_insufficient_balance_is_402_and_creates_nothing(client: ApiClient, http, sim) -> None:
    assert admin(http, sim, "POST", "balance", {"token": TOKEN, "balance": 0.001})[0] == 200
    with pytest.raises(InsufficientBalanceError) as info:
        client.create_clone(CLONE)
    assert (info.value.http_status, info.value.code) == (402, 40200)
    configure(http, sim, balance_error="code200")
    status, body, _ = call(http, "POST", sim.url + CLONE_PATH, CLONE.to_body())
    assert (status, body["code"], body["msg"]) == (200, 40200, "insufficient balance")
    with pytest.raises(InsufficientBalanceError):
        client.create_clone(CLONE)
    assert summary(http, sim)["creates_total"] == 0


def test_failed_tasks_are_refunded(client: ApiClient, http, sim) -> None:
    configure(http, sim, price_per_10k_chars=100)
    account = fingerprint(TOKEN)
    task = client.create_clone(CloneRequest(fileUrl="https://example.com/__fail__.mp3"))
    charged = admin(http, sim, "GET", "balance")[1][account]
    assert charged < 1000
    advance(http, sim, 3)
    assert admin(http, sim, "GET", "balance")[1] == {account: 1000}
    ledger = admin(http, sim, "GET", "ledger")[1]
    assert [r["task_id"] for r in ledger["refunds"]] == [task.id]
    assert ledger["refunds"][0]["amount"] == pytest.approx(1000 - charged)


def test_model_expires_unless_activated(client: ApiClient, http, sim) -> None:
    used, unused = completed_model(client, http, sim), completed_model(client, http, sim)
    client.create_audio(AudioRequest(modelId=used, contentText="first use activates"))
    advance(http, sim, MODEL_ID_TTL_S + 60)
    client.create_audio(AudioRequest(modelId=used, contentText="still fine"))
    with pytest.raises(RejectedError) as info:
        client.create_audio(AudioRequest(modelId=unused, contentText="too late"))
    assert (info.value.http_status, info.value.code) == (400, 40010)
    assert "expired" in info.value.msg
    assert "clone" in info.value.msg
    with pytest.raises(RejectedError) as unknown:
        client.create_audio(AudioRequest(modelId="model_unknown", contentText="who?"))
    assert unknown.value.code == 40004


# --- fault knobs ---------------------------------------------------------------------------------


def test_error_5xx_rate_answers_5xx_and_creates_nothing(client: ApiClient, http, sim) -> None:
    configure(http, sim, error_5xx_rate=1.0)
    for _ in range(5):
        with pytest.raises(ApiUnavailableError) as info:
            client.create_clone(CLONE)
        assert info.value.http_status in (500, 502, 503)
        assert info.value.code == 50000
    totals = summary(http, sim)
    assert (totals["creates_total"], totals["http_5xx"]) == (0, 5)


def test_rate_limit_answers_429_with_retry_after(client: ApiClient, http, sim) -> None:
    task = client.create_clone(CLONE)
    configure(http, sim, rate_limit_per_s=3)
    statuses = [call(http, "GET", sim.url + TASK_PATH_PREFIX + task.id)[2] for _ in range(6)]
    limited = [r for r in statuses if r.status == 429]
    assert len(limited) >= 2
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert json.loads(limited[0].data)["code"] == 42900
    with pytest.raises(RateLimitedError) as info:
        client.get_task(task.id)
    assert info.value.retry_after_s is not None
    assert info.value.retry_after_s >= 1
    assert summary(http, sim)["http_429"] >= 3


def test_latency_delays_every_answer(client: ApiClient, http, sim) -> None:
    configure(http, sim, latency_s=0.3)
    started = time.monotonic()
    client.create_clone(CLONE)
    assert time.monotonic() - started >= 0.3


def test_slow_answers_come_after_the_effect_and_block_nobody(http, sim) -> None:
    configure(http, sim, slow_rate=1.0, slow_s=1.0)
    with (
        ApiClient(sim.url, SecretStr(TOKEN), read_timeout_s=0.3) as impatient,
        pytest.raises(OutcomeUnknownError),
    ):
        impatient.create_clone(CLONE)
    creates = admin(http, sim, "GET", "ledger")[1]["creates"]
    assert [c["answer"] for c in creates] == ["slow"]

    task_url = sim.url + TASK_PATH_PREFIX + creates[0]["task_id"]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda _: call(http, "GET", task_url)[0], range(40)))
    assert statuses == [200] * 40
    assert time.monotonic() - started < 3  # 40 answers of 1 s each, served side by side


def test_lost_response_creates_and_charges_but_never_answers(client: ApiClient, http, sim) -> None:
    configure(http, sim, lost_response_rate=1.0)
    with pytest.raises(OutcomeUnknownError):
        client.create_clone(CLONE)
    ledger = admin(http, sim, "GET", "ledger")[1]
    assert [c["answer"] for c in ledger["creates"]] == ["lost"]
    assert ledger["counts"] == {"POST clones lost": 1}
    assert admin(http, sim, "GET", "balance")[1][fingerprint(TOKEN)] < 1000
    assert summary(http, sim)["lost_responses"] == 1


def test_down_5xx_answers_503_until_it_ends(client: ApiClient, http, sim) -> None:
    configure(http, sim, down="5xx", down_for_s=0.8)  # long enough for a loaded machine
    with pytest.raises(ApiUnavailableError) as info:
        client.create_clone(CLONE)
    assert info.value.http_status == 503
    assert admin(http, sim, "GET", "health") == (200, {"ok": True})  # admin stays up
    time.sleep(0.8)
    client.create_clone(CLONE)
    assert admin(http, sim, "GET", "config")[1]["down"] is None


def test_down_refuse_closes_the_port_then_reopens_it(client: ApiClient, http, sim) -> None:
    configure(http, sim, down="refuse", down_for_s=1.0)
    time.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
    with pytest.raises(ApiUnavailableError):
        client.create_clone(CLONE)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    assert admin(http, sim, "GET", "config")[1]["down"] is None
    assert client.create_clone(CLONE).status == "queued"


# --- admin API -----------------------------------------------------------------------------------


def test_config_patch_validates_and_reset_restores(http, sim) -> None:
    status, body = admin(http, sim, "PATCH", "config", {"failure_rate": 3})
    assert status == 400
    assert "failure_rate" in body["error"]
    status, body = admin(http, sim, "PATCH", "config", {"no_such_knob": 1})
    assert status == 400
    assert "no_such_knob" in body["error"]
    assert configure(http, sim, latency_s=0.01)["latency_s"] == 0.01
    admin(http, sim, "POST", "reset")
    assert admin(http, sim, "GET", "config")[1] == START.public()
    status, body = admin(http, sim, "POST", "clock/advance", {"seconds": "soon"})
    assert status == 400


def test_ledger_records_creates_polls_and_counts(client: ApiClient, http, sim) -> None:
    task = client.create_clone(CLONE)
    client.create_clone(CLONE)  # the same body again: a duplicate
    for _ in range(3):
        client.get_task(task.id)
        advance(http, sim, 5)
    ledger = admin(http, sim, "GET", "ledger")[1]
    first = ledger["creates"][0]
    assert first["task_id"] == task.id
    assert first["kind"] == "clone"
    assert first["body"] == CLONE.to_body()
    assert first["answer"] == "sent"
    assert first["chars"] == 76
    assert first["charge"] > 0
    polls = ledger["polls"][task.id]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    # 5 s advanced each time, plus the real time between two polls (0.05 s+ on a loaded
    # CI host once: 5.1 rounded)
    assert len(gaps) == 2
    assert all(4.99 <= gap < 5.5 for gap in gaps), gaps
    assert ledger["counts"] == {"POST clones 200": 2, "GET task 200": 3}
    totals = summary(http, sim)
    assert (totals["creates_total"], totals["duplicate_creates"], totals["polls_total"]) == (
        2,
        1,
        3,
    )
    record = admin(http, sim, "GET", f"tasks/{task.id}")[1]
    assert record["status"] == "completed"
    assert record["body"] == CLONE.to_body()
    assert admin(http, sim, "GET", "tasks/audio_nope")[0] == 404


def test_tokens_are_never_echoed(client: ApiClient, http, sim) -> None:
    client.create_clone(CLONE)
    admin(http, sim, "POST", "balance", {"token": "secret-2", "balance": 5})
    for path in ("config", "balance", "ledger", "ledger/summary"):
        text = json.dumps(admin(http, sim, "GET", path)[1])
        assert TOKEN not in text
        assert "secret-2" not in text
    assert admin(http, sim, "GET", "balance")[1][fingerprint("secret-2")] == 5


def test_same_seed_same_ids(client: ApiClient, http, sim) -> None:
    first = client.create_clone(CLONE).id
    admin(http, sim, "POST", "reset")
    assert client.create_clone(CLONE).id == first


# --- the CLI command -----------------------------------------------------------------------------


def test_cli_prints_the_url_and_stops_cleanly_on_sigterm(http) -> None:
    code = textwrap.dedent(
        """
        import typer
        from clonequeue.cli.simulator_cmd import simulator
        app = typer.Typer()
        app.command()(simulator)
        app()
        """
    )
    argv = [sys.executable, "-c", code, "--port", "0", "--token", "t1", "--failure-rate", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert json.loads(http.request("GET", f"{url}/_sim/config").data)["failure_rate"] == 1
        status = http.request("POST", url + CLONE_PATH, body=json.dumps(CLONE.to_body()),
                              headers={"Authorization": "Bearer t1"}).status  # fmt: skip
        assert status == 200
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
