"""Deliveries and downloads as records: state, every attempt, when the next one is due.

``tries`` counts every attempt; ``round_tries`` those since an operator's redelivery
or re-fetch, which starts the retry schedule over. An item moves
``pending → sending → done | failed | disabled`` (``sending`` back to ``pending``
for a retry). Only the worker whose claim moved it to ``sending`` acts,
and the claim is a lease: a worker killed mid-attempt leaves ``sending`` with a lease
that runs out, and the results pass re-drives it. The ``due`` score is when the pass
should step in: the attempt's own time when no message was sent for it (a long
wait), or that time plus a grace when a countdown message is on its way.

An item is recorded only while its batch (and, for a job's item, its job) exists, in
one script with its place in the batch's list: a results pass that read a job before
a ``purge`` and records the job's delivery after it adds nothing, and whatever was
recorded before is in the list the purge deletes from (:meth:`ItemStore.purge_batch`).
Every other write (claim, finish, reopen) changes an existing record only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import redis

from clonequeue.outputs.keys import ResultKeys

MAX_ATTEMPTS_KEPT = 30  # every attempt is counted; the last ones are kept in full
OPEN_STATES = ("pending", "sending")

# KEYS: item, due zset, batch list, batch hash[, job]. ARGV: item id, document JSON, now,
# retention_s. 'ok', 'exists' (a re-read stream entry) or 'orphan' (the batch or job is
# gone: purged, or expired).
_ADD = """
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return 'orphan' end
end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[4]) then return 'exists' end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 'ok'
"""

# KEYS: item, due zset. ARGV: item id, now, lease_s, grace_s.
_CLAIM = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'gone'} end
local doc = cjson.decode(raw)
local now = tonumber(ARGV[2])
if doc.state == 'sending' then
  if (doc.lease_until or 0) > now then return {'busy'} end
elseif doc.state ~= 'pending' then
  return {doc.state}
end
if (doc.next_at or 0) > now + 1 then return {'early'} end
doc.state = 'sending'
doc.lease_until = now + tonumber(ARGV[3])
doc.claim = (doc.claim or 0) + 1
redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
redis.call('ZADD', KEYS[2], doc.lease_until + tonumber(ARGV[4]), ARGV[1])
return {'ok', cjson.encode(doc)}
"""

# KEYS: item, due zset. ARGV: item id, attempt JSON, state, next_at ('' = none),
# due score ('' = none), fields JSON (merged into the document), max attempts kept,
# the claim's number. Only the latest claim finishes: one whose lease ran out (a worker
# frozen, a download slower than its lease) and was claimed again is stale.
_FINISH = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 'gone' end
local doc = cjson.decode(raw)
if doc.state ~= 'sending' or (doc.claim or 0) ~= tonumber(ARGV[8]) then return 'stale' end
local attempts = doc.attempts
if type(attempts) ~= 'table' then attempts = {} end
attempts[#attempts + 1] = cjson.decode(ARGV[2])
while #attempts > tonumber(ARGV[7]) do table.remove(attempts, 1) end
doc.attempts = attempts
doc.tries = (doc.tries or 0) + 1
doc.round_tries = (doc.round_tries or 0) + 1
for k, v in pairs(cjson.decode(ARGV[6])) do doc[k] = v end
doc.state = ARGV[3]
doc.lease_until = nil
if ARGV[4] == '' then doc.next_at = nil else doc.next_at = tonumber(ARGV[4]) end
redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[1])
end
return 'ok'
"""

# KEYS: item, due zset. ARGV: item id, now, allowed states (comma-separated),
# fields JSON. An operator's redelivery / re-fetch: back to pending, due now.
_REOPEN = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 'gone' end
local doc = cjson.decode(raw)
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if doc.state == s then allowed = true end
end
if not allowed then return doc.state end
for k, v in pairs(cjson.decode(ARGV[4])) do doc[k] = v end
doc.state = 'pending'
doc.next_at = tonumber(ARGV[2])
doc.round = (doc.round or 0) + 1
doc.round_tries = 0
redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
return 'ok'
"""


