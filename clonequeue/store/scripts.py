"""Load the Lua scripts that make every state change one atomic step in Redis."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

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
        result = self._scripts[name](keys=[], args=args, client=client)
        return result if isinstance(result, list) else [result]

    def run_replicated(
        self, name: str, args: list[Any], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int]:
        """Run script ``name``, then ``WAIT replicas timeout_ms`` on the same connection.

        WAIT counts the replicas that acknowledged *this connection's* writes, so the
        two go in one pipeline (one connection, one round trip). Returns the script's
        reply and how many replicas have its writes.
        """
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
