"""Run the ``clonequeue`` CLI as a pipeline does: a child process, settings from its env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def clonequeue_cli(
    *args: str,
    cwd: Path,
    settings: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m clonequeue ARGS``: the caller's ``CLONEQUEUE_*`` variables dropped,
    ``settings`` added (so nothing of the developer's shell leaks into a test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    env.update(settings or {})
    done = subprocess.run(
        [sys.executable, "-m", "clonequeue", *args],
        env=env,
        cwd=cwd,
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )
