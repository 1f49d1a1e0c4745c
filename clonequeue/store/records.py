"""The job document in Redis and the result record pipelines read.

A job is one JSON document at ``<ns>:job:<custom_id>`` (README, "Redis keys"):
one key, one TTL, about 1 KB with one production audio. The Lua scripts change it;
Python builds it once and reads it.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import StrEnum
from typing import Any

from clonequeue.api.billing import billed_chars, preview_chars
from clonequeue.jobspec import JobSpec

DOC_VERSION = 1
CLONE_ITEM = "c"


class JobState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    CLONING = "cloning"
    PRODUCING = "producing"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a create went unanswered: may exist and be billed
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.UNKNOWN, JobState.CANCELLED}
)


class StepState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


class ErrorKind(StrEnum):
    """Why a step ended badly; ``code``/``msg`` keep the API's own words when it gave any."""

    REMOTE = "remote"  # the API ran the task and reported it failed (refunded)
    REJECTED = "rejected"  # the API refused the create
    MODEL_EXPIRED = "model_expired"  # the modelId was older than 3 days and never used
    DEADLINE = "deadline"  # still running when CLONEQUEUE_JOB_DEADLINE_S passed
    GAVE_UP = "gave_up"  # transient errors outlasted CLONEQUEUE_SUBMIT_MAX_ATTEMPTS
    NO_ANSWER = "no_answer"  # the create was sent; its answer never came (unknown)
    LOST_WORKER = "lost_worker"  # a worker died between sending and storing (unknown)
    TASK_ID_REUSED = "task_id_reused"  # the answer's task id was another step's (unknown)
    BAD_ANSWER = "bad_answer"  # completed without the fields it must carry
    TASK_LOST = "task_lost"  # the API refused every poll for CLONEQUEUE_TASK_LOST_AFTER_S
    # Not an end: the last transient error of a create that waits for its retry
    RATE_LIMITED = "rate_limited"  # a 429
    UNAVAILABLE = "unavailable"  # a 5xx, or a read that failed before the create was sent


def content_hash(spec: JobSpec) -> str:
    """A short fingerprint of what the job asks for, to tell a re-submission from a conflict."""
    canonical = json.dumps(spec.model_dump(exclude_none=True), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def new_job_doc(spec: JobSpec, batch_id: str, now: float) -> dict[str, Any]:
    """The document for a job accepted into ``batch_id`` (nothing sent yet)."""
    doc: dict[str, Any] = {
        "v": DOC_VERSION,
        "id": spec.custom_id,
        "batch": batch_id,
        "h": content_hash(spec),
        "state": JobState.PENDING.value,
        "created_at": round(now, 3),
        "updated_at": round(now, 3),
        "clone": {
            "state": StepState.PENDING.value,
            "gen": 0,
            "attempts": 0,
            "chars": preview_chars(spec.clone.contentText),
            "request": spec.clone.to_body(),
        },
    }
    if spec.audios:  # never an empty list: Redis' cjson would write it back as {}
        doc["audios"] = [
            {
                "custom_id": spec.audio_custom_id(i),
                "state": StepState.PENDING.value,
                "gen": 0,
                "attempts": 0,
                "chars": billed_chars(audio.contentText),
                "request": audio.to_body(),
            }
            for i, audio in enumerate(spec.audios)
        ]
    return doc


def doc_audios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The audio steps of a document (cjson writes an empty list as ``{}``)."""
    audios = doc.get("audios")
    return audios if isinstance(audios, list) else []


def job_error(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The error that explains a job's state: the clone's, or a summary of its audios'."""
    clone = doc["clone"]
    if clone.get("error") and clone["state"] in ("failed", "unknown"):
        return dict(clone["error"])
    if doc["state"] == "cancelled":  # a retry's last error no longer explains it
        return cancel_error(doc)
    if clone.get("error") and clone["state"] == "pending":  # waiting for its retry
        return dict(clone["error"])
    audios = doc_audios(doc)
    bad = [a for a in audios if a["state"] in ("failed", "unknown")]
    if not bad:
        return None
    first = dict(bad[0].get("error") or {"msg": "no reason recorded"})
    if len(audios) > 1:
        first["msg"] = (
            f"{len(bad)} of {len(audios)} audios {bad[0]['state']}; first: {first['msg']}"
        )
    return first


def cancel_error(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"kind": "cancelled", "msg": "cancelled by … at …", "by", "at"}``."""
    asked = doc.get("cancelled") or {}
    by, at = asked.get("by") or None, asked.get("at")
    when = (
        time.strftime(" at %Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        if isinstance(at, int | float)
        else ""
    )
    msg = f"cancelled by {by}{when}" if by else f"cancelled{when} (the batch was cancelled)"
    return {"kind": "cancelled", "msg": msg, "by": by, "at": at}


def audio_result(doc: dict[str, Any], audio: dict[str, Any]) -> dict[str, Any]:
    """One entry of a result's ``audios``; one that never started in a finished job is
    ``skipped``, with why (its clone failed, was not answered, or the job was cancelled)."""
    state, error = audio["state"], audio.get("error")
    if state == "pending" and doc["state"] in ("failed", "unknown", "cancelled"):
        state = "skipped"
        clone = doc["clone"]
        why = (clone.get("error") or {}).get("msg")
        if clone["state"] == "failed":
            msg = f"not made: the clone failed ({why})" if why else "not made: the clone failed"
        elif clone["state"] == "unknown":
            msg = "not made: the clone's outcome is unknown (see the job's error)"
        else:
            msg = f"not made: the job ended {doc['state']}"
        error = {"kind": "skipped", "msg": msg}
    elif state == "cancelled":  # a retry's last error no longer explains it
        error = cancel_error(doc)
    return {
        "custom_id": audio["custom_id"],
        "status": state,
        "audioUrl": audio.get("audio_url"),
        "subtitleFile": audio.get("subtitle_file"),
        "error": error,
    }


def result_record(doc: dict[str, Any]) -> dict[str, Any]:
    """The record ``clonequeue results`` prints for a job (one JSONL line)."""
    clone = doc["clone"]
    record = {
        "custom_id": doc["id"],
        "batch": doc["batch"],
        "status": doc["state"],
        "modelId": clone.get("model_id"),
        "audioUrl": clone.get("audio_url"),
        "audios": [audio_result(doc, a) for a in doc_audios(doc)],
        "error": job_error(doc),
        "attempts": clone.get("attempts", 0),
        "retries": doc.get("retries", 0),
        "created_at": doc.get("created_at"),
        "finished_at": doc.get("finished_at"),
    }
    if doc.get("untracked"):  # paid tasks of creates whose step had moved on (record_created)
        record["untracked_tasks"] = [t["task"] for t in doc["untracked"]]
    return record
