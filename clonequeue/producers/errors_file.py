"""The errors file: one JSON line per rejected row, with the row as read and the reasons.

Written only when rows are rejected, so its presence alone says "look here". A file
left at the same path by an earlier run is replaced (or removed when nothing was
rejected this time), so it never describes another run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from clonequeue.producers.errors import ProducerError
from clonequeue.producers.rows import RowError
from clonequeue.producers.sources import STDIN_LABEL


def default_errors_path(label: str) -> Path:
    """``<input>.errors.jsonl`` next to the input; ``stdin.errors.jsonl`` for stdin."""
    if label == STDIN_LABEL:
        return Path("stdin.errors.jsonl")
    return Path(f"{label}.errors.jsonl")


class ErrorsFile:
    """Opened at the first rejected row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._out: IO[str] | None = None

    def check_writable(self) -> None:
        """Fail before anything is submitted, not at the first rejected row."""
        target = self.path if self.path.exists() else self.path.parent
        if not os.access(target if str(target) else ".", os.W_OK):
            raise self._unwritable("permission denied or no such directory")

    def _unwritable(self, why: str) -> ProducerError:
        return ProducerError(
            f"cannot write the errors file {self.path}: {why}; "
            "pass --errors FILE (errors=) somewhere writable"
        )

    def write(self, error: RowError) -> None:
        # Serialised before the file is opened: a row that cannot be written never
        # leaves an empty errors file behind.
        line = json.dumps(error.to_record(), ensure_ascii=False, default=str) + "\n"
        if self._out is None:
            try:
                # backslashreplace: a byte that was not UTF-8 (kept as a lone surrogate)
                # is written as the JSON escape \udcXX, so every line stays valid JSON
                self._out = self.path.open("w", encoding="utf-8", errors="backslashreplace")
            except OSError as exc:
                raise self._unwritable(exc.strerror or str(exc)) from None
        self._out.write(line)
        self.count += 1

    def close(self) -> None:
        """Finish the file; remove a stale one when nothing was rejected this run."""
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self.path.is_file():
            self.path.unlink()
