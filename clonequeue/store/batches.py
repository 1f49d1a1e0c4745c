"""Producer- and operator-side records: batches, their jobs, results, retry, cancel, purge."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from clonequeue.errors import StoreError
from clonequeue.store.jobs import Dispatch, JobStore
from clonequeue.store.keys import Keys
from clonequeue.store.records import TERMINAL_STATES, JobState

READ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CreateResult:
    created: list[str]  # job ids recorded now, in order
    existing: list[tuple[str, str, bool]]  # (job id, batch holding it, same content?)


@dataclass(frozen=True, slots=True)
class BatchInfo:
    batch_id: str
    created_at: float
    finished_at: float | None
    total: int
    counts: dict[str, int]

    @property
    def open_jobs(self) -> int:
        return self.total - sum(self.counts.get(s.value, 0) for s in TERMINAL_STATES)

    @property
    def finished_jobs(self) -> int:
        return self.total - self.open_jobs

    @property
    def is_finished(self) -> bool:
        return self.total > 0 and self.open_jobs == 0

    def to_dict(self) -> dict[str, Any]:
        """The counts as ``status --json`` prints them."""
        return {
            "batch": self.batch_id,
            "total": self.total,
            "finished": self.is_finished,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            **{s.value: self.counts.get(s.value, 0) for s in JobState},
        }


@dataclass
class Retried:
    """What :meth:`BatchStore.retry` queued, and the unknown jobs it left to settle."""

    jobs: int = 0
    dispatches: list[Dispatch] = field(default_factory=list)
    settling: int = 0  # unknown jobs whose worker may only be frozen: left alone
    settled_at: float = 0.0  # when the last of them may be retried (epoch s)


PURGED_MARK_S = 86_400  # how long a purge's mark stops submits that began before it


class BatchClosedError(StoreError):
    """A submit met its batch cancelled or purged after it began: nothing more recorded."""

    def __init__(self, batch_id: str, how: str, at: float) -> None:
        self.batch_id, self.how, self.at = batch_id, how, at
        if how == "cancelled":
            then = (
                f"the rows recorded before were cancelled with it, the rest not recorded; "
                f"`clonequeue retry {batch_id} --cancelled` takes the cancel back (then run "
                "the same submit again to record the rest), or submit them to another batch"
            )
        else:
            then = "nothing more is recorded; to submit the rows again, run the submit again"
        super().__init__(f"batch {batch_id} was {how} while this submit ran: {then}")


class BatchStore:
    """Reads and bulk operations on batches. Shares the scripts of :class:`JobStore`."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.client: redis.Redis = jobs.client
        self.keys: Keys = jobs.keys

    def create_jobs(
        self,
        batch_id: str,
        docs: Sequence[tuple[str, str]],
        *,
        now: float,
        since: float | None = None,
    ) -> CreateResult:
        """Record new jobs (id, JSON document) atomically; existing ids are reported only.

        Each new job's first create gets its entry in the due-index in the same call.
        ``since``: when the submit began; :class:`BatchClosedError` (nothing recorded)
        if the batch was cancelled or purged since.
        """
        args: list[str] = []
        for job_id, doc in docs:
            args += [job_id, doc]
        mark = "" if since is None else repr(since)
        out = self.jobs._run("create_jobs", now, batch_id, mark, *args)
        if int(out[0]) == -1:
            raise BatchClosedError(batch_id, str(out[1]), float(out[2]))
        existing_at = {
            int(out[i]) - 1: (str(out[i + 1]), out[i + 2] == 1) for i in range(1, len(out), 3)
        }
        created = [job_id for i, (job_id, _) in enumerate(docs) if i not in existing_at]
        existing = [(docs[i][0], batch, same) for i, (batch, same) in existing_at.items()]
        return CreateResult(created, existing)

    def info(self, batch_id: str) -> BatchInfo | None:
        raw: dict[str, str] = self.client.hgetall(self.keys.batch(batch_id))  # type: ignore[assignment]
        if not raw:
            return None
        return BatchInfo(
            batch_id=batch_id,
            created_at=float(raw.get("created_at", 0)),
            finished_at=float(raw["finished_at"]) if "finished_at" in raw else None,
            total=int(raw.get("total", 0)),
            counts={s.value: max(int(raw.get(s.value, 0)), 0) for s in JobState},
        )

    def list_batches(self, *, limit: int = 100) -> list[BatchInfo]:
        """Newest first; ids whose records expired are dropped from the index."""
        ids = self.client.zrevrange(self.keys.batches, 0, limit - 1)
        infos = []
        for batch_id in cast(list[str], ids):
            info = self.info(str(batch_id))
            if info is None:
                self.client.zrem(self.keys.batches, batch_id)
            else:
                infos.append(info)
        return infos

    def job_ids(self, batch_id: str, *, start: int = 0) -> Iterator[list[str]]:
        """The batch's job ids in chunks, streaming (constant memory)."""
        key = self.keys.batch_jobs(batch_id)
        while True:
            chunk = cast(list[str], self.client.lrange(key, start, start + READ_CHUNK - 1))
            if not chunk:
                return
            yield [str(j) for j in chunk]
            start += len(chunk)

    def docs(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Every job document of the batch in submission order (expired ones skipped)."""
        for ids in self.job_ids(batch_id):
            for raw in cast(list[str | None], self.client.mget([self.keys.job(j) for j in ids])):
                if raw is not None:
                    yield json.loads(raw)

    def settling_unknowns(self, batch_id: str, *, now: float, settle_s: float) -> Retried:
        """The batch's unknown jobs whose worker may only be frozen (``lost_worker`` less
        than ``settle_s`` ago): ``settling`` and ``settled_at``, as a retry leaves them
        (the same script decides, asked only to check)."""
        info = self.info(batch_id)
        if settle_s <= 0 or info is None or not info.counts.get("unknown"):
            return Retried()
        return self._retried(batch_id, "unknown", now=now, settle_s=settle_s, check=True)

    def lookup(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Which of ``job_ids`` exist: id → (batch holding it, content hash). Read-only."""
        if not job_ids:
            return {}
        raws = cast(list[str | None], self.client.mget([self.keys.job(j) for j in job_ids]))
        found = {}
        for job_id, raw in zip(job_ids, raws, strict=True):
            if raw is not None:
                doc = json.loads(raw)
                found[job_id] = (str(doc.get("batch")), str(doc.get("h")))
        return found

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.job(job_id))
        return json.loads(raw) if raw is not None else None

    def retry(self, batch_id: str, what: str, *, now: float, settle_s: float = 0.0) -> Retried:
        """Retry the batch's ``what`` ('failed' | 'unknown' | 'cancelled') steps.

        An unknown job whose worker may only be frozen (``lost_worker`` less than
        ``settle_s`` ago) is left: its answer may still come (retry_job.lua). Taking a
        cancel back lets submits record into the batch again."""
        if what == "cancelled":
            self.client.hdel(self.keys.batch(batch_id), "cancelled_at")
        return self._retried(batch_id, what, now=now, settle_s=settle_s)

    def _retried(
        self, batch_id: str, what: str, *, now: float, settle_s: float, check: bool = False
    ) -> Retried:
        """retry_job.lua over the batch's jobs, a chunk per round trip, its answers added
        up (``check``: only which are settling; nothing is queued)."""
        retried = Retried()
        for out in self._retry_each(batch_id, what, now=now, settle_s=settle_s, check=check):
            if out[0] == "ok":
                retried.jobs += 1
                retried.dispatches += [Dispatch.parse(e) for e in out[1:]]
            elif out[0] == "settling":
                retried.settling += 1
                retried.settled_at = max(retried.settled_at, float(out[1]))
        return retried

    def _retry_each(
        self, batch_id: str, what: str, *, now: float, settle_s: float, check: bool
    ) -> Iterator[list[Any]]:
        limits = self.jobs.limits
        for ids in self.job_ids(batch_id):
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                self.jobs._scripts.run(
                    "retry_job",
                    [self.keys.ns, repr(now), job_id, what, limits.grace_s,
                     limits.job_deadline_s, limits.retention_s, repr(settle_s),
                     "1" if check else "0"],
                    client=pipe,
                )  # fmt: skip
            yield from pipe.execute()

    def cancel(self, batch_id: str, *, now: float, by: str = "") -> dict[str, int]:
        """Cancel every unfinished job; counts of 'cancelled' (at once) and 'requested'.

        ``by`` (who asked) and ``now`` are kept in each job, so its result says who
        cancelled it and when. The batch keeps when (``cancelled_at``): a submit still
        recording into it stops (create_jobs.lua), until ``retry --cancelled``.
        """
        if self.client.exists(self.keys.batch(batch_id)):
            self.client.hset(self.keys.batch(batch_id), "cancelled_at", repr(now))
        counts = {"cancelled": 0, "requested": 0}
        for ids in self.job_ids(batch_id):
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                self.jobs._scripts.run(
                    "cancel_job",
                    [self.keys.ns, repr(now), job_id, self.jobs.limits.retention_s, by],
                    client=pipe,
                )
            for out in pipe.execute():
                if out[0] in counts:
                    counts[out[0]] += 1
        return counts

    def purge(self, batch_id: str) -> int:
        """Delete the batch and its job records. Returns the number of job records removed.

        Its webhook deliveries and artifact downloads go after (``Batch.purge``): one is
        recorded only while the batch and its job exist (clonequeue/outputs/items.py),
        so a results pass racing the purge cannot add one once these are gone.
        """
        # first: a submit still recording into the batch stops (create_jobs.lua), and
        # says so, instead of bringing it back half (QA pass)
        seconds, micros = self.client.time()  # Redis's clock, as a submit's `since` is
        self.client.set(
            self.keys.batch_purged(batch_id), repr(seconds + micros / 1e6), ex=PURGED_MARK_S
        )
        removed = 0
        for ids in self.job_ids(batch_id):
            removed += self.client.delete(*[self.keys.job(j) for j in ids])
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.batch(batch_id), self.keys.batch_jobs(batch_id))
        pipe.zrem(self.keys.batches, batch_id)
        pipe.execute()
        return removed
