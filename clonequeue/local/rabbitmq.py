"""A RabbitMQ vhost of our own on the machine's broker, deleted afterwards.

Tests and benches share the machine's RabbitMQ (127.0.0.1:5672, guest/guest) with
whoever else uses it, so each run works in a vhost it created: its queues, the
``celery_delayed_*`` exchanges and its connections are its own, and deleting the vhost
removes all of them. ``rabbitmqctl`` is used when it can reach the node (it can as
root or as the rabbitmq user); otherwise the management HTTP API on port 15672.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

from clonequeue.local.ports import LOCALHOST

AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
USER = "guest"
PASSWORD = "guest"
_CTL_TIMEOUT_S = 30.0


class RabbitUnavailable(RuntimeError):
    """Neither rabbitmqctl nor the management API can create a vhost here (says why)."""


@dataclass(frozen=True, slots=True)
class Vhost:
    """A vhost on the local broker and how we reach its admin side."""

    name: str
    via: str  # "rabbitmqctl" or "http"

    @property
    def url(self) -> str:
        """The AMQP URL of this vhost (guest/guest on 127.0.0.1:5672)."""
        return f"amqp://{USER}:{PASSWORD}@{LOCALHOST}:{AMQP_PORT}/{quote(self.name, safe='')}"

    def delete(self) -> None:
        """Delete the vhost (its queues and connections go with it)."""
        _delete(self)

    def create(self) -> None:
        """Create the vhost again, with full rights for guest."""
        _create(self)

    def close_connections(self, reason: str = "clonequeue test") -> None:
        """Close every client connection of this vhost (a broker restart as clients see it)."""
        if self.via == "rabbitmqctl":
            _ctl("close_all_connections", "-p", self.name, reason)
            return
        for conn in _http("GET", f"vhosts/{quote(self.name, safe='')}/connections") or []:
            _http("DELETE", f"connections/{quote(conn['name'], safe='')}")

    def connection_count(self) -> int:
        if self.via == "rabbitmqctl":
            out = _ctl("list_connections", "-q", "--no-table-headers", "vhost")
            return sum(1 for line in out.splitlines() if line.strip() == self.name)
        return len(_http("GET", f"vhosts/{quote(self.name, safe='')}/connections") or [])

    def queues(self) -> dict[str, dict[str, Any]]:
        """Queue name → {type, messages, memory, consumers} of this vhost."""
        fields = ("name", "type", "messages", "memory", "consumers")
        if self.via == "rabbitmqctl":
            out = _ctl("list_queues", "-p", self.name, "-q", "--formatter", "json", *fields)
            rows = json.loads(out or "[]")
        else:
            rows = _http("GET", f"queues/{quote(self.name, safe='')}") or []
        return {row["name"]: {k: row.get(k) for k in fields[1:]} for row in rows}

    def consumers(self) -> list[dict[str, Any]]:
        """Each consumer of this vhost: its queue, prefetch count and whether it acks."""
        fields = ("queue_name", "prefetch_count", "ack_required")
        if self.via == "rabbitmqctl":
            out = _ctl("list_consumers", "-p", self.name, "-q", "--formatter", "json", *fields)
            rows = json.loads(out or "[]")
        else:
            rows = _http("GET", f"consumers/{quote(self.name, safe='')}") or []
            rows = [{**row, "queue_name": row["queue"]["name"]} for row in rows]
        return [{k: row.get(k) for k in fields} for row in rows]


def unavailable_reason() -> str | None:
    """Why no vhost can be made here, or None when one can."""
    try:
        _pick_admin()
    except RabbitUnavailable as exc:
        return str(exc)
    return None


@contextmanager
def temporary_vhost(prefix: str = "clonequeue-test") -> Iterator[Vhost]:
    """A new vhost ``<prefix>-<random>`` with full rights for guest, deleted on exit."""
    via = _pick_admin()
    vhost = Vhost(f"{prefix}-{uuid.uuid4().hex[:10]}", via)
    _create(vhost)
    try:
        yield vhost
    finally:
        _delete(vhost)


def _pick_admin() -> str:
    reasons = []
    if shutil.which("rabbitmqctl"):
        try:
            _ctl("list_vhosts", "-q")
            return "rabbitmqctl"
        except (subprocess.SubprocessError, OSError) as exc:
            reasons.append(f"rabbitmqctl cannot reach the node ({_short(exc)})")
    else:
        reasons.append("no rabbitmqctl on PATH")
    try:
        _http("GET", "whoami")
        return "http"
    except (urllib3.exceptions.HTTPError, OSError, RuntimeError) as exc:
        reasons.append(f"no management API on {LOCALHOST}:{MANAGEMENT_PORT} ({_short(exc)})")
    raise RabbitUnavailable("; ".join(reasons))


def _create(vhost: Vhost) -> None:
    if vhost.via == "rabbitmqctl":
        _ctl("add_vhost", vhost.name)
        _ctl("set_permissions", "-p", vhost.name, USER, ".*", ".*", ".*")
        return
    name = quote(vhost.name, safe="")
    _http("PUT", f"vhosts/{name}")
    _http("PUT", f"permissions/{name}/{USER}", {"configure": ".*", "write": ".*", "read": ".*"})


def _delete(vhost: Vhost) -> None:
    if vhost.via == "rabbitmqctl":
        _ctl("delete_vhost", vhost.name)
    else:
        _http("DELETE", f"vhosts/{quote(vhost.name, safe='')}")


def _ctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args],
        capture_output=True,
        text=True,
        timeout=_CTL_TIMEOUT_S,
        check=True,
    )
    return done.stdout


def _http(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = urllib3.make_headers(basic_auth=f"{USER}:{PASSWORD}")
    headers["content-type"] = "application/json"
    response = urllib3.request(
        method,
        f"http://{LOCALHOST}:{MANAGEMENT_PORT}/api/{path}",
        headers=headers,
        body=json.dumps(body).encode() if body is not None else None,
        timeout=urllib3.Timeout(connect=1.0, read=10.0),
        retries=False,
    )
    if response.status >= 300:
        raise RuntimeError(f"{method} /api/{path}: HTTP {response.status}")
    return response.json() if response.data else None


def _short(exc: BaseException) -> str:
    text = getattr(exc, "stderr", None) or str(exc)
    return re.sub(r"\s+", " ", str(text)).strip()[:160]
