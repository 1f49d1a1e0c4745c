"""The job store's Redis client: it waits through a Redis restart, and fails fast at the CLI."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from clonequeue.config import load_settings
from clonequeue.errors import StoreError
from clonequeue.local import EmbeddedRedis, free_port
from clonequeue.services import Services
from clonequeue.store.connect import redis_client

OUTAGE_S = 6.0  # longer than redis-py's own default retries last (about 5 s at most)


def test_a_command_waits_through_a_redis_restart(tmp_path: Path) -> None:
    with EmbeddedRedis().start(directory=tmp_path) as server, redis_client(server.url) as client:
        client.set("key", "value")
        server.stop()  # SHUTDOWN: the AOF has the key
        restarter = threading.Timer(OUTAGE_S, server.restart)
        restarter.start()
        started = time.monotonic()
        try:
            assert client.get("key") == "value"
        finally:
            restarter.join()
        assert time.monotonic() - started >= OUTAGE_S - 0.5


def test_services_say_at_once_that_redis_is_not_there() -> None:
    settings = load_settings(env_file=None, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
        _ = Services(settings).redis
    assert time.monotonic() - started < 5.0
