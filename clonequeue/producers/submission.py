"""One submission, start to end: read, validate, drop repeats, estimate, record, publish.

The same engine serves ``clonequeue submit``, ``submit --dry-run``, ``clonequeue
estimate`` and the Python API; only where checked rows go differs (the *sink*):

* :class:`~clonequeue.producers.enqueue.Enqueuer` records and queues them;
* :class:`LookupSink` only asks Redis which exist already (dry run, estimate pass);
* :class:`OfflineSink` asks nothing (``clonequeue estimate``: no Redis needed).

With a character limit the input is read twice: first to estimate what would be
sent, then (if within the limit) to send it. Stdin and iterables are spooled to a
temporary file for that; files are simply read again, so a file that another
process still writes could hold more by then: a file whose size, time or inode
moved between the passes is refused (nothing sent), and the sending pass itself
stops before the chunk that would take it past the limit (a file that grew while
it was being sent).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import kombu.exceptions
import redis

from clonequeue.api.billing import CostEstimate
from clonequeue.errors import InputError
from clonequeue.producers import intake, parallel
from clonequeue.producers.enqueue import Enqueuer, Placement, check_batch_id, new_batch_id
from clonequeue.producers.errors import (
    NothingSubmittedError,
    ProducerError,
    RowsRejectedError,
)
from clonequeue.producers.errors_file import ErrorsFile
from clonequeue.producers.estimate import check_limit
from clonequeue.producers.intake import Checked
from clonequeue.producers.rows import RowError
from clonequeue.producers.sources import InputFile, RowSource, temp_dir
from clonequeue.redis_refusals import refusal_line
from clonequeue.services import Services
from clonequeue.store.batches import BatchClosedError, BatchStore
from clonequeue.wording import plural

log = logging.getLogger(__name__)

KEEP_ERRORS = 1000  # rejected rows kept in the report; all of them go to the errors file
SHOWN_IN_MESSAGE = 3  # rejected rows quoted in an exception's or a warning's message


@dataclass
class SubmitReport:
    """What became of every input row. ``estimate`` covers the new jobs only."""

    batch_id: str
    dry_run: bool = False
    rows: int = 0  # jobs read (a CSV job of several rows counts once)
    new: int = 0  # recorded and queued now (or, in a dry run, that would be)
    already_submitted: int = 0  # custom_id exists with the same content: not sent again
    already_in: Counter[str] = field(default_factory=Counter)  # batch → how many of those
    repeats: int = 0  # same custom_id and content as an earlier row of this input: skipped
    rejected: int = 0  # invalid rows, and custom_ids already used with other content
    conflicts: int = 0  # of the rejected: custom_id used with other content
    estimate: CostEstimate = field(default_factory=CostEstimate)
    errors: list[RowError] = field(default_factory=list)  # the first KEEP_ERRORS rejected rows
    errors_path: Path | None = None  # where every rejected row was written, if any was

    @property
    def accepted(self) -> int:
        return self.rows - self.rejected


Progress = Callable[[SubmitReport, int | None, int | None], None]  # report, position, size


class Sink(Protocol):
    def place(self, chunk: Sequence[Checked]) -> Placement: ...

    def finish(self) -> None: ...


class OfflineSink:
    """Every checked row counts as new: an estimate of the input itself."""

    def place(self, chunk: Sequence[Checked]) -> Placement:
        return Placement(created=list(chunk))

    def finish(self) -> None:
        pass


class LookupSink:
    """Read-only: which rows exist in Redis already, and with what content."""

    def __init__(self, batches: BatchStore) -> None:
        self._batches = batches

    def place(self, chunk: Sequence[Checked]) -> Placement:
        found = self._batches.lookup([c.custom_id for c in chunk])
        placement = Placement()
        for checked in chunk:
            existing = found.get(checked.custom_id)
            if existing is None:
                placement.created.append(checked)
            else:
                placement.existing.append((checked, existing[0], existing[1] == checked.h))
        return placement

    def finish(self) -> None:
        pass


class Submission:
    """Configure once, :meth:`run` once. ``services=None`` is an offline estimate."""

    def __init__(
        self,
        source: RowSource,
        *,
        services: Services | None,
        batch: str | None = None,
        dry_run: bool = False,
        max_chars: int | None = None,
        strict: bool = False,
        errors_path: Path | None = None,
        on_error: Callable[[RowError], None] | None = None,
        on_progress: Progress | None = None,
        parallel: bool = True,
        webhook: str | None = None,
        artifacts: str | None = None,
    ) -> None:
        self.source = source
        self.webhook = webhook  # this batch's webhook endpoint and artifact store, checked
        self.artifacts = artifacts
        self.parallel = parallel  # big files are checked in a helper process
        self.services = services
        self.batch_id = _batch_id(batch)
        self.dry_run = dry_run or services is None
        self.max_chars = max_chars
        self.strict = strict  # one rejected row and nothing is sent
        self.errors_path = errors_path
        self.on_error = on_error
        self.on_progress = on_progress

    def run(self) -> SubmitReport:
        """Submit (or estimate); raises ProducerError subclasses when nothing can go ahead."""
        errors = ErrorsFile(self.errors_path) if self.errors_path else None
        if errors is not None:
            check_not_the_input(errors.path, self.source)
            errors.check_writable()
        if self.services is not None:
            self.services.redis  # noqa: B018 - fail now, before reading anything, if unreachable
            if not self.dry_run:
                _check_broker(self.services)
        with temp_dir() as tmp:
            source = self.source
            if (self.max_chars is not None or self.strict) and not self.dry_run:
                if not source.rereadable:
                    source = source.spool(Path(tmp))
                before = file_state(source)
                seen_path = Path(tmp) / "seen-1.db"
                first = self._pass(source, self._lookup_sink(), seen_path, final=False)
                if self.strict:
                    check_none_rejected(first)
                check_limit(first.estimate, self.max_chars)
                check_unchanged(source, before)
            sink = self._lookup_sink() if self.dry_run else self._enqueuer()
            targets = not self.dry_run and (self.webhook or self.artifacts)
            if targets:  # before any job is queued: its end must find them
                self._set_targets()
            recorded_before = self._recorded_total()
            try:
                seen_path = Path(tmp) / "seen-2.db"
                report = self._pass(source, sink, seen_path, final=True, errors=errors)
                self._check_still_recorded(report, recorded_before)
            finally:
                if targets:
                    self._drop_targets_of_empty_batch()
                if errors is not None:
                    errors.close()
            if errors is not None and errors.count:
                report.errors_path = errors.path
        if self.dry_run:
            if self.strict:
                check_none_rejected(report)
            check_limit(report.estimate, self.max_chars)
        return report

    def _recorded_total(self) -> int | None:
        """Jobs the batch holds now (None for a dry run or an offline estimate)."""
        if self.dry_run or self.services is None:
            return None
        info = self.services.batches.info(self.batch_id)
        return info.total if info is not None else 0

    def _check_still_recorded(self, report: SubmitReport, before: int | None) -> None:
        """Every job this submission recorded is still there once it ends, on replicas too.

        Replication is asynchronous: a Sentinel failover during a submit promoted a
        replica that had 500 of 3,000 jobs just recorded, and the submit said all 3,000
        were accepted (QA pass). The batch's own count tells; with
        ``CLONEQUEUE_REDIS_MIN_REPLICAS`` the last writes are WAITed for as well.
        """
        if before is None or self.services is None or not report.new:
            return
        jobs = self.services.jobs
        if jobs.limits.min_replicas > 0 and jobs.wait_replicas():
            log.warning(
                "fewer than %d Redis replicas confirmed batch %s's last jobs in time; a "
                "failover now could lose them: `clonequeue status %s` shows what is "
                "recorded, and the same submit again records what is missing",
                jobs.wanted_replicas(),
                self.batch_id,
                self.batch_id,
            )
        after = self._recorded_total() or 0
        missing = before + report.new - after
        if missing > 0:
            raise ProducerError(
                f"Redis lost {plural(missing, 'job')} of the {report.new:,} this submit "
                f"recorded in batch {self.batch_id} (a failover to a replica that did not "
                f"have them yet, or a restart that lost its last writes). Run the same "
                "command again: rows recorded are skipped, the missing ones are recorded"
            )

    def _set_targets(self) -> None:
        from clonequeue.outputs.keys import ResultKeys
        from clonequeue.outputs.plan import set_batch_targets

        assert self.services is not None
        keys = ResultKeys(self.services.settings.namespace)
        set_batch_targets(
            self.services.redis, keys, self.batch_id, webhook=self.webhook, artifacts=self.artifacts
        )

    def _drop_targets_of_empty_batch(self) -> None:
        """A batch that got no job must not exist because of its targets alone."""
        assert self.services is not None
        key = self.services.batches.keys.batch(self.batch_id)
        if not self.services.redis.hexists(key, "total"):
            self.services.redis.delete(key)

    def _lookup_sink(self) -> Sink:
        return OfflineSink() if self.services is None else LookupSink(self.services.batches)

    def _enqueuer(self) -> Enqueuer:
        assert self.services is not None
        return Enqueuer(
            self.services.dispatcher, self.services.batches, self.batch_id, self.services.clock
        )

    def _pass(
        self,
        source: RowSource,
        sink: Sink,
        seen_path: Path,
        *,
        final: bool,
        errors: ErrorsFile | None = None,
    ) -> SubmitReport:
        """Read the source once; only the final pass reports rows and progress."""
        report = SubmitReport(self.batch_id, dry_run=self.dry_run)
        with_docs = self.batch_id if isinstance(sink, Enqueuer) else None
        child = self.parallel and parallel.use_child(source)
        try:
            with parallel.checked_chunks(
                source, seen_path, batch_id=with_docs, child=child
            ) as pieces:
                for chunk, position, size in pieces:
                    if with_docs is not None:
                        self._check_still_within_limit(report, chunk)
                    placement = sink.place(chunk.checked)
                    self._tally(report, chunk, placement, errors, report_rows=final)
                    if self.on_progress is not None and final:
                        self.on_progress(report, position, size)
            sink.finish()
        except (redis.exceptions.RedisError, kombu.exceptions.KombuError, OSError) as exc:
            if isinstance(exc, OSError) and not _is_connection_error(exc):
                raise
            refused = _refusal_within(exc)
            if refused is not None:  # it answers: "once Redis answers" sent users waiting
                raise ProducerError(
                    f"{refused}; {report.new:,} new jobs were recorded in batch "
                    f"{self.batch_id} before it; run the same command again once it takes "
                    "writes: rows already recorded are skipped, not sent twice"
                ) from None
            raise ProducerError(
                f"Redis (or the broker) failed after {report.new:,} new jobs were recorded in "
                f"batch {self.batch_id} (the rows being recorded then may be too; "
                f"{type(exc).__name__}: {exc}); run the same command again "
                "once Redis answers: rows already recorded are skipped, not sent twice"
            ) from None
        except BatchClosedError:
            raise  # it says what was recorded and what to do (not "will be sent")
        except Exception as exc:  # the caller's rows (a generator that raised, say)
            if with_docs is not None and report.new:
                exc.add_note(
                    f"clonequeue: {report.new:,} new jobs were recorded in batch "
                    f"{self.batch_id} before this error, and will be sent; submit the same "
                    "rows to that batch again to send the rest (rows already recorded are "
                    "skipped, not sent twice)"
                )
            raise
        return report

    def _check_still_within_limit(self, report: SubmitReport, chunk: intake.Chunk) -> None:
        """Stop before a chunk that would take the new jobs past ``max_chars``.

        The first pass found the input within the limit, so this only fires when the
        input changed since (a file still being written). Only a chunk whose every row
        would not fit as new is looked up, to count the rows Redis already holds.
        """
        if self.max_chars is None or self.services is None:
            return
        upper = sum(c.cost.total_chars for c in chunk.checked)
        if report.estimate.total_chars + upper <= self.max_chars:
            return
        new = LookupSink(self.services.batches).place(chunk.checked).created
        chars = report.estimate.total_chars + sum(c.cost.total_chars for c in new)
        if chars <= self.max_chars:
            return
        first_line = min(c.line for c in chunk.checked)
        raise ProducerError(
            f"the input changed while it was submitted: from line {first_line:,} on it "
            f"would bill {plural(chars, 'character')}, more than the limit of "
            f"{self.max_chars:,} (--max-chars, max_chars=). {plural(report.new, 'new job')} "
            "before that line "
            f"{'was' if report.new == 1 else 'were'} recorded in batch {self.batch_id}; "
            "nothing from that line on was. Let whatever writes the file finish, then "
            "submit it again into the same batch (--batch, batch=): rows already recorded "
            "are skipped"
        )

    def _tally(
        self,
        report: SubmitReport,
        chunk: intake.Chunk,
        placement: Placement,
        errors: ErrorsFile | None,
        *,
        report_rows: bool,
    ) -> None:
        report.rows += chunk.rows
        report.repeats += chunk.repeats
        report.new += len(placement.created)
        for checked in placement.created:
            report.estimate += checked.cost
        rejected = list(chunk.errors)
        for checked, batch, same in placement.existing:
            if same:
                report.already_submitted += 1
                report.already_in[batch] += 1
            else:
                report.conflicts += 1
                rejected.append(_conflict(checked, batch))
        rejected.sort(key=lambda e: e.line)
        report.rejected += len(rejected)
        for error in rejected:
            if len(report.errors) < KEEP_ERRORS:
                report.errors.append(error)
            if not report_rows:
                continue
            if errors is not None:
                errors.write(error)
            if self.on_error is not None:
                self.on_error(error)


FileState = tuple[int, int, int, int]  # device, inode, size, modification time (ns)


def file_state(source: RowSource) -> FileState | None:
    """What tells a file changed between two passes; None for a source of our own
    (a spool) or one in memory."""
    if not isinstance(source, InputFile) or source.path is None:
        return None
    try:
        st = os.stat(source.path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(source: RowSource, before: FileState | None) -> None:
    """Refuse to send a file that changed since it was checked: the check holds no more."""
    after = file_state(source)
    if before is None or after == before:
        return
    grew = ""
    if after is not None and after[:2] == before[:2] and after[2] != before[2]:
        grew = f" (from {plural(before[2], 'byte')} to {after[2]:,})"
    raise ProducerError(
        f"{source.label} changed while it was being checked{grew}; nothing was submitted: "
        "submit it once whatever writes it has finished (or submit a copy)"
    )


def check_not_the_input(errors_path: Path, source: RowSource) -> None:
    """The errors file replaces what was at its path: never the input itself."""
    if not isinstance(source, InputFile) or source.path is None:
        return
    try:
        same = errors_path.exists() and os.path.samefile(errors_path, source.path)
    except OSError:
        same = False
    if same or errors_path.resolve() == source.path.resolve():
        raise ProducerError(
            f"the errors file {errors_path} is the input itself: writing the rejected rows "
            "there would replace the input; nothing was submitted. Give --errors (errors=) "
            "another path, or leave it out for <input>.errors.jsonl"
        )


def nothing_submitted(
    report: SubmitReport, *, batch_exists: bool = False
) -> NothingSubmittedError | None:
    """Why no job went ahead (an empty input, or every row rejected); None if one did.

    ``batch_exists``: the batch named was there before, and is left as it was (it was
    not "not created")."""
    if report.accepted:
        return None
    sent = "would be" if report.dry_run else "was"
    if batch_exists:
        batch = f"batch {report.batch_id} {sent} left as it was"
    else:
        batch = f"batch {report.batch_id} {'would not be' if report.dry_run else 'was not'} created"
    if not report.rows:
        return NothingSubmittedError(
            f"the input holds no job (it is empty, or has only blank lines); nothing {sent} "
            f"submitted and {batch}"
        )
    return _rejected_error(report, f"every row was rejected; nothing {sent} submitted and {batch}")


def check_none_rejected(report: SubmitReport) -> None:
    """``strict``: raise :class:`RowsRejectedError` if any row was rejected."""
    if report.rejected:
        would = "would be" if report.dry_run else "was"
        raise _rejected_error(report, f"strict: nothing {would} submitted")


def describe_rejected(report: SubmitReport) -> str:
    """``3 of 10 rows rejected: line 2 (a): clone.fileUrl: …; line 5 …; …``."""
    shown = "; ".join(str(e) for e in report.errors[:SHOWN_IN_MESSAGE])
    more = " …" if report.rejected > SHOWN_IN_MESSAGE else ""
    return f"{report.rejected:,} of {plural(report.rows, 'row')} rejected: {shown}{more}"


def _rejected_error(report: SubmitReport, outcome: str) -> RowsRejectedError:
    where = f" (all in {report.errors_path})" if report.errors_path else ""
    return RowsRejectedError(
        f"{describe_rejected(report)}{where}; {outcome}",
        rejected=list(report.errors),
        count=report.rejected,
    )


def _conflict(checked: Checked, batch: str) -> RowError:
    return RowError(
        checked.line,
        checked.custom_id,
        [
            f"custom_id already used in batch {batch} with different content; "
            "use another custom_id (or purge that batch)"
        ],
        checked.original,
    )


def _batch_id(batch: str | None) -> str:
    if batch is None:
        return new_batch_id()
    try:
        return check_batch_id(batch)
    except ValueError as exc:
        raise InputError(f"--batch {batch!r}: {exc}") from None


def _is_connection_error(exc: OSError) -> bool:
    return isinstance(exc, ConnectionError | TimeoutError)


def _check_broker(services: Services) -> None:
    """The broker must answer before the first job is recorded."""
    try:
        with services.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except (kombu.exceptions.KombuError, OSError) as exc:
        refused = _refusal_within(exc)
        if refused is not None:  # it answered: "cannot reach … start it" sent users astray
            raise ProducerError(f"{refused}; nothing was submitted") from None
        raise ProducerError(
            f"cannot reach the broker ({type(exc).__name__}: {exc}); nothing was submitted: "
            "start it or set CLONEQUEUE_BROKER_URL"
        ) from None


def _refusal_within(exc: BaseException) -> str | None:
    """A Redis broker's refusal (MISCONF, OOM) that kombu re-raised as its own error."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        refused = refusal_line(seen)
        if refused is not None:
            return refused
        seen = seen.__cause__ or seen.__context__
    return None
