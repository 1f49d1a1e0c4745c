"""The suite's RabbitMQ vhosts are its own: made for the run, holding our queues, then gone."""

from __future__ import annotations

import time

import pytest
from kombu import Connection, Exchange, Queue

from clonequeue.local import rabbitmq

pytestmark = pytest.mark.rabbitmq


def vhost_names() -> set[str]:
    return set(rabbitmq._ctl("list_vhosts", "-q", "--no-table-headers", "name").split())


def test_a_temporary_vhost_holds_its_queues_and_is_deleted_with_them() -> None:
    reason = rabbitmq.unavailable_reason()
    if reason is not None or not rabbitmq.shutil.which("rabbitmqctl"):
        pytest.skip(f"needs rabbitmqctl to list vhosts: {reason or 'not on PATH'}")
    with rabbitmq.temporary_vhost(prefix="clonequeue-vhost-test") as vhost:
        assert vhost.name in vhost_names()
        assert vhost.url.endswith(f"/{vhost.name}")
        with Connection(vhost.url) as conn:
            queue = Queue("probe", Exchange("probe", type="topic"), routing_key="probe")  # type: ignore[no-untyped-call]
            queue.bind(conn.channel()).declare()
            assert "probe" in vhost.queues()
            assert vhost.connection_count() == 1
            vhost.close_connections("vhost test")
            with pytest.raises(conn.connection_errors):  # the client hears it is closed
                conn.drain_events(timeout=10)
            deadline = time.monotonic() + 10
            while vhost.connection_count() and time.monotonic() < deadline:
                time.sleep(0.1)  # the broker drops it once the client answered
            assert vhost.connection_count() == 0
    assert vhost.name not in vhost_names()
