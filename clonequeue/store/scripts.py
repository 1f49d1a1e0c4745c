"""Load the Lua scripts that make every state change one atomic step in Redis."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis

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
        self._scripts = {
            name: client.register_script(prelude + "\n" + _source(name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, args: list[Any], client: Any = None) -> list[Any]:
        """Run script ``name``; ``args`` become ARGV (all keys are built inside from ARGV[1])."""
        result = self._scripts[name](keys=[], args=args, client=client)
        return result if isinstance(result, list) else [result]
