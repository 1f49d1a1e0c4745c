"""Countdown messages on a Redis broker wait in a sorted set, not in their queue's list.

kombu's Redis transport has no delayed delivery: a message with an ETA goes into its
queue's list at once, a worker fetches it, and holds it in memory until it is due
(unacknowledged, so a killed worker's countdowns come back only after the visibility
timeout). Worse, under a binding rate limit a worker fetches one message per task
done, and the list is first in, first out: a poll that came due sat behind the polls
sent before it that were not due yet (10-40 s late in issue 15's bench), and a queue
fetched "most urgent first" fetched those future polls before due creates.

So a message we publish with a countdown (messages.py sets :data:`DELAY_HEADER`) is
added to ``<queue list key>:scheduled``, scored by when it is due on the broker's own
clock (``TIME`` in the script: no host's clock is trusted), exactly as kombu would have
pushed it onto the list (same payload, same priority key). Every worker process runs a
:class:`ScheduledMover` that moves what is due from each set onto its list in one
atomic script, every :data:`MOVE_INTERVAL_S`, in the order it came due. The lists then
hold only due work, which is what the workers' fetch order (queues.consume_order)
needs. Any worker moves every queue's set, so a countdown never waits for a worker
of its own queue to be running, and several movers never move a message twice (each
move is one script).

A message with :data:`FIRST_HEADER` (a clone's poll: it unlocks the job's audios)
waits in ``<list key>:scheduled:first`` instead and, when due, goes to the fetching
end of its list, ahead of due messages already waiting there. Under a binding rate
limit the poll list holds hundreds of due polls and gets a half or a third of the
fetches: in issue 15's bench, clones done at 9-15 s were first polled at ~62 s, and
their audios, created last, ended the batch 17 s after its last other create.
Those moved in one go keep their order (earliest due fetched first); the next go
waits until the list's fetching end holds none of them any more: pushed on top of
the ones before, the latest due went first and the earliest waited longest (clones
of the batch's first quarter polled 34 s after they ended, the last quarter's 8 s).

The hook is one wrapper around kombu's ``Channel._put`` (:func:`install`, called by
every publisher that sets the header): a message without the header goes on as
before. What kombu restores (a message a dead worker held) goes straight back onto
its list, never through ``_put``, so it is not delayed again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

# The countdown (s) a message is published with: it waits in the scheduled set.
DELAY_HEADER = "clonequeue_delay_s"
FIRST_HEADER = "clonequeue_first"  # when due, fetched before what waits in the list
SCHEDULED_SUFFIX = ":scheduled"
FIRST_SUFFIX = ":scheduled:first"
MOVE_INTERVAL_S = 0.1  # how late a due message may reach its list, at most (plus a round trip)
MOVE_BATCH = 500  # messages moved per set per script call
ERROR_LOG_EVERY_S = 30.0  # a broker outage is logged once this often, not every tick

# KEYS[1]: the scheduled set; ARGV: the payload, the countdown (µs).
SCHEDULE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# The header's key as it appears in a payload (JSON): a user's text in a message is
# base64 in its body, and JSON-escaped quotes would not match either.
FIRST_MARK = f'"{FIRST_HEADER}"'

# KEYS: triples of (scheduled set, its "first" set, its list). ARGV[1]: most to move
# per set; ARGV[2]: FIRST_MARK. Moves what is due, earliest first, to the list's back
# (kombu pushes with LPUSH and pops with BRPOP: the earliest due is fetched first), and
# what is due in the "first" set to the list's fetching end (RPUSH, latest due first,
# so the earliest is fetched first), unless that end still holds one moved so before
# (it waits for the next call: first in, first out). Returns how many moved in all,
# and whether a set had more due than ARGV[1] (the caller moves again at once).
MOVE_DUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local moved, more = 0, 0
for i = 1, #KEYS, 3 do
  for j = 0, 1 do
    local due = redis.call('ZRANGEBYSCORE', KEYS[i + j], '-inf', now, 'LIMIT', 0, limit)
    if j == 1 and #due > 0 then  -- the list's end is read only when a "first" one is due
      local tail = redis.call('LINDEX', KEYS[i + 2], -1)
      if tail and string.find(tail, ARGV[2], 1, true) then due = {} end
    end
    if #due > 0 then
      if j == 0 then
        redis.call('LPUSH', KEYS[i + 2], unpack(due))
      else
        local n = #due
        for k = 1, math.floor(n / 2) do due[k], due[n + 1 - k] = due[n + 1 - k], due[k] end
        redis.call('RPUSH', KEYS[i + 2], unpack(due))
      end
      redis.call('ZREM', KEYS[i + j], unpack(due))
      moved = moved + #due
      if #due == limit then more = 1 end
    end
  end
end
return {moved, more}
"""


_installed = False


