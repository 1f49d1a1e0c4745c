"""Secrets the CLI and its child processes still showed (security QA pass), each through
the real command or process: `config show` with the token as a URL's user, a settings
error quoting a URL, the simulator given its token off the command line, the
validating helper's environment and `webhooks --json`'s URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3

import clonequeue
from clonequeue.api.models import CloneRequest
from clonequeue.constants import CLONE_PATH
from clonequeue.local.ports import free_port
from clonequeue.outputs.operate import Results
from clonequeue.producers import parallel
from clonequeue.producers.api import row_source
from clonequeue.services import Services
from tests.cli_run import clonequeue_cli
from tests.integration.test_producers_submit import HOOK, cli, row, write_jsonl

TOKEN = "tok-QA5-3c1e9a77b2d04f5e"
RANDOM = ("3c1e9a77", "b2d04f5e")  # runs of the token no escaping changes
WHSEC = "whsec_Y2xvbmVxdWV1ZS1xYTUtd2ViaG9vay1rZXktMzI="
FLOWER = "fl-QA5-77e0d1c2b3a49586"
REDIS_PW = "rp-QA5-0a1b2c3d4e5f6071"


def leaks(text: str) -> list[str]:
    pieces = (*RANDOM, WHSEC[6:30], FLOWER[7:], REDIS_PW[7:])
    return [piece for piece in pieces if piece in text]


# --- 1. config show: the token as the user of a URL ------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("CLONEQUEUE_API_BASE_URL", f"http://{TOKEN}@127.0.0.1:1/", "http://***@127.0.0.1:1"),
        ("CLONEQUEUE_API_BASE_URL", f"http://{TOKEN}:@127.0.0.1:1/", "http://***@127.0.0.1:1"),
        (
            "CLONEQUEUE_REDIS_URL",
            f"redis://{REDIS_PW}@127.0.0.1:1/0",
            "redis://***@127.0.0.1:1/0",
        ),
    ],
)
def test_config_show_masks_a_lone_userinfo(
    tmp_path: Path, variable: str, value: str, shown: str
) -> None:
    settings = {"CLONEQUEUE_API_TOKEN": "x", variable: value}
    text = clonequeue_cli("config", "show", cwd=tmp_path, settings=settings)
    as_json = clonequeue_cli("config", "show", "--json", cwd=tmp_path, settings=settings)
    assert (text.returncode, as_json.returncode) == (0, 0), text.stderr + as_json.stderr
    assert leaks(text.stdout + text.stderr + as_json.stdout + as_json.stderr) == []
    assert f"{variable}={shown} " in text.stdout
    assert json.loads(as_json.stdout)[variable] == shown


# --- 2. a rejected URL in a settings error -----------------------------------------------------


@pytest.mark.parametrize(
    "value", [f"ftp://127.0.0.1/?token={TOKEN}", f"ftp://{TOKEN}@127.0.0.1/", f"http://[{TOKEN}]/"]
)
def test_a_settings_error_shows_the_url_masked(tmp_path: Path, value: str) -> None:
    settings = {"CLONEQUEUE_API_TOKEN": "x", "CLONEQUEUE_API_BASE_URL": value}
    for args in (("config", "show"), ("config", "show", "--json")):
        done = clonequeue_cli(*args, cwd=tmp_path, settings=settings)
        assert done.returncode == 2, done.stderr
        assert leaks(done.stdout + done.stderr) == [], done.stdout + done.stderr
        assert "CLONEQUEUE_API_BASE_URL=" in done.stderr
        assert "must be an http(s) URL" in done.stderr


# --- 3. the simulator takes a real token off its command line ---------------------------------


def _simulator(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    argv = [sys.executable, "-m", "clonequeue", "simulator", "--port", str(port), *args]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**base, "PYTHONUNBUFFERED": "1", **env},
    )


def _create_status(url: str, token: str) -> int:
    http = urllib3.PoolManager()
    body = json.dumps(CloneRequest(fileUrl="https://example.com/voice.mp3").to_body())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return http.request("POST", url + CLONE_PATH, body=body, headers=headers).status


@pytest.mark.parametrize("how", ["--token-from-env", "--token-from-env/file", "--token-file"])
def test_the_simulator_accepts_a_token_given_off_its_command_line(tmp_path: Path, how: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    if how == "--token-file":
        args, env = ["--token-file", str(token_file)], {}
    elif how == "--token-from-env":
        args, env = ["--token-from-env"], {"CLONEQUEUE_API_TOKEN": TOKEN}
    else:
        args, env = ["--token-from-env"], {"CLONEQUEUE_API_TOKEN_FILE": str(token_file)}
    child = _simulator(tmp_path, *args, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:"), line
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes()
        assert TOKEN.encode() not in cmdline
        url = line.rsplit(" ", 1)[1]
        assert _create_status(url, TOKEN) == 200  # accepted
        assert _create_status(url, "sim-token") == 401  # given tokens replace the default
    finally:
        child.terminate()
        _, err = child.communicate(timeout=10)
    assert TOKEN not in err.decode()


def test_the_simulator_says_when_the_environment_has_no_token(tmp_path: Path) -> None:
    child = _simulator(tmp_path, "--token-from-env", env={})
    _, err = child.communicate(timeout=60)
    assert child.returncode == 2
    assert "--token-from-env: neither CLONEQUEUE_API_TOKEN nor" in err.decode()


def test_the_token_option_says_a_command_line_is_visible(tmp_path: Path) -> None:
    done = clonequeue_cli("simulator", "--help", cwd=tmp_path, settings={"COLUMNS": "200"})
    assert "readable by every local user" in " ".join(done.stdout.split())


# --- 4. the validating helper process holds no secret in its environment ----------------------


def test_the_validating_helper_has_no_secret_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "CLONEQUEUE_API_TOKEN": TOKEN,
        "CLONEQUEUE_WEBHOOK_SECRET": WHSEC,
        "CLONEQUEUE_FLOWER_BASIC_AUTH": f"ops:{FLOWER}",
        "CLONEQUEUE_REDIS_URL": f"redis://:{REDIS_PW}@127.0.0.1:1/0",
        "CLONEQUEUE_API_TOKEN_FILE": "/run/secrets/jimmyai-token",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(parallel, "CHILD_MIN_BYTES", 0)
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", spy)  # the module parallel.py calls it in
    path = write_jsonl(tmp_path / "jobs.jsonl", [row(f"e{i}") for i in range(2000)])
    source = row_source(path)
    assert parallel.use_child(source)
    with parallel.checked_chunks(source, tmp_path / "seen.db", batch_id="b", child=True) as pieces:
        # Read while it runs: it blocks on its full pipe until we read.
        environ = Path(f"/proc/{started[0].pid}/environ").read_bytes().decode()
        rows = sum(len(chunk.checked) for chunk, _, _ in pieces)
    assert rows == 2000  # it still does its work
    assert leaks(environ) == [], environ
    assert "jimmyai-token" not in environ
    assert "CLONEQUEUE_" not in environ


# --- 6. webhooks --json masks the delivery URL -------------------------------------------------


def test_webhooks_json_masks_the_delivery_url(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    clonequeue.submit([row("wj1")], batch="wj", services=services, webhook=HOOK)
    results = Results(services.redis, services.settings)
    services.redis.set(results.keys.job("job-wj"), "{}")
    url = f"https://{TOKEN}@hooks.example.com/in?token={TOKEN}&sig={TOKEN}"
    doc = {"batch": "wj", "job": "job-wj", "type": "job.completed", "url": url, "body": "{}"}
    assert results.webhooks.add("wh-wj", doc, now=time.time())
    listed = cli(tmp_path, redis_url, "webhooks", "wj", "--json")
    assert listed.returncode == 0, listed.stderr
    assert leaks(listed.stdout + listed.stderr) == [], listed.stdout
    (line,) = listed.stdout.splitlines()
    assert json.loads(line)["url"] == "https://***@hooks.example.com/in?token=***&sig=***"
