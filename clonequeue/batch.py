"""A batch of jobs, as a pipeline follows it: counts, waiting, results, errors, operations.

::

    batch = clonequeue.submit(rows, batch="march")
    batch.wait(timeout=3600, on_progress=lambda s: print(s.finished_jobs, "/", s.total))
    for record in batch.results():
        ...

Everything is read from Redis when asked (nothing is cached), so a ``Batch`` made
from an id in another process sees the same state.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clonequeue.arguments import FUNCTION, NONE, check_arg, check_bool, check_value
from clonequeue.config import Settings
from clonequeue.producers.errors import BatchNotFoundError, ProducerError
from clonequeue.producers.frames import FRAME_KINDS, FrameKind
from clonequeue.producers.rows import RowError
from clonequeue.producers.submission import SubmitReport
from clonequeue.services import Services
from clonequeue.store.batches import BatchInfo
from clonequeue.store.outage import REDIS_DOWN, RedisOutage
from clonequeue.store.presence import NoteChanges
from clonequeue.store.records import result_record
from clonequeue.wording import plural

# A job that ended in one of these did not deliver everything it asked for.
ERROR_STATES = frozenset({"failed", "unknown", "cancelled"})
SECONDS = (int, float)
# wait()'s pause between two reads of the batch (one HGETALL each). Under 50 ms a
# waiter is a busy loop on Redis (0 s: ~5,000 commands a second) and learns nothing
# sooner, as every step is an API call of seconds; over a day is a typo (and past
# ~292 years, 2**63 ns, time.sleep overflows).
MIN_POLL_INTERVAL_S = 0.05
MAX_POLL_INTERVAL_S = 86_400.0
POLL_INTERVAL_EXPECTED = (
    f"a finite number of seconds from {MIN_POLL_INTERVAL_S} (a shorter pause only loads "
    f"Redis) to {MAX_POLL_INTERVAL_S:,.0f}"
)
SECONDS_EXPECTED = "a finite number of seconds, 0 or more"
TIMEOUT_EXPECTED = f"{SECONDS_EXPECTED}, or None (None waits without end)"
# wait() reads on through a Redis outage this long (after each read's own ~30 s), as
# `status --wait` does: a restart or a failover must not end a wait of hours.
REDIS_OUTAGE_S = 60.0
SHOWN_BATCHES = 5  # batches named when every row was already in other batches
PURGE_FORCE = "force=True"  # how a purge refusal names the flag; the CLI says --force

log = logging.getLogger(__name__)

BatchStatus = BatchInfo  # total, counts per state, finished_jobs, is_finished, to_dict()


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What :meth:`Batch.retry` queued, and the unknown jobs it left (``note`` says how
    to send them, and the risk), as the CLI's ``retry`` says on stderr."""

    jobs: int  # jobs queued again
    steps: int  # creates sent (clones and production audios)
    unknown_left: int = 0  # unknown jobs not retried (retry(unknown=True) sends them)
    # unknown jobs whose worker may only be frozen: retry(unknown=True) leaves them until
    # settled_at (epoch seconds), when the last of them may be sent again
    settling: int = 0
    settled_at: float = 0.0

    @property
    def settle_note(self) -> str | None:
        """``3 unknown jobs left until 14:05:09 UTC: …`` (``retry(unknown=True)`` only;
        otherwise ``note`` says it)."""
        if not self.settling or self.unknown_left:
            return None
        until = utc_time(self.settled_at)
        one = self.settling == 1
        return (
            f"{plural(self.settling, 'unknown job')} left until {until}: the worker that "
            f"sent {'its create' if one else 'their creates'} did not store the answer "
            "within its lease, and may only be frozen (a stopped process, a paused VM): "
            f"its answer may still come, and sending again now could pay twice. Retry "
            f"then, or with force=True to send {'it' if one else 'them'} now"
        )

    @property
    def note(self) -> str | None:
        """``2 jobs unknown, not retried: … batch.retry(unknown=True) sends them again …``."""
        if not self.unknown_left:
            return None
        one = self.unknown_left == 1
        return (
            f"{plural(self.unknown_left, 'job')} unknown, not retried: a create went out and "
            f"no answer we could take came back, so {'it' if one else 'each'} may exist and "
            f"be billed already; batch.retry(unknown=True) sends {'it' if one else 'them'} "
            "again "
            f"({'it' if one else 'they'} may be billed twice)"
            + settling_clause(self.unknown_left, self.settling, self.settled_at, "force=True")
        )


