"""Fleet-wide switches and counters: the pause flag, slots in flight, characters spent."""

from __future__ import annotations

import json
from typing import Any

import redis

from clonequeue.store.jobs import Dispatch, JobStore


class Fleet:
    """What every worker shares: whether creates may go out, and what has been spent."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.client: redis.Redis = jobs.client
        self.keys = jobs.keys

    def pause_reason(self) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.paused)
        return json.loads(raw) if raw else None

    def pause(self, reason: str, *, now: float, kind: str = "manual") -> None:
        """Stop new creates on every worker; polls of running tasks go on."""
        self.client.set(
            self.keys.paused, json.dumps({"kind": kind, "reason": reason, "since": now})
        )

    def resume(self, *, now: float) -> list[Dispatch]:
        """Lift the pause; returns the parked steps released into free slots."""
        self.client.delete(self.keys.paused, self.keys.probe)
        return self.jobs.unpark(now=now)

    def snapshot(self) -> dict[str, Any]:
        """Slots in use, parked and due steps, characters spent: for status and metrics."""
        pipe = self.client.pipeline(transaction=False)
        pipe.scard(self.keys.inflight)
        pipe.zcard(self.keys.parked("clone"))
        pipe.zcard(self.keys.parked("audio"))
        pipe.zcard(self.keys.due)
        pipe.hgetall(self.keys.stats)
        pipe.get(self.keys.paused)
        inflight, parked_clone, parked_audio, due, stats, paused = pipe.execute()
        return {
            "in_flight": int(inflight),
            "parked": int(parked_clone) + int(parked_audio),
            "due": int(due),
            "chars_submitted": int(stats.get("chars_submitted", 0)),
            "chars_refunded": int(stats.get("chars_refunded", 0)),
            "paused": json.loads(paused) if paused else None,
        }
