"""Worker counters of webhook attempts and downloads (README, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_ATTEMPTS = Counter(
    "clonequeue_webhook_attempts",
    "Webhook delivery attempts by verdict: delivered, retry, disable (410), stop.",
    ["verdict"],
)
ARTIFACT_DOWNLOADS = Counter(
    "clonequeue_artifact_downloads",
    "Artifact downloads by outcome: stored, kept (already stored), retry, failed.",
    ["outcome"],
)
ARTIFACT_BYTES = Counter("clonequeue_artifact_bytes", "Bytes of artifacts stored.")
