"""The due-index: every outstanding message of a step, by when it should have run.

`<ns>:due` is a ZSET of ``item|job_id`` scored by the time the step's next message
should run at the latest. The Lua script that records a step's new state writes its
entry in the same atomic call — the first create included (create_jobs.lua), every
countdown retry, every poll, every re-drive — and removes it when the step needs no
message (finished, parked, failed). So "a step is open and nothing will move it" is
exactly "its entry is overdue", whatever happened to the message itself.

The watchdog reads it here; the scripts alone write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from clonequeue.store.jobs import Dispatch
from clonequeue.store.keys import Keys

# A backlog postpones a re-drive while no worker has taken a message queued more than
# this after the step's own (FIFO queues; the slack covers producers publishing a
# chunk, and messages prefetched together running in any order).
HEAD_SLACK_S = 10.0


@dataclass(frozen=True, slots=True)
class Overdue:
    job_id: str
    item: str
    due_at: float


class DueIndex:
    def __init__(self, client: redis.Redis, keys: Keys, grace_s: float) -> None:
        self._client = client
        self._keys = keys
        self.grace_s = grace_s

    def overdue(self, *, now: float, limit: int) -> list[Overdue]:
        """Steps whose message is later than the grace period, oldest first."""
        members = self._client.zrangebyscore(
            self._keys.due, "-inf", now - self.grace_s, start=0, num=limit, withscores=True
        )
        found = []
        for member, score in cast(list[tuple[str, float]], members):
            item, job_id = str(member).split("|", 1)
            found.append(Overdue(job_id, item, float(score)))
        return found

    def count_overdue(self, *, now: float) -> int:
        return int(self._client.zcount(self._keys.due, "-inf", now - self.grace_s))

    def defer(self, step: Dispatch, *, until: float) -> None:
        """A message sent again later (our own pacing): its entry moves to ``until``.

        Only an entry that exists is moved, and only later (ZADD XX GT): a step that
        moved on meanwhile keeps what its own script wrote.
        """
        self._client.zadd(self._keys.due, {f"{step.item}|{step.job_id}": until}, xx=True, gt=True)

    def due_at(self, job_id: str, item: str) -> float | None:
        score = self._client.zscore(self._keys.due, f"{item}|{job_id}")
        return None if score is None else float(score)
