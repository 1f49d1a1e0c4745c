"""Load the Lua scripts that make every state change one atomic step in Redis.

A script that meets a demoted master fails with its write's READONLY wrapped in a
script error ("Error running script ... -READONLY", Redis 6), and one that wrote
nothing is followed by a WAIT the replica refuses ("WAIT cannot be used with replica
instances"). redis-py's Sentinel connection turns neither into a reconnect, as it
does a plain READONLY reply: the error went up to the task, and a claim's undo that
failed so left a step that was never sent `submitting`, to end `unknown`
(tests/e2e/test_failover.py). A script aborts at its first refused write and a
replica applies none, so it is run again, on a new connection (which asks the
sentinels), through the ride-out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import redis
from redis.exceptions import NoScriptError, ResponseError

from clonequeue.constants import REDIS_RIDE_OUT_S

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a demoted master answers a script, or the WAIT after one (see above); and what a
# master answers that has fewer replicas than its `min-replicas-to-write` (an old master
# woken from a hang, its replicas gone to the new one: a write it took was lost at its
# demotion, QA pass), where the sentinels may already name another.
DEMOTED_MASTER_ERRORS = ("READONLY", "WAIT cannot be used with replica", "NOREPLICAS")

SCRIPT_NAMES = (
    "create_jobs",
    "check_step",
    "claim_create",
    "record_created",
    "release_create",
    "record_poll",
    "redrive",
    "unpark",
    "probe",
    "retry_job",
    "cancel_job",
    "watchdog_lock",
)


def _source(name: str) -> str:
    return (resources.files("clonequeue.store") / "lua" / f"{name}.lua").read_text("utf-8")


class Scripts:
    """The registered scripts; each call sends EVALSHA (and loads the script if Redis lost it)."""

    def __init__(self, client: redis.Redis) -> None:
        prelude = _source("prelude")
        self._client = client
        self._scripts = {
            name: client.register_script(prelude + "\n" + _source(name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, args: list[Any], client: Any = None) -> list[Any]:
        """Run script ``name``; ``args`` become ARGV (all keys are built inside from ARGV[1])."""
        script = self._scripts[name]
        if client is None:  # ours to run again; a caller's pipeline runs later, as one
            result = self._on_the_master(name, lambda: script(keys=[], args=args))
        else:
            result = script(keys=[], args=args, client=client)
        return result if isinstance(result, list) else [result]

    def _on_the_master(self, name: str, call: Callable[[], T]) -> T:
        """``call``, run again on a new connection while a demoted master refuses it."""
        deadline = time.monotonic() + REDIS_RIDE_OUT_S
        delay = 0.05
        while True:
            try:
                return call()
            except ResponseError as exc:
                demoted = any(text in str(exc) for text in DEMOTED_MASTER_ERRORS)
                if not demoted or time.monotonic() >= deadline:
                    raise
            log.warning(
                "script %s met a master that refuses writes (demoted, or without the replicas "
                "its min-replicas-to-write asks); running it again",
                name,
            )
            self._client.connection_pool.disconnect(inuse_connections=False)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def run_replicated(
        self, name: str, args: list[Any], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Run script ``name``, then ``WAIT replicas timeout_ms`` on the same connection.

        WAIT counts the replicas that acknowledged *this connection's* writes, so the
        two go in one pipeline (one connection, one round trip). Returns the script's
        reply and how many replicas have its writes.
        """
        return self._on_the_master(
            name, lambda: self._run_and_wait(name, args, replicas, timeout_ms)
        )

    def _run_and_wait(
        self, name: str, args: list[Any], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        script = self._scripts[name]
        for attempt in (1, 2):
            with self._client.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, 0, *args)
                pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
                try:
                    result, acked = pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
                    self._client.script_load(script.script)
                    continue
            reply = result if isinstance(result, list) else [result]
            return reply, int(acked)
        raise AssertionError("unreachable")
