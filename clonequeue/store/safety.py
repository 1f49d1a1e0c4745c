"""Whether a Redis keeps what the fleet writes: checked once when a worker starts.

Our records are the truth (README, "Redis"): a Redis that keeps nothing on disk
loses every batch on restart, one that evicts keys loses records silently (and a
create whose record went may be sent twice). Nothing stops a fleet pointed at one,
so say so, once, where the operator looks.
"""

from __future__ import annotations

import uuid

import redis

README_HINT = '(README, "Redis")'


def durability_warnings(client: redis.Redis) -> list[str]:
    """One line per way ``client``'s server can lose job records; [] when it keeps them,
    or when it cannot tell (CONFIG disabled, as on some managed Redis)."""
    try:
        config = {
            **client.config_get("appendonly"),
            **client.config_get("save"),
            **client.config_get("maxmemory-policy"),
        }
    except redis.exceptions.ResponseError:
        return []
    values = {_text(k or ""): _text(v or "") for k, v in config.items()}
    warnings = []
    if values.get("appendonly") == "no":
        save = values.get("save", "")
        if not save:
            warnings.append(
                "this Redis keeps nothing on disk (appendonly no, no snapshots): a restart "
                f"loses every job record; run it with --appendonly yes {README_HINT}"
            )
        else:
            warnings.append(
                f"this Redis keeps only snapshots (appendonly no, save {save}): a crash loses "
                "the job records written since the last one; run it with --appendonly yes "
                f"{README_HINT}"
            )
    policy = values.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        warnings.append(
            f"this Redis evicts keys under memory pressure (maxmemory-policy {policy}): job "
            "records can vanish and creates be sent twice; set maxmemory-policy noeviction"
        )
    return warnings


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def write_refusal_now(client: redis.Redis) -> str | None:
    """Why ``client``'s server refuses writes at this moment, from INFO (None: it takes
    them): full under ``noeviction``, or its AOF or snapshot failing to write (a full
    disk: MISCONF). Reads go on then, so a read-only look (the exporter's) must ask."""
    info = client.info()
    maxmemory = int(info.get("maxmemory", 0) or 0)
    policy = _text(str(info.get("maxmemory_policy", "")))
    if maxmemory and int(info.get("used_memory", 0)) >= maxmemory and policy == "noeviction":
        return "out of memory: used_memory has reached maxmemory (noeviction)"
    if _text(str(info.get("aof_last_write_status", "ok"))) == "err":
        return "its AOF cannot be written (MISCONF; often a full disk)"
    if _text(str(info.get("rdb_last_bgsave_status", "ok"))) == "err":
        return "its last snapshot failed (MISCONF while stop-writes-on-bgsave-error is on)"
    return None


class DataMarker:
    """Tells a Redis that came back empty from one that kept its data.

    A Redis restarted without its AOF (its files lost, a binary that cannot read them,
    another Redis at the same address) answers as if all were well: the workers carried
    on with nothing to do, and a batch's jobs were gone without a word. The first pass
    sets a marker; a process that saw one and finds it gone, or another, says so.
    """

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client, self._key = client, key
        self._seen: str | None = None

    def lost(self, now: float) -> str | None:
        """The marker this process saw before, if Redis no longer holds it; sets one."""
        marker = self._client.get(self._key)
        if marker is None:
            self._client.set(self._key, f"{now:.0f}:{uuid.uuid4().hex[:12]}", nx=True)
            marker = self._client.get(self._key)
        seen, self._seen = self._seen, str(marker) if marker is not None else None
        return seen if seen is not None and seen != self._seen else None
