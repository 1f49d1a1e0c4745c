"""Redis keys of deliveries and downloads (README, "Redis keys"), beside the store's own."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "results"  # the consumer group on <ns>:events
WEBHOOK = "webhook"
ARTIFACT = "artifact"
KINDS = (WEBHOOK, ARTIFACT)


@dataclass(frozen=True, slots=True)
class ResultKeys:
    ns: str

    def item(self, kind: str, item_id: str) -> str:
        """STRING: one delivery (``webhook``) or download (``artifact``) as JSON."""
        return f"{self.ns}:{kind}:{item_id}"

    def batch_items(self, kind: str, batch_id: str) -> str:
        """LIST: the batch's delivery or download ids, in the order they were recorded."""
        return f"{self.ns}:batch:{batch_id}:{kind}s"

    def due(self, kind: str) -> str:
        """ZSET: item ids scored by when the results pass should (re-)drive them."""
        return f"{self.ns}:{kind}s:due"

    @property
    def events(self) -> str:
        return f"{self.ns}:events"

    def batch(self, batch_id: str) -> str:
        return f"{self.ns}:batch:{batch_id}"

    def job(self, job_id: str) -> str:
        return f"{self.ns}:job:{job_id}"

    @property
    def disabled_endpoints(self) -> str:
        """SET: webhook URLs that answered 410 Gone: nothing more is sent to them."""
        return f"{self.ns}:webhooks:disabled"
