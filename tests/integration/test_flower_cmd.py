"""``clonequeue flower``: the login is required, memory is bounded, secrets stay hidden.

Refusals run the real CLI; the running-Flower tests start ``clonequeue flower`` on
the suite's Redis and talk to it over HTTP.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import urllib3

from clonequeue.cli.flower_cmd import (
    DEFAULT_MAX_TASKS,
    MANAGED_OPTIONS,
    flower_argv,
    is_loopback,
)
from clonequeue.local import LocalServiceError, ManagedProcess, free_port

PASSWORD = "pw-Zq81-never-shown"
LOGIN = f"operator:{PASSWORD}"


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clonequeue", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def get(url: str, *, login: str | None = None) -> urllib3.BaseHTTPResponse:
    headers = {}
    if login is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    return urllib3.request("GET", url, headers=headers, timeout=10, retries=False)


def healthy(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/healthcheck").status == 200
    except urllib3.exceptions.HTTPError:
        return False


# --- the arguments handed to Flower -------------------------------------------------------


def base_argv(**overrides: object) -> list[str]:
    options: dict[str, object] = {
        "address": "127.0.0.1",
        "port": 5555,
        "max_tasks": DEFAULT_MAX_TASKS,
        "purge_offline_s": 3600,
        "log_level": "INFO",
        "basic_auth": LOGIN,
    }
    options.update(overrides)
    return flower_argv(**options)  # type: ignore[arg-type]


def test_flower_keeps_a_bounded_number_of_tasks_in_memory_only() -> None:
    argv = base_argv(max_tasks=2500)
    assert argv[0] == "flower"
    assert "--max_tasks=2500" in argv
    assert "--persistent=False" in argv
    assert f"--basic_auth={LOGIN}" in argv
    assert "--purge_offline_workers=3600" in argv
    columns = next(a for a in argv if a.startswith("--tasks_columns="))
    assert "args" in columns.split("=", 1)[1].split(",")


def test_flower_without_login_gets_no_basic_auth_option() -> None:
    assert not any(a.startswith("--basic_auth") for a in base_argv(basic_auth=None))


@pytest.mark.parametrize(
    "extra",
    [
        ["--address=0.0.0.0"],
        ["--port", "80"],
        ["--basic-auth=x:y"],
        ["--basic_auth=x:y"],
        ["--max_tasks=0"],
        ["--persistent=True"],
        ["--conf=other.py"],
        ["--unix-socket=/tmp/f.sock"],
    ],
)
def test_options_the_command_manages_cannot_be_passed_through(extra: list[str]) -> None:
    with pytest.raises(ValueError, match="set by clonequeue flower itself"):
        base_argv(extra=extra)


def test_other_flower_options_pass_through_unchanged() -> None:
    argv = base_argv(extra=["--url_prefix=flower", "--inspect_timeout=5000"])
    assert argv[-2:] == ["--url_prefix=flower", "--inspect_timeout=5000"]


def test_every_option_given_or_managed_is_a_real_flower_option() -> None:
    from flower.command import is_flower_option

    for arg in base_argv()[1:]:
        assert is_flower_option(arg), arg
    for name in MANAGED_OPTIONS:
        assert is_flower_option(f"--{name}"), name
    assert not is_flower_option("--no_such_option")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.5", False),
        ("flower.example.com", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


# --- refusals, through the real CLI ---------------------------------------------------------


def test_refuses_to_start_without_a_login(tmp_env: dict[str, str], tmp_path: Path) -> None:
    done = run_cli("flower", "--port", str(free_port()), env=tmp_env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: CLONEQUEUE_FLOWER_BASIC_AUTH is not set: export user:password for Flower's "
        "login (or run `clonequeue flower --no-auth` on 127.0.0.1 only)"
    ]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.7"])
def test_no_auth_is_refused_off_loopback(
    tmp_env: dict[str, str], tmp_path: Path, address: str
) -> None:
    done = run_cli("flower", "--no-auth", "--address", address, env=tmp_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "--no-auth is only allowed on a loopback address" in done.stderr


def test_a_malformed_login_is_refused_without_echoing_it(
    tmp_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**tmp_env, "CLONEQUEUE_FLOWER_BASIC_AUTH": "no-colon-Zq81secret"}
    done = run_cli("flower", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "CLONEQUEUE_FLOWER_BASIC_AUTH must be user:password" in done.stderr
    assert "Zq81secret" not in done.stderr + done.stdout


def test_config_show_never_prints_the_login(tmp_env: dict[str, str], tmp_path: Path) -> None:
    env = {**tmp_env, "CLONEQUEUE_FLOWER_BASIC_AUTH": LOGIN}
    done = run_cli("config", "show", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "CLONEQUEUE_FLOWER_BASIC_AUTH=********** (set)" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


# --- a running Flower ------------------------------------------------------------------------


@contextmanager
def start_flower(
    tmp_env: dict[str, str], tmp_path: Path, *args: str, login: str | None
) -> Iterator[tuple[ManagedProcess, int]]:
    env = dict(tmp_env)
    if login is not None:
        env["CLONEQUEUE_FLOWER_BASIC_AUTH"] = login
    for attempt in range(3):
        # free_port's port may be taken before Flower binds it (another test's client
        # socket got it: seen once in a parallel run); a new port then, not a failure
        port = free_port()
        process = ManagedProcess(
            [sys.executable, "-m", "clonequeue", "flower", "--port", str(port), *args],
            log_path=tmp_path / f"flower-{attempt}.log",
            env=env,
            cwd=tmp_path,
            name="flower",
        )
        with process:
            try:
                process.wait_ready(lambda port=port: healthy(port), timeout_s=60)
            except LocalServiceError as exc:
                if "Address already in use" in str(exc) and attempt < 2:
                    continue
                raise
            yield process, port
            return


@pytest.fixture
def flower(tmp_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[ManagedProcess, int]]:
    with start_flower(tmp_env, tmp_path, login=LOGIN) as started:
        yield started


def test_the_ui_and_api_need_the_login(flower: tuple[ManagedProcess, int]) -> None:
    _, port = flower
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks"):
        anonymous = get(base + path)
        assert anonymous.status == 401, path
        assert get(base + path, login="operator:wrong").status == 401, path
    anonymous = get(base + "/workers")
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert get(base + "/workers", login=LOGIN).status == 200
    assert get(base + "/api/workers", login=LOGIN).status == 200


def test_metrics_and_healthcheck_answer_without_the_login(
    flower: tuple[ManagedProcess, int],
) -> None:
    """Flower's known gap (flower #1342), which deploy/ and the README ("Flower") work around.

    If this fails, Flower now protects them: update the docs and the probes.
    """
    _, port = flower
    metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert metrics.status == 200
    assert b"flower_" in metrics.data
    assert get(f"http://127.0.0.1:{port}/healthcheck").data == b"OK"


def test_the_login_is_not_on_the_command_line_nor_in_the_log(
    flower: tuple[ManagedProcess, int],
) -> None:
    process, port = flower
    assert get(f"http://127.0.0.1:{port}/workers", login=LOGIN).status == 200
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert b"flower" in cmdline
    assert PASSWORD.encode() not in cmdline
    log = process.log_path.read_text()
    assert "Visit me at http://127.0.0.1:" in log
    assert PASSWORD not in log


def test_no_auth_on_loopback_serves_the_ui_without_a_login(
    tmp_env: dict[str, str], tmp_path: Path
) -> None:
    with start_flower(tmp_env, tmp_path, "--no-auth", login=None) as (_, port):
        assert get(f"http://127.0.0.1:{port}/workers").status == 200
        # Flower keeps its API closed when it has no login at all.
        assert get(f"http://127.0.0.1:{port}/api/workers").status == 401
