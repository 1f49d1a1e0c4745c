"""Run everything on one machine: free ports, managed child processes, an embedded Redis.

Used by the test suite and ``make demo``; nothing here is needed in production,
where Redis, workers and Flower are run by the platform.
"""

from __future__ import annotations

from clonequeue.local.ports import LOCALHOST, free_port, port_answers, wait_for_port
from clonequeue.local.processes import LocalServiceError, ManagedProcess, terminate_all
from clonequeue.local.redis import (
    EmbeddedRedis,
    ensure_redis,
    find_redis_server,
    redis_answers,
)

__all__ = [
    "LOCALHOST",
    "EmbeddedRedis",
    "LocalServiceError",
    "ManagedProcess",
    "ensure_redis",
    "find_redis_server",
    "free_port",
    "port_answers",
    "redis_answers",
    "terminate_all",
    "wait_for_port",
]
