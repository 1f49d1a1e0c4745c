"""Record validated jobs in Redis and publish their first message, a chunk at a time.

Per chunk: one Lua call records the jobs (existing custom_ids are reported, not
changed), lists them as unsent and renews the producer's heartbeat; then the
create messages go out through kombu's own producer in one pipelined batch; then
they leave the unsent set. A producer that dies in between leaves them unsent;
once its heartbeat lapses the watchdog sends them (repair.py).

Messages are built and published by Celery itself, in pipelined batches (messages.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clonequeue.producers.intake import Checked
from clonequeue.store.batches import BatchStore
from clonequeue.workers.publish import TaskPublisher, clone_call

HEARTBEAT_S = 60.0


def new_batch_id() -> str:
    """A readable, sortable, unique batch id: ``b-20261125-101530-3f2a``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"b-{stamp}-{secrets.token_hex(2)}"


def check_batch_id(value: str) -> str:
    """Batch names are 1–64 letters, digits, '.', '_' or '-'."""
    if not 1 <= len(value) <= 64 or not all(c.isalnum() or c in "._-" for c in value):
        raise ValueError("a batch name is 1-64 letters, digits, '.', '_' or '-'")
    return value


@dataclass
class Placement:
    """Where the rows of one chunk went: recorded now, or found already in Redis."""

    created: list[Checked] = field(default_factory=list)
    existing: list[tuple[Checked, str, bool]] = field(default_factory=list)  # batch, same?


class Enqueuer:
    """Turns checked rows into job records and their first messages."""

    def __init__(self, app: Any, batches: BatchStore, batch_id: str) -> None:
        self._app = app
        self._batches = batches
        self.batch_id = batch_id
        self._queue = app.clonequeue_queues.submit
        self._publisher = TaskPublisher(app)

    def place(self, chunk: Sequence[Checked]) -> Placement:
        """Record the chunk's jobs and publish a create message for each new one."""
        placement = Placement()
        if not chunk:
            return placement
        now = time.time()
        docs = [(c.custom_id, c.doc or "") for c in chunk]
        result = self._batches.create_jobs(
            self.batch_id, docs, now=now, producing_until=now + HEARTBEAT_S
        )
        existing = {job_id: (batch, same) for job_id, batch, same in result.existing}
        for checked in chunk:
            found = existing.get(checked.custom_id)
            if found is None:
                placement.created.append(checked)
            else:
                placement.existing.append((checked, *found))
        created_ids = [c.custom_id for c in placement.created]
        self.publish_creates(created_ids)
        self._batches.mark_sent(self.batch_id, created_ids)
        return placement

    def publish_creates(self, job_ids: Sequence[str]) -> None:
        """The first message of each job, pipelined through one producer batch."""
        if job_ids:
            self._publisher.publish(clone_call(job_id, 0, self._queue) for job_id in job_ids)

    def finish(self) -> None:
        """The producer is done with this batch: the watchdog may repair what is left unsent."""
        self._batches.client.hdel(self._batches.keys.batch(self.batch_id), "producing_until")
