"""From a finished job to the deliveries and downloads it calls for, recorded before sent.

Every id is derived from what caused it, so reading the same stream entry twice
(a pass that died before its XACK) records nothing twice: a job event's delivery is
``msg_<stream entry id>``, a batch's ``msg_batch_<batch>_<finished_at ms>``, an
artifact ``<job>|preview``, ``<job>|<audio index>``, ``<job>|<audio index>.sub``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, cast

import redis

from clonequeue.config import Settings
from clonequeue.outputs import artifacts as art
from clonequeue.outputs import webhooks as wh
from clonequeue.outputs.items import ItemStore
from clonequeue.outputs.keys import ResultKeys
from clonequeue.store.records import doc_audios, result_record

BATCH_WEBHOOK_FIELD = "webhook_url"  # in the batch hash: `submit --webhook`
BATCH_ARTIFACTS_FIELD = "artifacts_url"  # in the batch hash: `submit --artifacts`
COUNT_STATES = ("completed", "failed", "unknown", "cancelled")


@dataclass(frozen=True, slots=True)
class BatchTargets:
    webhook_url: str | None
    artifacts_url: str | None


def batch_targets(
    client: redis.Redis, keys: ResultKeys, settings: Settings, batch: str
) -> BatchTargets:
    webhook, artifacts = cast(
        list[str | None],
        client.hmget(keys.batch(batch), BATCH_WEBHOOK_FIELD, BATCH_ARTIFACTS_FIELD),
    )
    return BatchTargets(webhook or settings.webhook_url, artifacts or settings.artifacts_url)


def set_batch_targets(
    client: redis.Redis, keys: ResultKeys, batch: str, *, webhook: str | None, artifacts: str | None
) -> None:
    """Record a batch's own webhook / artifact store (before its jobs are queued)."""
    fields = {
        k: v for k, v in ((BATCH_WEBHOOK_FIELD, webhook), (BATCH_ARTIFACTS_FIELD, artifacts)) if v
    }
    if fields:
        client.hset(keys.batch(batch), mapping=fields)  # type: ignore[arg-type]


@dataclass
class Planner:
    client: redis.Redis
    keys: ResultKeys
    settings: Settings
    webhooks: ItemStore
    artifacts: ItemStore

    def job_finished(
        self,
        entry_id: str,
        fields: dict[str, str],
        *,
        now: float,
        known: dict[str, BatchTargets] | None = None,
    ) -> list[tuple[str, str]]:
        """Record what a job's terminal stream entry calls for; returns (kind, id) of new items.

        ``known``: batches' targets already read in this pass (a batch's are set before
        its jobs are queued, so they cannot appear later than its first entry).
        """
        job_id, batch = fields.get("job", ""), fields.get("batch", "")
        targets = (known or {}).get(batch)
        if targets is None:
            targets = batch_targets(self.client, self.keys, self.settings, batch)
            if known is not None:
                known[batch] = targets
        if not (targets.webhook_url or targets.artifacts_url):
            return []
        raw = self.client.get(self.keys.job(job_id))
        if raw is None:  # purged or expired before we got to it
            return []
        doc = json.loads(raw)
        new: list[tuple[str, str]] = []
        if targets.webhook_url and not superseded(doc, fields):
            state = fields.get("state") or doc["state"]
            data = wh.job_event_data(result_record(doc))
            item_id = f"msg_{entry_id}"
            body = wh.event_body(f"job.{state}", float(fields.get("at") or now), data)
            if self.webhooks.add(
                item_id,
                {
                    "batch": batch,
                    "job": job_id,
                    "type": f"job.{state}",
                    "url": targets.webhook_url,
                    "body": body,
                },
                now=now,
            ):
                new.append((self.webhooks.kind, item_id))
            new += self.batch_event(batch, targets.webhook_url, now=now)
        if targets.artifacts_url:
            new += self.plan_artifacts(doc, targets.artifacts_url, now=now)
        return new

    def batch_event(self, batch: str, url: str, *, now: float) -> list[tuple[str, str]]:
        """``batch.completed`` with the counts, once per time the batch finished."""
        info = cast(dict[str, str], self.client.hgetall(self.keys.batch(batch)))
        finished_at = info.get("finished_at")
        if not finished_at:
            return []
        item_id = f"msg_batch_{batch}_{round(float(finished_at) * 1000)}"
        counts = {s: max(int(info.get(s, 0)), 0) for s in COUNT_STATES}
        data = {
            "batch": batch,
            "total": int(info.get("total", 0)),
            **counts,
            "finished_at": float(finished_at),
            "results": f"clonequeue results {batch}",
        }
        body = wh.event_body("batch.completed", float(finished_at), data)
        doc = {"batch": batch, "job": None, "type": "batch.completed", "url": url, "body": body}
        return [(self.webhooks.kind, item_id)] if self.webhooks.add(item_id, doc, now=now) else []

    def plan_artifacts(
        self, doc: dict[str, Any], store_url: str, *, now: float
    ) -> list[tuple[str, str]]:
        """One download per finished file of the job; a changed source starts over."""
        new = []
        for item_id, item in artifact_items(doc, store_url):
            existing = self.artifacts.get(item_id)
            if existing is None:
                if self.artifacts.add(item_id, item, now=now):
                    new.append((self.artifacts.kind, item_id))
            elif existing.get("source") != item["source"] and existing["state"] != "sending":
                self.artifacts.replace(
                    item_id, {**item, "sha256": None, "bytes": None, "url": None}, now=now
                )
                new.append((self.artifacts.kind, item_id))
        return new


def superseded(doc: dict[str, Any], fields: dict[str, str]) -> bool:
    """The finish a stream entry records is no longer the job's: it was retried (or its
    late answer came) and finished again, or is running again, before the pass read the
    entry. Its event would carry the later record under the earlier type (QA pass: 14
    `job.failed` whose data said completed); the later finish's entry sends it."""
    if doc.get("state") != fields.get("state"):
        return True
    try:
        at, finished_at = float(fields.get("at") or "nan"), float(doc.get("finished_at") or "nan")
    except ValueError:
        return False
    if math.isnan(at) or math.isnan(finished_at):  # an entry or a record from before these
        return False
    return abs(at - finished_at) >= 1e-3


def artifact_items(doc: dict[str, Any], store_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, record) of every file a job's record points at, with where it goes."""
    job, batch = doc["id"], doc["batch"]
    base = {"batch": batch, "job": job}
    items = []
    preview = doc["clone"].get("audio_url")
    if preview:
        name = art.PREVIEW_STEM + art.extension(preview, ".mp3")
        items.append(
            (
                f"{job}|preview",
                {
                    **base,
                    "what": "preview",
                    "source": preview,
                    "dest": art.destination(store_url, batch, job, name),
                },
            )
        )
    for index, audio in enumerate(doc_audios(doc)):
        stem = art.audio_stem(str(audio["custom_id"]))
        for suffix, field, default, what in (
            ("", "audio_url", ".mp3", "audio"),
            (".sub", "subtitle_file", ".srt", "subtitle"),
        ):
            source = audio.get(field)
            if source:
                name = stem + art.extension(source, default)
                items.append(
                    (
                        f"{job}|{index}{suffix}",
                        {
                            **base,
                            "what": what,
                            "source": source,
                            "dest": art.destination(store_url, batch, job, name),
                        },
                    )
                )
    return items
