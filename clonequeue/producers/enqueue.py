"""Record validated jobs in Redis and publish their first message, a chunk at a time.

Per chunk: one Lua call records the jobs (existing custom_ids are reported, not
changed) and gives each first create its entry in the due-index; then the create
messages go out through kombu's own producer in one pipelined batch
(clonequeue.dispatch). A producer that dies in between, or a Redis that loses the
messages, leaves due entries behind: the watchdog re-drives them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kombu.exceptions
import redis

from clonequeue.dispatch.dispatcher import CeleryDispatcher
from clonequeue.producers.intake import Checked
from clonequeue.store.batches import BatchStore

log = logging.getLogger(__name__)


def new_batch_id() -> str:
    """A readable, sortable, unique batch id: ``b-20261125-101530-3f2a``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"b-{stamp}-{secrets.token_hex(2)}"


BATCH_NAME_RULE = (
    "a batch name is 1-64 letters, digits, '.', '_' or '-', and does not start with '-'"
)


def check_batch_id(value: str) -> str:
    """Batch names follow :data:`BATCH_NAME_RULE`; the CLI and the Python API check here.

    Every later command takes the name as an argument, where a leading '-' would read
    as an option (``clonequeue status -x``).
    """
    if not 1 <= len(value) <= 64 or not all(c.isalnum() or c in "._-" for c in value):
        raise ValueError(BATCH_NAME_RULE)
    if value.startswith("-"):
        raise ValueError(
            f"{BATCH_NAME_RULE} (it would read as an option: `clonequeue status {value}`)"
        )
    return value


@dataclass
class Placement:
    """Where the rows of one chunk went: recorded now, or found already in Redis."""

    created: list[Checked] = field(default_factory=list)
    existing: list[tuple[Checked, str, bool]] = field(default_factory=list)  # batch, same?


class Enqueuer:
    """Turns checked rows into job records and their first messages."""

    def __init__(
        self,
        dispatcher: CeleryDispatcher,
        batches: BatchStore,
        batch_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dispatcher = dispatcher
        self._batches = batches
        self.batch_id = batch_id
        self._clock = clock  # the fleet's: first creates are due by Redis's time
        self.unsent = 0  # recorded jobs whose first message the broker refused
        self._since: float | None = None  # when the first chunk was placed (fleet time)

    def place(self, chunk: Sequence[Checked]) -> Placement:
        """Record the chunk's jobs and publish a create message for each new one."""
        placement = Placement()
        if not chunk:
            return placement
        now = self._clock()
        if self._since is None:
            self._since = now  # a cancel or purge of the batch after this stops the submit
        docs = [(c.custom_id, c.doc or "") for c in chunk]
        result = self._batches.create_jobs(self.batch_id, docs, now=now, since=self._since)
        existing = {job_id: (batch, same) for job_id, batch, same in result.existing}
        for checked in chunk:
            found = existing.get(checked.custom_id)
            if found is None:
                placement.created.append(checked)
            else:
                placement.existing.append((checked, *found))
        self.publish_creates([c.custom_id for c in placement.created])
        return placement

    def publish_creates(self, job_ids: Sequence[str]) -> None:
        """The first message of each job, pipelined through one producer batch.

        The jobs are recorded, each with its due entry, before this: if the broker
        fails now (Redis crashed between the two), the watchdog sends these messages
        within the recovery bound, so the submit goes on instead of giving up.
        """
        if not job_ids:
            return
        try:
            self._dispatcher.publish_first_creates(job_ids)
        except (kombu.exceptions.KombuError, redis.exceptions.RedisError, OSError) as exc:
            self.unsent += len(job_ids)
            log.warning(
                "the broker failed (%s: %s) while sending the first messages of %d recorded "
                "jobs; the watchdog sends them once it answers",
                type(exc).__name__,
                exc,
                len(job_ids),
            )

    def finish(self) -> None:
        """Nothing to hand over: every job recorded has its entry in the due-index."""
