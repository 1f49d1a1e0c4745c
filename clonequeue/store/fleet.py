"""Fleet-wide switches and counters: the pause flag, slots in flight, characters spent."""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from clonequeue.api.responses import retry_after_text
from clonequeue.store.jobs import Dispatch, JobStore


class Fleet:
    """What every worker shares: whether creates may go out, and what has been spent."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.client: redis.Redis = jobs.client
        self.keys = jobs.keys

    def pause_reason(self) -> dict[str, Any] | None:
        """Why calls are held fleet-wide (``{kind, reason, since}``), or None: a pause of
        creates, else a long Retry-After every worker waits out (kind ``retry_after``)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.paused)
        pipe.get(self.keys.cooldown)
        pipe.pttl(self.keys.cooldown)
        paused, cooldown, cooldown_ms = pipe.execute()
        if paused:
            return cast(dict[str, Any], json.loads(paused))
        if cooldown and cooldown_ms > 0:
            return _retry_after_wait(cooldown, cooldown_ms / 1000)
        return None

    def pause(self, reason: str, *, now: float, kind: str = "manual") -> None:
        """Stop new creates on every worker; polls of running tasks go on."""
        self.client.set(
            self.keys.paused, json.dumps({"kind": kind, "reason": reason, "since": now})
        )

    def resume(self, *, now: float) -> list[Dispatch]:
        """Lift the pause, and end a Retry-After wait early (the operator's call: a
        provider may answer 429 with a day); returns the parked steps released."""
        # a wait's cut also moved the fleet's next free slot past it (workers/rate_lua.py)
        self.client.delete(
            self.keys.paused, self.keys.probe, self.keys.cooldown, self.keys.rate_timeline
        )
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
        pipe.pttl(self.keys.cooldown)
        inflight, parked_clone, parked_audio, due, stats, paused, wait_ms = pipe.execute()
        return {
            "in_flight": int(inflight),
            "parked": int(parked_clone) + int(parked_audio),
            "due": int(due),
            "chars_submitted": int(stats.get("chars_submitted", 0)),
            "chars_refunded": int(stats.get("chars_refunded", 0)),
            "paused": json.loads(paused) if paused else None,
            "api_wait_s": max(wait_ms, 0) / 1000,  # a long Retry-After every worker waits out
        }


def _retry_after_wait(raw: bytes | str, remaining_s: float) -> dict[str, Any]:
    """The fleet-wide wait a long Retry-After set (workers/rate_lua.py writes its value)."""
    try:
        told = json.loads(raw)
    except ValueError:
        told = {}
    told = told if isinstance(told, dict) else {}
    retry_after_s = float(told.get("retry_after_s") or remaining_s)
    return {
        "kind": "retry_after",
        "reason": f"the API answered 429 with Retry-After {retry_after_text(retry_after_s)}: "
        f"no worker calls it for {remaining_s:.0f} s more (`clonequeue resume` ends the wait "
        "now)",
        "since": told.get("since"),
        "remaining_s": round(remaining_s, 1),
    }
