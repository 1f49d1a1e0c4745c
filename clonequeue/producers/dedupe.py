"""Which custom_ids this input has used already, on disk so memory stays flat.

A custom_id seen again with the same content is a harmless repeat (skipped); with
other content it is a per-row error naming the line that used it first. The index
is a SQLite file in the submission's temporary directory: a million ids take about
40 MB of disk and a bounded page cache, where a Python dict would take ~150 MB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE_KIB = 8192


@dataclass(frozen=True, slots=True)
class SeenBefore:
    """The earlier row that used a custom_id: its line, and whether its content was the same."""

    line: int
    same_content: bool


class SeenIds:
    """custom_id → (content hash, first line), checked and filled a chunk at a time."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(
            f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -{CACHE_KIB};
            CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, h TEXT, line INTEGER)
                WITHOUT ROWID;
            """
        )

    def check(self, items: Sequence[tuple[str, str, int]]) -> list[SeenBefore | None]:
        """For each (custom_id, content hash, line): the earlier row, or None and remember it."""
        if not items:
            return []
        ids = list({custom_id for custom_id, _, _ in items})
        known: dict[str, tuple[str, int]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for custom_id, h, line in self._db.execute(
                f"SELECT id, h, line FROM seen WHERE id IN ({marks})", part
            ):
                known[custom_id] = (h, line)
        out: list[SeenBefore | None] = []
        new: list[tuple[str, str, int]] = []
        for custom_id, h, line in items:
            earlier = known.get(custom_id)
            if earlier is None:
                known[custom_id] = (h, line)
                new.append((custom_id, h, line))
                out.append(None)
            else:
                out.append(SeenBefore(earlier[1], earlier[0] == h))
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", new)
        self._db.execute("COMMIT")
        return out

    def close(self) -> None:
        self._db.close()