def settling_clause(unknown: int, settling: int, settled_at: float, force: str) -> str:
    """``; 2 of them not before 14:05:09 UTC: …``: the unknown jobs that a retry of
    unknown work still leaves (their worker may only be frozen), or ``""``."""
    if not settling:
        return ""
    which = "" if settling == unknown else f"{settling:,} of them "
    return (
        f"; {which}not before {utc_time(settled_at)}: the worker that sent "
        f"{'its create' if settling == 1 else 'their creates'} did not store the answer "
        "within its lease and may only be frozen (a stopped process, a paused VM), so its "
        f"answer may still come ({force} sends {'it' if settling == 1 else 'them'} now)"
    )


def utc_time(at: float) -> str:
    """``14:05:09 UTC``: when a waiting unknown job may be retried or purged."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def who_am_i() -> str:
    """``user@host`` of this process, for the record of who cancelled a batch."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


class Batch(str):
    """One batch in Redis; a ``Batch`` *is* its id (a ``str``), with ways to follow it.

    So ``clonequeue.submit`` returns the batch id, as the pipeline issue asks, and the
    same value answers ``status()``, ``wait()``, ``results()``. ``submission`` is set
    when this process submitted it.
    """

    submission: SubmitReport | None
    _services: Services

    def __new__(
        cls,
        batch_id: str,
        *,
        settings: Settings | None = None,
        services: Services | None = None,
        submission: SubmitReport | None = None,
    ) -> Batch:
        check_arg("Batch", "batch_id", batch_id, (str,), "a batch id (str)")
        check_value("Batch", "batch_id", batch_id, bool(batch_id.strip()), "a batch id (not empty)")
        check_arg("Batch", "settings", settings, (Settings, NONE), "a clonequeue.Settings or None")
        check_arg(
            "Batch",
            "services",
            services,
            (Services, NONE),
            "a clonequeue.services.Services or None",
        )
        self = super().__new__(cls, batch_id)
        self.submission = submission
        if services is None:
            services = Services(settings) if settings is not None else Services()
        self._services = services
        return self

    @property
    def id(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Batch({self.id!r})"

    @property
    def rejected(self) -> list[RowError]:
        """The rows this process's submission rejected (the first 1,000), in input order.

        Each has ``line``, ``custom_id``, ``field``, ``rule`` (and all ``reasons``);
        ``submission.rejected`` is how many there were in all.
        """
        return list(self.submission.errors) if self.submission is not None else []

    def status(self) -> BatchStatus:
        """Counts per job state now; raises :class:`BatchNotFoundError` if there is no batch
        (saying why, when this process's submission knows: a dry run, or every row already
        in other batches)."""
        info = self._services.batches.info(self.id)
        if info is None:
            raise self._not_found()
        return info

    def _not_found(self) -> BatchNotFoundError:
        report = self.submission
        if report is None or report.batch_id != self.id:
            return BatchNotFoundError(self.id)
        if report.dry_run:
            return BatchNotFoundError(
                self.id,
                reason="a dry run creates no batch (nothing was sent); submit without "
                "dry_run=True to create it",
            )
        if not report.new and report.already_in:
            first = report.already_in.most_common(1)[0][0]
            them = "it" if len(report.already_in) == 1 else "those"
            return BatchNotFoundError(
                self.id,
                reason="it was not created, as every row was submitted before, in "
                f"{_held_in(report.already_in)}: follow {them}, e.g. clonequeue.Batch({first!r})",
            )
        return BatchNotFoundError(self.id)

    def api_rate(self) -> Any:
        """The fleet's adaptive API rate now (``clonequeue.workers.rate_view.RateSnapshot``)."""
        return self._services.rate_snapshot()

    def pause_reason(self) -> dict[str, Any] | None:
        """Why calls are held fleet-wide (``{kind, reason, since}``): a pause of creates,
        or a long Retry-After every worker waits out (kind ``retry_after``); else None."""
        return self._services.fleet.pause_reason()

    def workers_note(self) -> str | None:
        """What keeps every batch from moving, if anything: no worker running in this
        namespace, or no watchdog pass lately (no beat), said with what to start; else None."""
        return self._services.workers_note()

    def wait(
        self,
        timeout: float | None = None,
        *,
        poll_interval: float = 2.0,
        on_progress: Callable[[BatchStatus], None] | None = None,
        redis_outage_s: float = REDIS_OUTAGE_S,
    ) -> BatchStatus:
        """Block until every job is finished; ``TimeoutError`` after ``timeout`` seconds.

        ``on_progress`` gets the status after every check (every ``poll_interval`` s).
        ``timeout`` is None (no end) or finite and 0 or more (0: one look); ``poll_interval``
        is from 0.05 s (less is a busy loop on Redis) to a day. Other values are a
        ``ValueError``, before anything is read. A Redis outage (a restart, a failover)
        is ridden out: each read retries for ~30 s, then the wait goes on reading for up
        to ``redis_outage_s`` more (a warning logged at its start and end), and only
        then raises Redis's own error (``redis.exceptions.ConnectionError``, not a
        ``ClonequeueError``). ``timeout`` ends that sooner, but only once the read under
        way gives up: up to ~30 s past it.
        """
        check_arg("Batch.wait", "timeout", timeout, (*SECONDS, NONE), "a number of seconds or None")
        check_arg("Batch.wait", "poll_interval", poll_interval, SECONDS, "a number of seconds")
        check_arg("Batch.wait", "on_progress", on_progress, (FUNCTION, NONE), "a function or None")
        if timeout is not None:
            finite = math.isfinite(timeout) and timeout >= 0
            check_value("Batch.wait", "timeout", timeout, finite, TIMEOUT_EXPECTED)
        usable = math.isfinite(poll_interval) and (
            MIN_POLL_INTERVAL_S <= poll_interval <= MAX_POLL_INTERVAL_S
        )
        check_value("Batch.wait", "poll_interval", poll_interval, usable, POLL_INTERVAL_EXPECTED)
        usable = math.isfinite(redis_outage_s) and redis_outage_s >= 0
        check_value("Batch.wait", "redis_outage_s", redis_outage_s, usable, SECONDS_EXPECTED)
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = self._outage_logged(redis_outage_s)
        notes = NoteChanges()  # on workers, logged when it changes
        while True:
            read_began = time.monotonic()
            try:
                status = self.status()
                note = None if status.is_finished else self.workers_note()
            except REDIS_DOWN as exc:
                pause = outage.next_wait(exc, read_began=read_began)
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                continue
            outage.end()
            news = None if status.is_finished else notes.news(note)
            if news:
                log.warning("batch %s: %s", self.id, news)
            if on_progress is not None:
                on_progress(status)
            if status.is_finished:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {self.id}: {status.open_jobs:,} of {plural(status.total, 'job')} "
                    f"still unfinished after {timeout} s"
                )
            pause = poll_interval
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))

    def _outage_logged(self, limit_s: float) -> RedisOutage:
        def started(exc: BaseException) -> None:
            log.warning(
                "batch %s: cannot reach Redis (%s); waiting on, reading again for up to %.0f s",
                self.id,
                type(exc).__name__,
                limit_s,
            )

        def ended(down_s: float) -> None:
            log.warning("batch %s: Redis answers again (unreachable for %.0f s)", self.id, down_s)

        return RedisOutage(limit_s, started, ended)

    def results(self) -> Iterator[dict[str, Any]]:
        """One result record per job, in submission order, streamed from Redis.

        With an artifact store, each file's record gains ``artifact``: ``{state,
        url, bytes, sha256}`` (or ``{state: failed, error}``).
        """
        total = self.status().total
        docs = self._services.batches.docs(self.id)
        records: Iterator[dict[str, Any]] = (result_record(doc) for doc in docs)
        if self._results().has_artifacts(self.id):
            from clonequeue.outputs.operate import with_artifacts

            pairs = ((doc, result_record(doc)) for doc in docs)
            records = with_artifacts(self._services.redis, self._services.settings.namespace, pairs)
        read = 0
        for record in records:
            read += 1
            yield record
        if read < total:
            self._records_gone(read, total)

    def _records_gone(self, read: int, total: int) -> None:
        """Records went while they were read: a stream that just ended early read as the
        whole batch (QA pass: a purge, or a Redis restarted without its data, mid-read)."""
        gone = "the batch is gone"
        if self._services.batches.info(self.id) is not None:
            gone = "the batch is still there but the other job records are gone"
        raise BatchNotFoundError(
            self.id,
            reason=f"only {read:,} of its {plural(total, 'job record')} could be read: {gone} "
            "(purged, or a Redis that restarted without its data lost them)",
        )

    def results_frame(self, kind: FrameKind = "pandas") -> Any:
        """The results as a DataFrame, one row per job: ``kind="pandas"`` or ``"polars"``.

        The columns are the Parquet export's (the CSV's job columns; ``audios`` a list
        of dicts with the CSV's audio columns). Needs the ``frames`` extra.
        """
        from clonequeue.producers.frames import results_frame

        kinds = "'pandas' or 'polars'"
        check_arg("Batch.results_frame", "kind", kind, (str,), kinds)
        check_value("Batch.results_frame", "kind", kind, kind in FRAME_KINDS, kinds)

        return results_frame(self.results(), kind)

    def webhooks(self) -> Iterator[dict[str, Any]]:
        """Every webhook delivery of the batch with its attempts."""
        self.status()
        deliveries: Iterator[dict[str, Any]] = self._results().deliveries(self.id)
        return deliveries

    def redeliver(self) -> list[str]:
        """Send failed (and 410-disabled) deliveries again; returns their webhook-ids."""
        self.status()
        ids: list[str] = self._results().redeliver(self.id)
        self._publish("webhook", ids)
        return ids

    def fetch_artifacts(self) -> int:
        """Download again every file not stored (no API call); stored ones are checked
        against their sha256 and kept. Returns how many downloads were queued."""
        self.status()
        ids = self._results().refetch(self.id, self._services.batches.docs(self.id))
        self._publish("artifact", ids)
        return len(ids)

    def _results(self) -> Any:
        from clonequeue.outputs.operate import Results

        return Results(self._services.redis, self._services.settings)

    def _publish(self, kind: str, ids: list[str]) -> None:
        from clonequeue.outputs.tasks import publisher

        publish = publisher(self._services.app, self._services.settings.namespace)
        for item_id in ids:
            publish(kind, item_id, None)

    def errors(self) -> Iterator[dict[str, Any]]:
        """The result records of jobs that failed, are unknown or were cancelled."""
        for record in self.results():
            if record["status"] in ERROR_STATES:
                yield record

    def retry(
        self,
        *,
        failed: bool = True,
        unknown: bool = False,
        cancelled: bool = False,
        force: bool = False,
    ) -> RetryOutcome:
        """Queue failed (and/or outcome-unknown, cancelled) work again; completed work is
        never touched.

        ``unknown`` creates may exist and be billed already: retrying them may pay twice.
        Without it, the outcome's ``unknown_left`` counts the unknown jobs left and its
        ``note`` says how to send them. One whose worker did not store the answer within
        its lease is left for ``CLONEQUEUE_UNKNOWN_SETTLE_S`` (``settle_note``): that
        worker may only be frozen, and its answer still come; ``force`` sends it now.
        ``cancelled`` takes a cancel back: a cancelled create was never sent.
        """
        flags = (("failed", failed), ("unknown", unknown), ("cancelled", cancelled))
        for name, flag in (*flags, ("force", force)):
            check_bool("Batch.retry", name, flag)
        self.status()
        jobs = steps = settling = 0
        settled_at = 0.0
        dispatcher = self._services.dispatcher
        settle_s = 0.0 if force else self._services.settings.unknown_settle_s
        for what, chosen in flags:
            if chosen:
                retried = self._services.batches.retry(
                    self.id, what, now=self._services.now(), settle_s=settle_s
                )
                jobs += retried.jobs
                steps += dispatcher.publish_creates(retried.dispatches)
                settling += retried.settling
                settled_at = max(settled_at, retried.settled_at)
        left = 0 if unknown else self.status().counts.get("unknown", 0)
        if left:  # say which of them retry(unknown=True) would still leave, and until when
            settling, settled_at = self.settling_unknowns()
        return RetryOutcome(jobs, steps, left, settling, settled_at)

    def settling_unknowns(self) -> tuple[int, float]:
        """Unknown jobs whose worker did not store its answer within its lease (it may only
        be frozen, and the answer still come), and when the last of them may be sent again
        (epoch seconds): ``retry(unknown=True)`` and ``purge()`` leave them until then."""
        found = self._services.batches.settling_unknowns(
            self.id,
            now=self._services.now(),
            settle_s=self._services.settings.unknown_settle_s,
        )
        return found.settling, found.settled_at

    def cancel(self, *, by: str | None = None) -> dict[str, int]:
        """Cancel what has not started: counts of jobs ``cancelled`` now and ``requested``
        (in flight: the running step finishes, no production audio follows).

        ``by`` is who asked (default ``user@host``); each job's error names it and the time.
        """
        check_arg("Batch.cancel", "by", by, (str, NONE), "who asked (str) or None")
        self.status()
        return self._services.batches.cancel(self.id, now=self._services.now(), by=by or who_am_i())

    def purge(self, *, force: bool = False) -> int:
        """Delete a finished batch, its job records, and its webhook deliveries and artifact
        downloads (export them first); returns how many job records.

        Jobs still running would lose their records under a worker, so an unfinished
        batch is refused; ``force`` cancels it first, which finishes at once whatever
        was not yet sent (in-flight steps must still finish before a purge).
        """
        check_bool("Batch.purge", "force", force)
        status = self.status()
        cancelled = None
        if not status.is_finished and force:
            cancelled = self.cancel()
            status = self.status()
        if not status.is_finished and status.total:
            # the CLI's `purge` names its --force in place of PURGE_FORCE (cli/jobs_cmd.py)
            hint = f"wait, or purge with {PURGE_FORCE}, which cancels the batch first"
            if cancelled is not None:  # say so: the batch is cancelled now, purged or not
                hint = (
                    f"{PURGE_FORCE} cancelled the batch ({cancelled['cancelled']} stopped, "
                    f"{cancelled['requested']} in flight finish their current step first); "
                    "run purge again once they finish"
                )
            unfinished = plural(status.open_jobs, "unfinished job")
            raise ProducerError(f"batch {self.id} has {unfinished}; {hint}")
        if not force:
            self._refuse_while_unknowns_settle()
        removed = self._services.batches.purge(self.id)
        self._results().purge_batch(self.id)  # after: none can be added to a purged batch
        return removed

    def _refuse_while_unknowns_settle(self) -> None:
        """A worker frozen past its lease stores its answers when it wakes: purged before,
        they were paid tasks with no record but a warning (QA pass)."""
        settling, settled_at = self.settling_unknowns()
        if settling:
            until = utc_time(settled_at)
            raise ProducerError(
                f"batch {self.id} has {plural(settling, 'unknown job')} whose worker "
                "did not store the answer within its lease and may only be frozen (a stopped "
                "process, a paused VM): its answers may still come, and would then be paid "
                f"tasks with no record. Purge after {until}, or with {PURGE_FORCE}"
            )


def _held_in(counts: Counter[str]) -> str:
    """``batches A (4 rows) and B (2 rows)``: where rows submitted before are, most first."""
    named = [f"{b} ({plural(n, 'row')})" for b, n in counts.most_common(SHOWN_BATCHES)]
    if len(counts) > len(named):
        named.append(plural(len(counts) - len(named), "other batch", "other batches"))
    if len(named) == 1:
        return f"batch {named[0]}"
    return "batches " + ", ".join(named[:-1]) + " and " + named[-1]
