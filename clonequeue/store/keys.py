"""Every Redis key clonequeue uses, in one place (documented in README, "Redis keys")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one namespace prefix (``CLONEQUEUE_NAMESPACE``, default ``clonequeue``)."""

    ns: str

    def job(self, job_id: str) -> str:
        """STRING: the job's JSON document (its custom_id is its id)."""
        return f"{self.ns}:job:{job_id}"

    def batch(self, batch_id: str) -> str:
        """HASH: created_at, total, a counter per job state, finished_at."""
        return f"{self.ns}:batch:{batch_id}"

    def batch_purged(self, batch_id: str) -> str:
        """STRING with a TTL of a day: when the batch was purged; a submit that began
        before it stops (create_jobs.lua)."""
        return f"{self.ns}:batch:{batch_id}:purged"

    def batch_jobs(self, batch_id: str) -> str:
        """LIST: the batch's job ids in submission order."""
        return f"{self.ns}:batch:{batch_id}:jobs"

    @property
    def batches(self) -> str:
        """ZSET: batch ids scored by creation time."""
        return f"{self.ns}:batches"

    @property
    def due(self) -> str:
        """ZSET: steps a worker scheduled, scored by when their message should run."""
        return f"{self.ns}:due"

    @property
    def inflight(self) -> str:
        """SET: steps holding one of the max_in_flight slots (submitting or running)."""
        return f"{self.ns}:inflight"

    def parked(self, kind: str) -> str:
        """ZSET per kind ('clone', 'audio'): steps waiting for a slot or for the pause to lift."""
        return f"{self.ns}:parked:{kind}"

    @property
    def paused(self) -> str:
        """STRING (JSON): why creates are paused fleet-wide; absent when not paused."""
        return f"{self.ns}:paused"

    @property
    def data_marker(self) -> str:
        """STRING: set once (when, and a random part); gone later means Redis lost its data."""
        return f"{self.ns}:store:marker"

    @property
    def unknown_streak(self) -> str:
        """STRING (counter, TTL 1 day): creates in a row, fleet-wide, that ended unknown."""
        return f"{self.ns}:unknown_streak"

    @property
    def probe(self) -> str:
        """STRING: the one parked step allowed through while paused, to test the API."""
        return f"{self.ns}:probe"

    @property
    def stats(self) -> str:
        """HASH: fleet-wide counters (chars_submitted, chars_refunded, ...)."""
        return f"{self.ns}:stats"

    @property
    def events(self) -> str:
        """STREAM: one entry per job reaching a terminal state (job, batch, state, at)."""
        return f"{self.ns}:events"

    @property
    def cooldown(self) -> str:
        """STRING with a TTL: set after a 429; no worker calls the API until it expires."""
        return f"{self.ns}:cooldown"

    def rate_state(self, token_id: str) -> str:
        """HASH with a TTL: the adaptive API rate of one token (workers/rate_lua.py): the
        pace, where 429s began, counters. Named by a one-way hash of the token."""
        return f"{self.ns}:rate:state:{token_id}"

    @property
    def rate_current(self) -> str:
        """STRING with a TTL: the rate state key the workers last reserved on, so a reader
        with no token (the exporter, `status --watch` in a shell) finds the fleet's."""
        return f"{self.ns}:rate:current"

    def task_owner(self, remote_id: str) -> str:
        """STRING with the retention as TTL: the step (``job|item``) the API gave this task
        id to. A long or odd id is named by its SHA-256."""
        if len(remote_id) > 100 or not remote_id.isascii() or not remote_id.isprintable():
            remote_id = "sha256:" + hashlib.sha256(remote_id.encode()).hexdigest()
        return f"{self.ns}:task:{remote_id}"

    @property
    def watchdog_lock(self) -> str:
        return f"{self.ns}:lock:watchdog"

    @property
    def workers(self) -> str:
        """HASH: worker name → JSON (``at``: fleet time last seen, ``pid``); written every
        few seconds by each running worker (store/presence.py)."""
        return f"{self.ns}:workers"

    @property
    def watchdog_last(self) -> str:
        """STRING with a TTL of a day: the fleet time the last watchdog pass ran."""
        return f"{self.ns}:watchdog:last"

    @property
    def rate_timeline(self) -> str:
        """STRING with a TTL: the next free API call slot (µs, Redis clock) of the rate limit."""
        return f"{self.ns}:rate"

    @property
    def rate_sends(self) -> str:
        """HASH with a TTL: the timeline's slots of the last ~3 s, counted per 50 ms: what
        the provider's window held when it answered 429 (workers/rate_lua.py)."""
        return f"{self.ns}:rate:sends"