# KEYS: due zset. ARGV: item id, now, new due score. The pass's re-drive: only while
# the item is still overdue (a worker's finish may have rescheduled it since the pass
# read the index); 1 if postponed, so the pass publishes a message.
_POSTPONE_IF_OVERDUE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
return 1
"""


class ItemStore:
    """The records of one kind (``webhook`` or ``artifact``) of follow-up work."""

    def __init__(self, client: redis.Redis, keys: ResultKeys, kind: str, retention_s: int) -> None:
        self.client = client
        self.keys = keys
        self.kind = kind
        self.retention_s = retention_s
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._reopen = client.register_script(_REOPEN)
        self._postpone = client.register_script(_POSTPONE_IF_OVERDUE)

    @property
    def due_key(self) -> str:
        return self.keys.due(self.kind)

    def add(self, item_id: str, doc: dict[str, Any], *, now: float) -> bool:
        """Record a new item, due now, at the end of its batch's list.

        False if it exists (a re-read stream entry), or if its batch, or its job
        (``doc["job"]``, when set), is gone: purged or expired since it was read.
        """
        doc = {**doc, "id": item_id, "state": "pending", "next_at": now, "tries": 0}
        doc.setdefault("attempts", [])
        batch = doc["batch"]
        guards = [self.keys.batch(batch)] + ([self.keys.job(doc["job"])] if doc.get("job") else [])
        out = self._add(
            keys=[
                self.keys.item(self.kind, item_id),
                self.due_key,
                self.keys.batch_items(self.kind, batch),
                *guards,
            ],
            args=[item_id, json.dumps(doc), repr(now), self.retention_s],
        )
        return bool(out == "ok")

    def get(self, item_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.item(self.kind, item_id))
        return json.loads(raw) if raw is not None else None

    def replace(self, item_id: str, doc: dict[str, Any], *, now: float) -> None:
        """Overwrite an item that is not being worked on (a new source after a retry)."""
        fields = {k: v for k, v in doc.items() if k not in ("id", "state")}
        self._reopen(
            keys=[self.keys.item(self.kind, item_id), self.due_key],
            args=[item_id, repr(now), "pending,done,failed,disabled", json.dumps(fields)],
        )

    def claim(
        self, item_id: str, *, now: float, lease_s: float, grace_s: float
    ) -> dict[str, Any] | None:
        """Move the item to ``sending`` under a lease; None when another holds it or it is done.

        The document returned carries the claim's number (``claim``): :meth:`finish` needs it.
        """
        out = cast(
            list[str],
            self._claim(
                keys=[self.keys.item(self.kind, item_id), self.due_key],
                args=[item_id, repr(now), repr(lease_s), repr(grace_s)],
            ),
        )
        return json.loads(out[1]) if out[0] == "ok" else None

    def finish(
        self,
        item_id: str,
        attempt: dict[str, Any],
        *,
        claim: int,
        state: str,
        next_at: float | None = None,
        due_at: float | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Record an attempt and the item's next state (``pending`` with ``next_at`` to retry);
        False, recording nothing, unless ``claim`` (the claimed document's) is the latest."""
        out = self._finish(
            keys=[self.keys.item(self.kind, item_id), self.due_key],
            args=[
                item_id,
                json.dumps(attempt),
                state,
                "" if next_at is None else repr(next_at),
                "" if due_at is None else repr(due_at),
                json.dumps(fields or {}),
                MAX_ATTEMPTS_KEPT,
                claim,
            ],
        )
        return bool(out == "ok")

    def reopen(self, item_id: str, *, now: float, states: tuple[str, ...]) -> bool:
        """An operator's redelivery or re-fetch of an item in one of ``states``."""
        out = self._reopen(
            keys=[self.keys.item(self.kind, item_id), self.due_key],
            args=[item_id, repr(now), ",".join(states), "{}"],
        )
        return bool(out == "ok")

    def overdue(self, *, now: float, limit: int) -> list[str]:
        """Items the pass should drive now (no live message, or a lease that ran out)."""
        return [
            str(i)
            for i in cast(list[str], self.client.zrangebyscore(self.due_key, "-inf", now, 0, limit))
        ]

    def postpone_if_overdue(self, item_id: str, *, now: float, due_at: float) -> bool:
        """The pass is about to publish a message for the item: step in again only if it
        is lost. False if the item is no longer overdue (a worker rescheduled it after
        the pass read the index: its own next time stands, and no message is needed)."""
        out = self._postpone(keys=[self.due_key], args=[item_id, repr(now), repr(due_at)])
        return bool(out == 1)

    def forget(self, item_id: str) -> None:
        """An item whose record expired or was purged."""
        self.client.zrem(self.due_key, item_id)

    def purge_batch(self, batch_id: str) -> int:
        """Delete the batch's items, their due entries and its list; returns how many items.

        Call it once the batch's own records are gone: no item can then be added to the
        list (see :meth:`add`), and a worker's attempt in progress only updates a
        record that exists, so nothing comes back.
        """
        key = self.keys.batch_items(self.kind, batch_id)
        removed = start = 0
        while True:
            ids = [str(i) for i in cast(list[str], self.client.lrange(key, start, start + 499))]
            if not ids:
                break
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*[self.keys.item(self.kind, i) for i in ids])
            pipe.zrem(self.due_key, *ids)
            removed += int(pipe.execute()[0])
            start += len(ids)
        self.client.delete(key)
        return removed

    def of_batch(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """The batch's items in the order they were recorded (expired ones skipped)."""
        key = self.keys.batch_items(self.kind, batch_id)
        start = 0
        while True:
            ids = cast(list[str], self.client.lrange(key, start, start + 499))
            if not ids:
                return
            raws = cast(
                list[str | None], self.client.mget([self.keys.item(self.kind, i) for i in ids])
            )
            for raw in raws:
                if raw is not None:
                    yield json.loads(raw)
            start += len(ids)
