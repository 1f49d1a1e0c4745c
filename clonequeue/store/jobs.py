"""Worker-side state changes of jobs: each method is one Lua script, one round trip.

Every change checks the state and generation it leaves, so a duplicate or late
message finds the step moved on and does nothing (see lua/prelude.lua).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from clonequeue.store.keys import Keys
from clonequeue.store.records import CLONE_ITEM
from clonequeue.store.replicas import ReplicaWatch
from clonequeue.store.scripts import Scripts

log = logging.getLogger(__name__)

UNREPLICATED = "unreplicated"  # Skipped reason: the claim did not reach enough replicas
SAY_EVERY_S = 60.0  # undone claims are summed up in one line a minute


class _UndoneClaims:
    """Undone claims, said at most once a minute with their count (the rest of a minute's
    by a timer). One line each (a warning and an error) came by the hundred after every
    failover, for a state the replica window makes expected (QA pass: 195 pairs a minute)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said_at = float("-inf")
        self._count = self._master_only = 0
        self._last = ("", "", "")  # job id, why, the release's result
        self._timer: threading.Timer | None = None

    def said(self, job_id: str, why: str, release: str, *, master_only: bool) -> None:
        with self._lock:
            self._count += 1
            self._master_only += master_only
            self._last = (job_id, why, release)
            wait = self._said_at + SAY_EVERY_S - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._say)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._say()

    def _say(self) -> None:
        with self._lock:
            count, master, (job_id, why, release) = self._count, self._master_only, self._last
            self._count = self._master_only = 0
            self._said_at, self._timer = time.monotonic(), None
        if not count:
            return
        more = f"; {count - 1} more like it in the last minute" if count > 1 else ""
        log.warning(
            "create of job %s not sent: %s (release: %s)%s",
            job_id,
            why,
            release,
            more,
            extra={"job": job_id},
        )
        if master:
            log.error(
                "%d undone claim(s), the last of job %s, are on the Redis master only: a "
                "failover now may report them unknown, though no create was sent",
                master,
                job_id,
                extra={"job": job_id},
            )


_UNDONE = _UndoneClaims()
RECORD_WAITS = 3  # WAITs for a stored task id (or an undone claim) before it is logged as at risk


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A step to send a message for: create it (pending) or, with ``remote_id``, poll it."""

    job_id: str
    item: str  # "c" for the clone, else the audio's index
    gen: int
    remote_id: str | None = None

    @property
    def is_clone(self) -> bool:
        return self.item == CLONE_ITEM

    @classmethod
    def parse(cls, entry: str) -> Dispatch:
        """From the scripts' ``gen|item|job_id`` form."""
        gen, item, job_id = entry.split("|", 2)
        return cls(job_id=job_id, item=item, gen=int(gen))


@dataclass(frozen=True, slots=True)
class Claimed:
    """The step is ours to send: the request body and, for audios, the voice."""

    request: dict[str, Any]
    model_id: str
    clone_completed_at: float
    activated: bool
    attempts: int
    batch: str


@dataclass(frozen=True, slots=True)
class Created:
    """A create was stored: poll with ``gen`` (None: the step moved on, nothing to poll)."""

    gen: int | None
    resumed: bool = False  # the fleet pause was lifted by this success
    first_poll_s: float | None = None  # the batch's learned first-poll delay, if any


