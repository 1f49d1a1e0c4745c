"""Send the creates a crashed producer recorded but never published.

Jobs sit in ``<ns>:batch:<id>:unsent`` from the moment they are recorded until
their first message is published. Once the producer's heartbeat
(``producing_until`` on the batch) has lapsed, whatever is left there was lost:
each job still pending at generation 0 gets its message. If a copy was published
after all, whichever runs second finds the job moved on and does nothing.
"""

from __future__ import annotations

from typing import cast

from clonequeue.store.batches import BatchStore
from clonequeue.store.jobs import Dispatch
from clonequeue.workers.context import Dispatcher


def repair_unsent(batches: BatchStore, dispatcher: Dispatcher, *, now: float) -> int:
    """Publish lost first messages; returns how many were sent."""
    sent = 0
    client, keys = batches.client, batches.keys
    for info in batches.list_batches(limit=1000):
        unsent_key = keys.batch_unsent(info.batch_id)
        if info.is_finished or not client.scard(unsent_key):
            continue
        producing_until = cast(
            str | None, client.hget(keys.batch(info.batch_id), "producing_until")
        )
        if producing_until and float(producing_until) > now:
            continue  # its producer is still at work
        for job_id in cast(set[str], client.smembers(unsent_key)):
            doc = batches.get(str(job_id))
            clone = doc["clone"] if doc else None
            if clone and clone["state"] == "pending" and clone["gen"] == 0:
                dispatcher.create(Dispatch(str(job_id), "c", 0))
                sent += 1
            client.srem(unsent_key, job_id)
    return sent
