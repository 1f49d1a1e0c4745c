"""Every command's ``--help`` is complete and accurate: no type markers, real defaults."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import typer.main

from clonequeue.cli.help_text import tidy
from clonequeue.cli.main import app

MARKER = re.compile(r"<(str|bool|int|float|path|dir|file|list\[str\])( range)?>")


def commands() -> list[tuple[str, ...]]:
    group = typer.main.get_command(app)
    found: list[tuple[str, ...]] = [()]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        found.append((name,))
        found += [(name, sub) for sub in getattr(command, "commands", {})]
    return found


def help_of(*path: str) -> str:
    command = tidy(typer.main.get_command(app))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit, Exception):
        command.main([*path, "--help"], prog_name="clonequeue", standalone_mode=True)
    return out.getvalue()


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "clonequeue")
def test_help_has_no_type_markers_and_every_option_says_what_it_does(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = help_of(*path)
    assert "Usage: clonequeue" in text, text
    assert not MARKER.search(text), MARKER.search(text)
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    for param in command.params:
        assert param.help, f"{' '.join(path)}: {param.name} has no help"


def test_submit_help_as_the_command_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clonequeue", "submit", "--help"],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "Default: <FILE>.errors.jsonl next to the input" in out
    assert re.search(r"--max-chars\s+INTEGER \[x>=1\]", out)
    assert re.search(r"--dry-run\s+Validate and print", out)  # a flag takes no value
    assert not MARKER.search(out)
