"""A worker that would reach the real (billing) API by default says so, once, on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clonequeue.cli.worker_cmd import real_api_notice
from clonequeue.config import load_settings
from clonequeue.local import ManagedProcess

NOTICE = "note: CLONEQUEUE_API_BASE_URL is not set, so this worker sends jobs to the real"


def start_worker(tmp_path: Path, env: dict[str, str], name: str) -> str:
    """Start ``clonequeue worker`` (no jobs: it calls no API), return its log once ready."""
    process = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "worker", f"--hostname={name}@%h", "-c", "1"],
        log_path=tmp_path / f"{name}.log",
        env={**env, "CLONEQUEUE_API_TOKEN": "sk-test-notice", "CLONEQUEUE_NAMESPACE": name},
        cwd=tmp_path,
        name=name,
    )
    with process:
        process.wait_ready(line="ready.", timeout_s=60)
        return process.log_path.read_text()


def test_a_worker_on_the_default_base_url_says_it_reaches_the_real_api(
    tmp_path: Path, tmp_env: dict[str, str]
) -> None:
    log = start_worker(tmp_path, tmp_env, "dflt")
    assert log.count(NOTICE) == 1, log[-3000:]
    assert "https://www.jimmyai.cn, billed to your token" in log
    assert "CLONEQUEUE_API_BASE_URL=http://127.0.0.1:8765" in log


def test_a_base_url_set_explicitly_is_a_choice_and_gets_no_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLONEQUEUE_API_BASE_URL", raising=False)
    env_file = tmp_path / ".env"
    for value in ("http://127.0.0.1:8765", "https://www.jimmyai.cn"):
        env_file.write_text(f"CLONEQUEUE_API_BASE_URL={value}\n")
        assert real_api_notice(load_settings(env_file=env_file)) is None
    env_file.write_text("")
    assert (real_api_notice(load_settings(env_file=env_file)) or "").startswith(NOTICE)
