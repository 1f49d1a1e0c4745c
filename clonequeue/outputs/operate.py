"""Operator and pipeline side: list deliveries, redeliver, fetch again, artifacts in records."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis

from clonequeue.config import Settings
from clonequeue.config.settings import store_url_problem
from clonequeue.config.webhook_url import UnsafeTargetError, check_url
from clonequeue.errors import InputError
from clonequeue.outputs.items import ItemStore
from clonequeue.outputs.keys import ARTIFACT, WEBHOOK, ResultKeys
from clonequeue.outputs.plan import Planner, artifact_items, batch_targets

MERGE_CHUNK = 500


def check_targets(webhook: str | None, artifacts: str | None) -> None:
    """A batch's webhook URL and artifact store, checked before anything is queued."""
    if webhook:
        try:
            check_url(webhook)
        except UnsafeTargetError as exc:
            raise InputError(f"--webhook: {exc}") from None
    if artifacts:
        problem = store_url_problem(artifacts)
        if problem is not None:
            raise InputError(f"--artifacts: {artifacts!r}: {problem}")


class Results:
    """Reads and operator actions on a batch's deliveries and downloads."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = ResultKeys(settings.namespace)
        retention = int(settings.retention_s)
        self.webhooks = ItemStore(client, self.keys, WEBHOOK, retention)
        self.artifacts = ItemStore(client, self.keys, ARTIFACT, retention)

    def purge_batch(self, batch: str) -> None:
        """Delete the batch's deliveries and downloads, with their due entries: once its
        own records are gone (``BatchStore.purge``), so none can be added after."""
        for store in (self.webhooks, self.artifacts):
            store.purge_batch(batch)

    def has_artifacts(self, batch: str) -> bool:
        return bool(batch_targets(self.client, self.keys, self.settings, batch).artifacts_url)

    def deliveries(self, batch: str) -> Iterator[dict[str, Any]]:
        """Every delivery of the batch with its attempts (the body left out)."""
        for doc in self.webhooks.of_batch(batch):
            doc.pop("body", None)
            doc["attempts"] = doc.get("attempts") or []
            yield doc

    def redeliver(self, batch: str, *, now: float | None = None) -> list[str]:
        """Failed and disabled deliveries back to pending (410'd endpoints re-enabled)."""
        now = time.time() if now is None else now
        reopened = []
        for doc in self.webhooks.of_batch(batch):
            if doc["state"] in ("failed", "disabled"):
                self.client.srem(self.keys.disabled_endpoints, doc["url"])
                if self.webhooks.reopen(doc["id"], now=now, states=("failed", "disabled")):
                    reopened.append(doc["id"])
        return reopened

    def refetch(
        self, batch: str, docs: Iterable[dict[str, Any]], *, now: float | None = None
    ) -> list[str]:
        """``retry --artifacts``: every finished file of the batch that is not stored, again.

        Files never planned (the store was set after the jobs finished) are planned now;
        stored ones are checked against their sha256 by the task and not downloaded again.
        """
        now = time.time() if now is None else now
        store_url = batch_targets(self.client, self.keys, self.settings, batch).artifacts_url
        if not store_url:
            raise InputError(
                f"batch {batch} has no artifact store: set CLONEQUEUE_ARTIFACTS_URL (or submit "
                "with --artifacts URL)"
            )
        planner = Planner(self.client, self.keys, self.settings, self.webhooks, self.artifacts)
        chosen = []
        for doc in docs:
            if doc.get("state") not in ("completed", "failed", "unknown", "cancelled"):
                continue
            planned = {i for _, i in planner.plan_artifacts(doc, store_url, now=now)}
            for item_id, _ in artifact_items(doc, store_url):
                if item_id in planned or self.artifacts.reopen(
                    item_id, now=now, states=("failed", "done")
                ):
                    chosen.append(item_id)
        return chosen


def artifact_view(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a result record shows of one artifact: where it is, or why it is not."""
    if item is None:
        return None
    if item["state"] == "done":
        return {
            "state": "stored",
            "url": item.get("url"),
            "bytes": item.get("bytes"),
            "sha256": item.get("sha256"),
        }
    view: dict[str, Any] = {"state": "failed" if item["state"] == "failed" else "pending"}
    if item.get("error"):
        view["error"] = item["error"]
    return view


def with_artifacts(
    client: redis.Redis, ns: str, pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """Result records, each with ``artifact`` (preview) and per audio ``artifact`` and
    ``subtitleArtifact`` where downloads were recorded. ``pairs``: (job doc, record)."""
    keys = ResultKeys(ns)
    chunk: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def flush() -> Iterator[dict[str, Any]]:
        ids = []
        for doc, record in chunk:
            job = doc["id"]
            ids += [f"{job}|preview"] + [
                f"{job}|{i}{s}" for i in range(len(record["audios"])) for s in ("", ".sub")
            ]
        raws = (
            cast(list[str | None], client.mget([keys.item(ARTIFACT, i) for i in ids]))
            if ids
            else []
        )
        found = {i: json.loads(r) for i, r in zip(ids, raws, strict=True) if r is not None}
        for doc, record in chunk:
            job = doc["id"]
            if f"{job}|preview" in found:
                record["artifact"] = artifact_view(found[f"{job}|preview"])
            for i, audio in enumerate(record["audios"]):
                if f"{job}|{i}" in found:
                    audio["artifact"] = artifact_view(found[f"{job}|{i}"])
                if f"{job}|{i}.sub" in found:
                    audio["subtitleArtifact"] = artifact_view(found[f"{job}|{i}.sub"])
            yield record
        chunk.clear()

    for pair in pairs:
        chunk.append(pair)
        if len(chunk) >= MERGE_CHUNK:
            yield from flush()
    yield from flush()
