"""What happened, for tests to assert on: every create, every poll, every refund.

The ledger is the ground truth a chaos test compares the job store with: "no job
was created twice" is ``summary()["duplicate_creates"] == 0``, and polling cadence
is read from the simulated times in ``polls``. Writes are O(1); reads are O(n).

``counts`` keys are ``"<METHOD> <route> <status>"``: route is ``clones``, ``audios``,
``task`` (GET of a task) or ``other`` (unknown paths); status is the HTTP status,
or ``lost`` for a create whose connection was closed unanswered. Only API requests
are counted, never ``/_sim/`` admin calls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

Answer = Literal["sent", "lost", "slow"]


@dataclass(slots=True)
class CreateEntry:
    task_id: str
    kind: str
    body: dict[str, Any]
    body_sha256: str
    chars: int
    charge: float
    at: float
    answer: Answer


@dataclass(slots=True)
class RefundEntry:
    task_id: str
    amount: float
    at: float


class Ledger:
    """Append-only records of one simulator run (until ``POST /_sim/reset``)."""

    def __init__(self) -> None:
        self.creates: list[CreateEntry] = []
        self.polls: dict[str, list[float]] = {}
        self.refunds: list[RefundEntry] = []
        self.counts: Counter[str] = Counter()

    def record_create(self, entry: CreateEntry) -> None:
        self.creates.append(entry)

    def record_poll(self, task_id: str, at: float) -> None:
        times = self.polls.get(task_id)
        if times is None:
            self.polls[task_id] = [at]
        else:
            times.append(at)

    def record_refund(self, task_id: str, amount: float, at: float) -> None:
        self.refunds.append(RefundEntry(task_id, amount, at))

    def count(self, method: str, route: str, status: int | str) -> None:
        self.counts[f"{method} {route} {status}"] += 1

    def to_json(self) -> dict[str, Any]:
        """The whole ledger as JSON-ready data (shared, not copied: serialize it at once)."""
        return {
            "creates": [
                {
                    "task_id": e.task_id,
                    "kind": e.kind,
                    "body": e.body,
                    "body_sha256": e.body_sha256,
                    "chars": e.chars,
                    "charge": e.charge,
                    "at": e.at,
                    "answer": e.answer,
                }
                for e in self.creates
            ],
            "polls": self.polls,
            "refunds": [
                {"task_id": r.task_id, "amount": r.amount, "at": r.at} for r in self.refunds
            ],
            "counts": dict(self.counts),
        }

    def summary(self) -> dict[str, Any]:
        """Totals a test asserts on without walking the whole ledger itself."""
        by_body = Counter(entry.body_sha256 for entry in self.creates)
        duplicates = {sha: n for sha, n in by_body.items() if n > 1}
        statuses = Counter[str]()
        for key, n in self.counts.items():
            statuses[key.rsplit(" ", 1)[1]] += n
        return {
            "creates_total": len(self.creates),
            "clones_total": sum(1 for entry in self.creates if entry.kind == "clone"),
            "audios_total": sum(1 for entry in self.creates if entry.kind == "audio"),
            "duplicates": duplicates,
            "duplicate_creates": sum(n - 1 for n in duplicates.values()),
            "polls_total": sum(len(times) for times in self.polls.values()),
            "http_429": statuses["429"],
            "http_5xx": sum(n for status, n in statuses.items() if status.startswith("5")),
            "lost_responses": sum(1 for entry in self.creates if entry.answer == "lost"),
            "slow_creates": sum(1 for entry in self.creates if entry.answer == "slow"),
            "charged_total": round(sum(entry.charge for entry in self.creates), 6),
            "refunds_total": len(self.refunds),
            "refunded_amount": round(sum(entry.amount for entry in self.refunds), 6),
        }
