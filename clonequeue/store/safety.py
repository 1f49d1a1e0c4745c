"""Whether a Redis keeps what the fleet writes: checked once when a worker starts.

Our records are the truth (README, "Redis"): a Redis that keeps nothing on disk
loses every batch on restart, one that evicts keys loses records silently (and a
create whose record went may be sent twice). Nothing stops a fleet pointed at one,
so say so, once, where the operator looks.
"""

from __future__ import annotations

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
