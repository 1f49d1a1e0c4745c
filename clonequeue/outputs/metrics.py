"""Worker counters of webhook attempts and downloads (README, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_ATTEMPTS = Counter(
    "clonequeue_webhook_attempts",
    "Webhook delivery attempts by verdict: delivered, retry, gave_up (the last retry of "
    "the schedule), disable (410), stop. A delivery skipped because its endpoint was "
    "disabled before sends nothing and is not counted.",
    ["verdict"],
)
ARTIFACT_DOWNLOADS = Counter(
    "clonequeue_artifact_downloads",
    "Artifact downloads by outcome: stored, kept (already stored), retry, failed.",
    ["outcome"],
)
ARTIFACT_BYTES = Counter("clonequeue_artifact_bytes", "Bytes of artifacts stored.")
