"""Which workers are running, and whether the watchdog does: each says so in Redis.

A batch whose jobs sit ``pending`` looks the same whether the workers are busy or
none was ever started; Celery's own heartbeats are events (off with ``--no-events``)
that only a live listener sees. So each worker writes its name and the fleet time
into one hash every few seconds, each watchdog pass its time, and ``status`` and the
exporter read both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import redis

from clonequeue.store.keys import Keys

BEAT_EVERY_S = 5.0  # how often a worker says it runs
LIVE_WITHIN_S = 20.0  # seen this recently: running (three beats missed: gone)
FORGET_AFTER_S = 86_400.0  # entries older than a day are dropped when read


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    at: float  # fleet time
    stopped: bool = False  # it said so on a clean stop

    def age(self, now: float) -> float:
        return max(0.0, now - self.at)


@dataclass(frozen=True)
class Seen:
    """The workers seen in the last day (most recent first), and the last watchdog pass."""

    workers: list[WorkerSeen]
    watchdog_at: float | None

    def running(self, now: float) -> list[WorkerSeen]:
        return [w for w in self.workers if not w.stopped and w.age(now) <= LIVE_WITHIN_S]


class Presence:
    """The ``<ns>:workers`` hash and the ``<ns>:watchdog:last`` time."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def mark(self, name: str, *, now: float, pid: int, stopped: bool = False) -> None:
        """The worker ``name`` runs (or, ``stopped``, has just stopped cleanly: not running
        from now, rather than 20 s later)."""
        doc = {"at": now, "pid": pid, **({"stopped": True} if stopped else {})}
        self.client.hset(self.keys.workers, name, json.dumps(doc))

    def watchdog_ran(self, *, now: float) -> None:
        self.client.set(self.keys.watchdog_last, repr(now), ex=int(FORGET_AFTER_S))

    def seen(self, *, now: float) -> Seen:
        """What was seen; entries older than a day are dropped."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.workers)
        pipe.get(self.keys.watchdog_last)
        raw, watchdog = pipe.execute()
        workers, stale = [], []
        for name, value in raw.items():
            label = name.decode() if isinstance(name, bytes) else str(name)
            doc = _decoded(value)
            if doc is None or now - doc["at"] > FORGET_AFTER_S:
                stale.append(label)
            else:
                workers.append(WorkerSeen(label, doc["at"], bool(doc.get("stopped"))))
        if stale:
            self.client.hdel(self.keys.workers, *stale)
        workers.sort(key=lambda w: w.at, reverse=True)
        return Seen(workers, float(watchdog) if watchdog is not None else None)


def _decoded(value: Any) -> dict[str, Any] | None:
    """A worker's entry, its ``at`` a float; None if unreadable."""
    try:
        doc = json.loads(value)
        doc["at"] = float(doc["at"])
    except (ValueError, TypeError, KeyError):
        return None
    return doc if isinstance(doc, dict) else None


def absence_note(seen: Seen, *, now: float, watchdog_interval_s: float) -> str | None:
    """What to tell someone waiting on a batch when no worker, or no watchdog, runs."""
    start = "start one with `clonequeue worker` (with --beat unless a `clonequeue beat` runs)"
    running = seen.running(now)
    if not running:
        if not seen.workers:
            # workers older than this code run and say nothing (a rolling upgrade): said
            return (
                "no worker has run in this namespace (CLONEQUEUE_NAMESPACE) in the last day: "
                f"nothing moves until one does; {start} (workers from before 2026-12-07 do "
                "not say they run: if yours do, upgrade them)"
            )
        last = seen.workers[0]
        return (
            f"no worker running: the last one seen ({last.name}) stopped "
            f"{last.age(now):.0f} s ago; nothing moves until one does: {start}"
        )
    late_after = 3 * watchdog_interval_s + LIVE_WITHIN_S
    if seen.watchdog_at is None or now - seen.watchdog_at > late_after:
        since = (
            "in the last day" if seen.watchdog_at is None else f"for {now - seen.watchdog_at:.0f} s"
        )
        # a beat may run while the workers that took its messages cannot run them (one
        # frozen with them prefetched, one cut from Redis): said, not "start a beat" (QA)
        return (
            f"no watchdog pass {since}, so lost messages are not sent again and waiting "
            "creates are not released: no beat runs (run one: `clonequeue worker --beat` on "
            "one worker, or `clonequeue beat`), or the workers that took its messages cannot "
            "run them (frozen, or cut from Redis: check their logs)"
        )
    return None


def _note_kind(note: str | None) -> str | None:
    """A note without its figures: the same kind of note, said again, is not news."""
    return None if note is None else re.sub(r"\d+", "N", note)


class NoteChanges:
    """The notes of a follower (``status --watch``, ``Batch.wait``), said when they change."""

    def __init__(self) -> None:
        self._said: str | None = None

    def news(self, note: str | None) -> str | None:
        """What to say for ``note`` (the note, or that it ended), or None: no change."""
        changed = _note_kind(note) != _note_kind(self._said)
        self._said = note
        return (note or "workers and the watchdog run again") if changed else None
