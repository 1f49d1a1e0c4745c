"""Child processes (Redis, the simulator, Celery workers, Flower) that must never leak.

Each child runs in its own process group, so stopping it also stops whatever it
spawned (Celery's pool, a shell's children), and a Ctrl-C in the terminal reaches
only our process, which then stops the children in order. Its stdout and stderr
go to a log file, whose tail is quoted when it fails to start. Every child still
running when the interpreter exits is stopped by an ``atexit`` hook, so an
interrupted test run or demo leaves nothing behind (a SIGKILL of the parent
still can: nothing runs then).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Self

from clonequeue.errors import ClonequeueError
from clonequeue.local.live import LiveSet

_ERROR_TAIL_LINES = 5
_TAIL_READ_BYTES = 64 * 1024


class LocalServiceError(ClonequeueError):
    """A server or worker we run on this machine could not be started or never got ready."""


class ManagedProcess:
    """One child process in its own process group, logging to ``log_path``.

    Use it as a context manager (``__enter__`` starts it unless started, ``__exit__``
    terminates it), or call :meth:`start` and :meth:`terminate` yourself. A stopped
    process may be started again; its log is appended to.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self.argv = [os.fspath(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        self._log_path = Path(log_path)
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Start the child; raises :class:`LocalServiceError` if it cannot be executed."""
        if self.is_running:
            raise LocalServiceError(f"{self.name} is already running (pid {self.pid})")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:
            self._log_start = log.tell()
            try:
                popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=self._cwd,
                    start_new_session=True,  # own process group: stop it with its children
                )
            except OSError as exc:
                raise LocalServiceError(
                    f"cannot start {self.name} ({self.argv[0]}): {exc.strerror or exc}"
                ) from exc
        self._popen = popen
        _live.add(self)
        return self

    def wait_ready(
        self,
        probe: Callable[[], bool] | None = None,
        *,
        line: str | None = None,
        timeout_s: float = 30.0,
        interval_s: float = 0.05,
    ) -> Self:
        """Block until ``probe()`` returns True or ``line`` appears in this run's log.

        Either one is enough when both are given; ``probe`` should return False, not
        raise, while the service is not up. Raises :class:`LocalServiceError` with the
        log tail if the process exits first or ``timeout_s`` passes (the process is
        left running then: stop it, or let the context manager do it).
        """
        if probe is None and line is None:
            raise ValueError("wait_ready needs a probe, a line, or both")
        popen = self._require_started()
        scanner = _LogScanner(self._log_path, self._log_start, line) if line else None
        deadline = time.monotonic() + timeout_s
        while True:
            if scanner is not None and scanner.found():
                return self
            if probe is not None and probe():
                return self
            returncode = popen.poll()
            if returncode is not None:
                raise LocalServiceError(
                    f"{self.name} exited with {_describe_exit(returncode)} before it was ready"
                    f"{self._error_tail()}"
                )
            if time.monotonic() >= deadline:
                raise LocalServiceError(
                    f"{self.name} (pid {popen.pid}) was not ready within {timeout_s:g} s"
                    f"{self._error_tail()}"
                )
            time.sleep(interval_s)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit code once the process ends, or None if it still runs after ``timeout_s``."""
        popen = self._require_started()
        try:
            return popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL it after ``timeout_s``; returns the exit code.

        Whatever is left in the group once the leader is gone (a grandchild that
        ignored SIGTERM) is killed too. Safe to call more than once.
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait()
        self._signal_group(signal.SIGKILL)
        _live.discard(self)
        return popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole group at once, as a crash would; returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        self._signal_group(signal.SIGKILL)
        popen.wait()
        _live.discard(self)
        return popen.returncode

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the leader only (e.g. SIGTERM to test its own shutdown)."""
        self._require_started().send_signal(signum)

    def __enter__(self) -> Self:
        if self._popen is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.terminate()

    # --- state ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The leader's pid (also its process group id), once started."""
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit code once ended (negative: killed by that signal), else None."""
        return self._popen.poll() if self._popen is not None else None

    @property
    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines this run wrote (earlier runs in the same file are skipped)."""
        try:
            with open(self._log_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_start, size - _TAIL_READ_BYTES))
                data = log.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-n:])

    # --- helpers -------------------------------------------------------------------

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise LocalServiceError(f"{self.name} was never started")
        return self._popen

    def _signal_group(self, signum: int) -> None:
        if self._popen is None:
            return
        # ProcessLookupError: the group is gone; PermissionError: only zombies left (macOS).
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def _error_tail(self) -> str:
        """The log tail folded into one line, so the error stays one line."""
        lines = [ln.strip() for ln in self.log_tail(_ERROR_TAIL_LINES).splitlines() if ln.strip()]
        where = f" (log: {self._log_path})"
        if not lines:
            return f"; it printed nothing{where}"
        return f"; last log lines: {' | '.join(lines)}{where}"

    def __repr__(self) -> str:
        state = "running" if self.is_running else f"returncode={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


class _LogScanner:
    """Looks for a substring in the part of a log written since ``start``, reading only news."""

    def __init__(self, path: Path, start: int, needle: str) -> None:
        self._path = path
        self._pos = start
        self._needle = needle.encode()
        self._carry = b""  # the end of the previous read, for a needle split across reads

    def found(self) -> bool:
        try:
            with open(self._path, "rb") as log:
                log.seek(self._pos)
                chunk = log.read()
        except FileNotFoundError:
            return False
        if not chunk:
            return False
        window = self._carry + chunk
        if self._needle in window:
            return True
        self._pos += len(chunk)
        keep = len(self._needle) - 1
        self._carry = window[-keep:] if keep else b""
        return False


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


# --- the leak guard ------------------------------------------------------------------

_live: LiveSet[ManagedProcess] = LiveSet()


def terminate_all(timeout_s: float = 5.0) -> None:
    """Stop every child started here and not stopped yet; runs at interpreter exit.

    All groups get SIGTERM at once, then share one ``timeout_s`` before SIGKILL.
    """
    processes = _live.snapshot()
    for process in processes:
        if process.is_running:
            process._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.terminate(max(0.0, deadline - time.monotonic()))


atexit.register(terminate_all)