def uses_scheduled_delay(app: Any) -> bool:
    """Whether ``app``'s broker is Redis, whose countdowns wait in the scheduled sets."""
    return bool(app.connection_for_write().transport.driver_type == "redis")


def scheduled_key(list_key: str) -> str:
    """The sorted set where a list's countdown messages wait until due."""
    return list_key + SCHEDULED_SUFFIX


def first_key(list_key: str) -> str:
    """The sorted set of countdown messages that go to the list's fetching end when due."""
    return list_key + FIRST_SUFFIX


def delay_of(message: dict[str, Any]) -> float | None:
    """The countdown a kombu message was published with, or None (it goes straight on)."""
    delay = float((message.get("headers") or {}).get(DELAY_HEADER) or 0)
    return delay if delay > 0 else None


def schedule(
    client: Any, list_key: str, payload: str, delay_s: float, *, first: bool = False
) -> None:
    """Add one message to ``list_key``'s scheduled set (or its "first" set), due
    ``delay_s`` from now (broker time)."""
    client.eval(*schedule_args(list_key, payload, delay_s, first=first))


def schedule_args(
    list_key: str, payload: str, delay_s: float, *, first: bool = False
) -> tuple[Any, ...]:
    """The arguments of ``EVAL`` that :func:`schedule` runs (for a pipelined batch)."""
    key = first_key(list_key) if first else scheduled_key(list_key)
    return (SCHEDULE, 1, key, payload, int(delay_s * 1_000_000))


def move_due(client: Any, list_keys: Iterable[str], *, batch: int = MOVE_BATCH) -> int:
    """Move every due message of ``list_keys``' scheduled sets onto the lists; how many."""
    keys: list[str] = []
    for key in list_keys:
        keys += [scheduled_key(key), first_key(key), key]
    if not keys:
        return 0
    total = 0
    while True:
        moved, more = client.eval(MOVE_DUE, len(keys), *keys, batch, FIRST_MARK)
        total += int(moved)
        if not int(more):
            return total


def install() -> None:
    """Wrap kombu's Redis ``Channel._put``: a message with :data:`DELAY_HEADER` is scheduled."""
    global _installed
    if _installed:
        return
    from kombu.transport import redis as kombu_redis
    from kombu.utils.json import dumps

    put = kombu_redis.Channel._put

    @functools.wraps(put)
    def _put(self: Any, queue: str, message: dict[str, Any], **kwargs: Any) -> Any:
        delay_s = delay_of(message)
        if delay_s is None:
            return put(self, queue, message, **kwargs)  # type: ignore[no-untyped-call]
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        first = bool((message.get("headers") or {}).get(FIRST_HEADER))
        payload = dumps(message)  # type: ignore[no-untyped-call]
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:  # Producer.batch(): one more command in its pipeline
            batch.add("eval", *schedule_args(key, payload, delay_s, first=first))
            return None
        with self.conn_or_acquire() as client:
            schedule(client, key, payload, delay_s, first=first)
        return None

    setattr(kombu_redis.Channel, "_put", _put)  # noqa: B010
    _installed = True


def scheduled_counts(client: Any, list_keys: Iterable[str]) -> dict[str, int]:
    """Messages waiting for their countdown, per list key."""
    with client.pipeline(transaction=False) as pipe:
        keys = list(list_keys)
        for key in keys:
            pipe.zcard(scheduled_key(key))
            pipe.zcard(first_key(key))
        counts = pipe.execute()
        return {key: int(counts[2 * i]) + int(counts[2 * i + 1]) for i, key in enumerate(keys)}


class ScheduledMover:
    """A daemon thread of a worker process: moves due countdown messages onto their lists.

    ``connect`` returns a new kombu connection to the broker; after an error (a
    failover, a restart) the mover drops it and connects again, so it follows the
    broker wherever it went.
    """

    def __init__(self, connect: Callable[[], Any], list_keys: Iterable[str]) -> None:
        self._connect = connect
        self._keys = list(list_keys)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduled-mover", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        connection: Any = None
        client: Any = None
        logged_at = float("-inf")
        while not self._stop.wait(MOVE_INTERVAL_S):
            try:
                if client is None:
                    connection = self._connect()
                    client = connection.default_channel._create_client()
                move_due(client, self._keys)
            except Exception as exc:  # noqa: BLE001 - the broker comes back; so does the mover
                client = None
                _close_quietly(connection)
                if time.monotonic() - logged_at >= ERROR_LOG_EVERY_S:
                    logged_at = time.monotonic()
                    log.warning("moving due countdown messages failed (retrying): %s", exc)
        _close_quietly(connection)


def _close_quietly(connection: Any) -> None:
    if connection is not None:
        try:
            connection.release()
        except Exception:  # a broken connection may fail to close
            log.debug("closing the mover's broker connection failed", exc_info=True)