@dataclass(frozen=True, slots=True)
class PollCheck:
    """A poll's message is still wanted (``verdict`` ok), and what says if it is early."""

    verdict: str
    age_s: float | None = None  # since the remote task was created
    first_poll_s: float | None = None  # the batch's learned first-poll delay


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to do: ``reason`` is stale, gone, cancelled, or parked:<why>."""

    reason: str


ReleaseOutcome = Literal["retry", "paced", "blocked", "rejected", "unknown"]


@dataclass(frozen=True, slots=True)
class Released:
    result: str  # retry | parked | failed | unknown | stale | gone
    gen: int = 0
    dispatches: list[Dispatch] = field(default_factory=list)
    paused: str = ""  # the reason of the unknown_answers pause this release set, if it did


@dataclass(frozen=True, slots=True)
class Polled:
    """``again`` with the poll count so far, or done with follow-up steps to dispatch."""

    result: str  # again | done | stale | gone
    gen: int = 0
    polls: int = 0
    dispatches: list[Dispatch] = field(default_factory=list)
    batch: str = ""
    refused: int = 0  # again: polls of the task the API has refused in a row


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """The settings the scripts enforce."""

    max_in_flight: int
    budget_chars: int  # 0 = no budget
    retention_s: int
    grace_s: float
    job_deadline_s: float
    submit_max_attempts: int
    unknown_pause_after: int = 5  # unknown creates in a row that pause creates (0: never)
    first_poll_target: float = 0.0  # share of first polls that should find the task done
    first_poll_min_s: float = 5.0
    first_poll_max_s: float = 60.0
    first_poll_lag_s: float = 10.0  # a first poll comes at most this long after the first done
    task_lost_after_s: float = 600.0  # every poll refused this long: the API lost the task
    min_replicas: int = 0  # WAIT for this many replicas after a claim and a stored task id
    wait_timeout_ms: int = 500
    replica_window_s: float = 60.0  # and for every replica seen this recently (replicas.py)


class JobStore:
    """The transitions workers and the watchdog make."""

    def __init__(self, client: redis.Redis, keys: Keys, limits: StoreLimits) -> None:
        self.client = client
        self.keys = keys
        self.limits = limits
        self._scripts = Scripts(client)
        self._replicas = ReplicaWatch(client, window_s=limits.replica_window_s)

    def _run(self, name: str, now: float, *args: Any) -> list[Any]:
        # Times to the millisecond: every stored timestamp is this NOW.
        return self._scripts.run(name, [self.keys.ns, f"{now:.3f}", *args])

    def check_poll(self, step: Dispatch, *, now: float) -> PollCheck:
        """``check_step`` for a poll, with its task's age and the batch's learned first poll."""
        reply = self._run("check_step", now, step.job_id, step.item, step.gen, "poll")
        verdict = str(reply[0])
        if verdict != "ok" or len(reply) < 3:
            return PollCheck(verdict)
        return PollCheck(verdict, _float_or_none(reply[1]), _float_or_none(reply[2]))

    def check_step(self, step: Dispatch, *, now: float) -> str:
        """Is ``step`` still waiting for this message? ``ok``, ``cancelling``, ``stale``, ``gone``.

        Asked before a rate slot or an API call is spent on it (the claim, or the
        poll's record, decides for real).
        """
        kind = "create" if step.remote_id is None else "poll"
        return str(self._run("check_step", now, step.job_id, step.item, step.gen, kind)[0])

    def _run_replicated(self, name: str, now: float, *args: Any) -> tuple[list[Any], int]:
        """Run a script and WAIT for the replicas (``wanted_replicas``): (reply, how many
        replicas were wanted and not all reached: 0 when they have it)."""
        if self.limits.min_replicas <= 0:
            return self._run(name, now, *args), 0
        wanted = self.wanted_replicas()
        out, acked = self._scripts.run_replicated(
            name, [self.keys.ns, f"{now:.3f}", *args], wanted, self.limits.wait_timeout_ms
        )
        return out, 0 if acked >= wanted else wanted

    def wanted_replicas(self) -> int:
        """``min_replicas``, or every replica the master listed lately if more (replicas.py)."""
        return self._replicas.wanted(self.limits.min_replicas)

    def wait_replicas(self) -> int:
        """WAIT again: behind a new write, as WAIT counts only its own connection's writes.
        Returns as ``_run_replicated`` does (0: enough replicas have it).

        The replication stream is ordered, so replicas that have this later write have
        every earlier one too (the task id stored through another connection).
        """
        wanted = self.wanted_replicas()
        with self.client.pipeline(transaction=False) as pipe:
            pipe.incr(f"{self.keys.ns}:replication_mark")
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", wanted, self.limits.wait_timeout_ms
            )
            _, acked = pipe.execute()
        return 0 if int(acked) >= wanted else wanted

    def claim_create(
        self, job_id: str, item: str, gen: int, *, now: float, lease_s: float
    ) -> Claimed | Skipped:
        """Move a pending step to submitting, or park it when paused/full/over budget.

        With ``min_replicas``, a claim that fewer replicas acknowledged in time is
        undone (the step is pending again, re-driven by the watchdog) and no create
        is sent: a failover could forget it, and the step would be created twice.
        """
        out, short_of = self._run_replicated(
            "claim_create",
            now,
            job_id,
            item,
            gen,
            lease_s,
            self.limits.max_in_flight,
            self.limits.budget_chars,
            self.limits.retention_s,
            uuid.uuid4().hex[:8],  # this claim's name: a re-run after a failover finds it
        )
        if out[0] == "ok" and short_of:
            return self._undo_claim(job_id, item, gen, now=now, wanted=short_of)
        if out[0] == "ok":
            return Claimed(
                request=json.loads(out[1]),
                model_id=out[2],
                clone_completed_at=float(out[3]),
                activated=out[4] == "1",
                attempts=int(out[5]),
                batch=out[6],
            )
        return Skipped(f"parked:{out[1]}" if out[0] == "parked" else out[0])

    def _undo_claim(self, job_id: str, item: str, gen: int, *, now: float, wanted: int) -> Skipped:
        """Put an unreplicated claim back to pending, as durably as the claim was written.

        A replica may hold the claim (it acknowledged it; only not *every* replica did)
        and be promoted before the undo reaches it: the step would stay `submitting`
        there and end `unknown` though no create was sent (seen in test_failover: 11
        steps at once, a replica resyncing after the first failover, then the master
        killed). So the undo WAITs too, and is applied again before each further WAIT:
        a stale no-op on the master that has it, the undo itself on one promoted
        meanwhile without it (the generation keeps it from touching a newer claim).
        """
        error = {
            "kind": UNREPLICATED,
            "msg": f"the claim reached fewer than {wanted} Redis replicas "
            f"within {self.limits.wait_timeout_ms} ms, so no create was sent; retried",
        }
        args = self._release_args(job_id, item, gen, "retry", error, retry_at=now)
        out, short_of = self._run_replicated("release_create", now, *args)
        result = out[0]
        for _ in range(RECORD_WAITS - 1):
            if not short_of:
                break
            again = self._run("release_create", now, *args)[0]
            result = result if again in ("stale", "gone") else again
            short_of = self.wait_replicas()
        _UNDONE.said(job_id, error["msg"], result, master_only=bool(short_of))
        return Skipped(UNREPLICATED)

    def record_created(
        self, job_id: str, item: str, gen: int, remote_id: str, *, now: float, next_due: float
    ) -> Created:
        """Store the remote task id at once; the poll's generation, or None if it moved on.

        With ``min_replicas``, WAIT until that many replicas have it (up to
        ``RECORD_WAITS`` times): the create is paid, so going on is all that is left,
        but an id only the master holds is logged with the job, in case a failover
        forgets it (the step would come back `unknown`).
        """
        out, short_of = self._run_replicated(
            "record_created",
            now,
            job_id,
            item,
            gen,
            remote_id,
            repr(next_due),
            self.limits.job_deadline_s,
            self.limits.retention_s,
        )
        for _ in range(RECORD_WAITS - 1):
            if not short_of:
                break
            short_of = self.wait_replicas()
        if short_of:
            log.error(
                "remote task %s of job %s (step %s) is stored on the Redis master only "
                "(fewer than %d replicas acknowledged): a failover now would report it unknown",
                remote_id,
                job_id,
                item,
                short_of,
                extra={"job": job_id, "remote_id": remote_id},
            )
        if out[0] != "ok":
            return Created(None)
        return Created(int(out[1]), out[2] == 1, float(out[3]) if out[3] else None)

    def release_create(
        self,
        job_id: str,
        item: str,
        gen: int,
        outcome: ReleaseOutcome,
        error: dict[str, Any],
        *,
        now: float,
        retry_at: float = 0.0,
        queued: bool = False,
        pause: dict[str, Any] | None = None,
    ) -> Released:
        """A create produced no task (or no answer): retry, park, fail or mark unknown."""
        args = self._release_args(
            job_id, item, gen, outcome, error, retry_at=retry_at, queued=queued, pause=pause
        )
        out = self._run("release_create", now, *args)
        if out[0] in ("stale", "gone"):
            return Released(out[0])
        return Released(out[0], int(out[1]), [Dispatch.parse(e) for e in out[3:]], str(out[2]))

    def _release_args(
        self,
        job_id: str,
        item: str,
        gen: int,
        outcome: ReleaseOutcome,
        error: dict[str, Any],
        *,
        retry_at: float,
        queued: bool = False,
        pause: dict[str, Any] | None = None,
    ) -> tuple[Any, ...]:
        """The release_create script's arguments after NOW."""
        return (
            job_id,
            item,
            gen,
            outcome,
            json.dumps(error, ensure_ascii=False),
            repr(retry_at),
            int(queued),
            self.limits.submit_max_attempts,
            json.dumps(pause or {}, ensure_ascii=False),
            self.limits.max_in_flight,
            self.limits.grace_s,
            self.limits.retention_s,
            self.limits.unknown_pause_after,
        )

    def record_poll(
        self,
        job_id: str,
        item: str,
        gen: int,
        status: Literal["running", "completed", "failed"],
        result: dict[str, Any],
        *,
        now: float,
        next_due: float,
    ) -> Polled:
        """Store a poll's answer; on completion return the follow-up steps to dispatch."""
        out = self._run(
            "record_poll",
            now,
            job_id,
            item,
            gen,
            status,
            json.dumps(result, ensure_ascii=False),
            repr(next_due),
            self.limits.max_in_flight,
            self.limits.grace_s,
            self.limits.retention_s,
            self.limits.first_poll_target,
            self.limits.first_poll_min_s,
            self.limits.first_poll_max_s,
            self.limits.first_poll_lag_s,
            self.limits.task_lost_after_s,
        )
        if out[0] == "again":
            return Polled("again", int(out[1]), int(out[2]), batch=out[3], refused=int(out[4]))
        if out[0] != "done":
            return Polled(out[0])
        return Polled("done", dispatches=[Dispatch.parse(e) for e in out[3:]], batch=out[2])

    def redrive(
        self,
        job_id: str,
        item: str,
        *,
        now: float,
        lease_s: float,
        busy_queues: Iterable[str],
        token: str,
        slack_s: float,
    ) -> tuple[str, Dispatch | None]:
        """Re-drive one overdue step; returns what happened and the message to send, if any.

        ``busy_queues`` ('submit', 'produce', 'poll') have a backlog; ``token`` is the
        watchdog pass's fencing token (redrive.lua says how both are used).
        """
        out = self._run(
            "redrive",
            now,
            job_id,
            item,
            lease_s,
            "," + ",".join(busy_queues) + ",",
            self.limits.retention_s,
            token,
            self.limits.grace_s,
            slack_s,
        )
        if out[0] == "poll":
            return "poll", Dispatch(job_id, item, int(out[1]), remote_id=out[2])
        if out[0] == "create":
            return "create", Dispatch(job_id, item, int(out[1]))
        return out[0], None

    def lock_watchdog(self, *, now: float, lock_ms: int) -> str | None:
        """A fencing token for one watchdog pass, or None (a pass runs or just ran)."""
        token = self._run("watchdog_lock", now, "acquire", lock_ms)[0]
        return str(token) or None

    def unlock_watchdog(self, token: str, *, now: float, min_gap_ms: int) -> bool:
        """Release the lock if it is still ours (atomic compare-and-delete)."""
        return bool(self._run("watchdog_lock", now, "release", token, min_gap_ms)[0])

    def unpark(self, *, now: float, limit: int = 1000) -> list[Dispatch]:
        """Release parked steps into free slots (none while paused)."""
        out = self._run("unpark", now, self.limits.max_in_flight, self.limits.grace_s, limit)
        return [Dispatch.parse(e) for e in out]

    def probe(self, *, now: float, interval_s: float) -> list[Dispatch]:
        """While paused for balance/token, let one parked step through per interval."""
        out = self._run("probe", now, interval_s, self.limits.grace_s)
        return [Dispatch.parse(e) for e in out]


def _float_or_none(value: Any) -> float | None:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return float(text) if text else None
