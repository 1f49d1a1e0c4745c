"""Hold our records up against the simulator's ledger: was anything lost or paid twice?

The tests, the chaos suite and the benchmarks end with this audit. A create in the
ledger is matched to the step whose request had the same body; every job must be
finished; a step is created at most once, unless it is reported `unknown` (the
create's answer never came, so the step may exist without our knowing its id); a
step we recorded with a remote id must be that create, and its final status, modelId
and audioUrl must be what the simulator says.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clonequeue.api.models import AudioRequest, CloneRequest
from clonequeue.store.records import TERMINAL_STATES, doc_audios

TERMINAL = {s.value for s in TERMINAL_STATES}


def sent_body(request: dict[str, Any], model_id: str | None) -> dict[str, Any]:
    """The body a worker sends for a stored request (the same models build it)."""
    if model_id is None and "contentText" in request and "fileUrl" not in request:
        return {**request, "modelId": None}  # an audio whose clone never finished
    if "fileUrl" in request:
        return CloneRequest.model_validate(request).to_body()
    return AudioRequest.model_validate({**request, "modelId": model_id}).to_body()


def body_sha256(body: dict[str, Any]) -> str:
    """The simulator's key for a request body (sorted keys, compact, UTF-8)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class AuditReport:
    jobs: int = 0
    states: Counter[str] = field(default_factory=Counter)
    creates: int = 0
    polls: int = 0
    unfinished: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # steps created twice, not unknown
    unknown_creates: int = 0  # creates in the ledger for steps reported unknown
    orphans: list[str] = field(default_factory=list)  # creates no step accounts for
    mismatches: list[str] = field(default_factory=list)  # our record disagrees with the API

    @property
    def ok(self) -> bool:
        return not (self.unfinished or self.duplicates or self.orphans or self.mismatches)

    def problems(self) -> str:
        parts = [
            f"{name}: {values[:5]}"
            for name, values in (
                ("unfinished", self.unfinished),
                ("created twice", self.duplicates),
                ("untracked creates", self.orphans),
                ("disagree with the API", self.mismatches),
            )
            if values
        ]
        return "; ".join(parts) or "none"

    def table(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            **dict(self.states),
            "creates": self.creates,
            "polls": self.polls,
            "created twice": len(self.duplicates),
            "creates of unknown steps": self.unknown_creates,
            "untracked creates": len(self.orphans),
            "unfinished": len(self.unfinished),
            "disagreements": len(self.mismatches),
        }


def audit(
    docs: Iterable[dict[str, Any]],
    ledger: dict[str, Any],
    tasks: dict[str, dict[str, Any]] | None = None,
) -> AuditReport:
    """Compare job documents with the ledger (and, if given, the simulator's task records).

    ``tasks`` maps remote id to the simulator's ``/_sim/tasks/{id}`` record.
    """
    report = AuditReport()
    creates_by_body: dict[str, list[str]] = defaultdict(list)
    for create in ledger["creates"]:
        creates_by_body[create["body_sha256"]].append(create["task_id"])
    report.creates = len(ledger["creates"])
    report.polls = sum(len(times) for times in ledger.get("polls", {}).values())
    accounted: set[str] = set()
    for doc in docs:
        report.jobs += 1
        report.states[doc["state"]] += 1
        if doc["state"] not in TERMINAL:
            report.unfinished.append(f"{doc['id']} ({doc['state']})")
        model_id = doc["clone"].get("model_id")
        steps = [("clone", doc["clone"], sent_body(doc["clone"]["request"], None))]
        for index, audio in enumerate(doc_audios(doc)):
            steps.append((f"audio {index}", audio, sent_body(audio["request"], model_id)))
        for name, step, body in steps:
            where = f"{doc['id']} {name}"
            created = creates_by_body.get(body_sha256(body), [])
            if step["state"] == "unknown":
                report.unknown_creates += len(created)
                accounted.update(created)
                continue
            accounted.update(created)
            if len(created) > 1:
                report.duplicates.append(f"{where}: {len(created)} creates")
            remote_id = step.get("remote_id")
            if remote_id and remote_id not in created:
                report.mismatches.append(f"{where}: remote id {remote_id} is not in the ledger")
            if tasks is not None and remote_id in tasks:
                _compare(report, where, step, tasks[remote_id])
    report.orphans = [c["task_id"] for c in ledger["creates"] if c["task_id"] not in accounted]
    return report


def _compare(report: AuditReport, where: str, step: dict[str, Any], record: dict[str, Any]) -> None:
    task = record["public"]
    status = task.get("status")
    # a deadline may fail a step whose task was still running: that is our decision
    ours_by_deadline = (step.get("error") or {}).get("kind") == "deadline"
    if (
        step["state"] in ("completed", "failed")
        and status != step["state"]
        and not ours_by_deadline
    ):
        report.mismatches.append(f"{where}: we say {step['state']}, the API says {status}")
    if step["state"] == "completed":
        for ours, theirs in (
            ("model_id", "modelId"),
            ("audio_url", "audioUrl"),
            ("subtitle_file", "subtitleFile"),
        ):
            if step.get(ours) != task.get(theirs) and (ours != "model_id" or "model_id" in step):
                report.mismatches.append(
                    f"{where}: {ours} {step.get(ours)!r} != {task.get(theirs)!r}"
                )
