"""One remote task: its plan (decided at creation) and how it looks at a given time.

Nothing runs in the background: a task stores when it leaves the queue and when it
finishes, and its status is computed from the simulated clock on every read. So
tens of thousands of tasks cost memory only, and advancing the clock moves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clonequeue.api.models import TaskStatus
from clonequeue.constants import MODEL_ID_TTL_S

CDN_BASE_URL = "https://cdn.sim.jimmyai.local"
FAIL_TRIGGER = "__fail__"  # in a clone's fileUrl or an audio's contentText: that task fails

CLONE_FAILURES = (
    "the source audio must be between 15 and 60 seconds long",
    "no speech was detected in the source audio",
    "the source file could not be downloaded",
)
AUDIO_FAILURES = (
    "speech synthesis failed: the text could not be rendered with this voice",
    "speech synthesis timed out",
)


class Kind(StrEnum):
    CLONE = "clone"
    AUDIO = "audio"


MODEL_NAMES = {Kind.CLONE: "soundCloningClone", Kind.AUDIO: "soundCloningAudio"}


@dataclass(slots=True, eq=False)
class Task:
    """A task's whole life, planned at creation. ``account`` is a token fingerprint."""

    id: str
    kind: Kind
    account: str
    body: dict[str, Any]
    body_sha256: str
    chars: int
    charge: float
    created_at: float
    processing_at: float
    finished_at: float
    error: str | None  # set at creation when the task is going to fail
    model_id: str | None  # clone: the model it yields; audio: the model it speaks with
    subtitles: bool
    trace_id: str
    activated: bool = False  # clone only: a production audio used its model
    refunded: bool = False

    def status(self, now: float) -> TaskStatus:
        if now < self.processing_at:
            return TaskStatus.QUEUED
        if now < self.finished_at:
            return TaskStatus.PROCESSING
        return TaskStatus.FAILED if self.error is not None else TaskStatus.COMPLETED

    @property
    def model_expires_at(self) -> float:
        """Clone only: after this, an unactivated modelId is refused."""
        return self.finished_at + MODEL_ID_TTL_S

    def public(
        self, now: float, *, full: bool = True, files_url: str | None = None
    ) -> dict[str, Any]:
        """``data`` of an answer; ``full=False`` is the shorter shape a create returns.

        ``files_url``: the simulator's own address, which then serves the files
        (``/_sim/files/<id>.wav``); without it the URLs are a CDN's, not fetchable.
        """
        status = self.status(now)
        data: dict[str, Any] = {
            "id": self.id,
            "object": "audio",
            "created": int(self.created_at),
            "model": MODEL_NAMES[self.kind],
            "status": status.value,
            "error": self.error if status is TaskStatus.FAILED else None,
            "traceId": self.trace_id,  # not documented: clients must tolerate unknown fields
        }
        if not full:
            return data
        done = status is TaskStatus.COMPLETED
        if self.kind is Kind.CLONE:
            data["modelId"] = self.model_id if done else None
        else:
            data["modelId"] = self.model_id
        if files_url is not None:
            audio, subtitle = (
                f"{files_url}/_sim/files/{self.id}.wav",
                f"{files_url}/_sim/files/{self.id}.srt",
            )
        else:
            audio, subtitle = f"{CDN_BASE_URL}/{self.id}.mp3", f"{CDN_BASE_URL}/{self.id}.srt"
        data["audioUrl"] = audio if done else None
        data["subtitleFile"] = subtitle if done and self.subtitles else None
        return data

    def record(self, now: float, *, files_url: str | None = None) -> dict[str, Any]:
        """Everything the simulator knows about the task, for ``GET /_sim/tasks/{id}``."""
        record: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status(now).value,
            "account": self.account,
            "created_at": self.created_at,
            "processing_at": self.processing_at,
            "finished_at": self.finished_at,
            "will_fail": self.error is not None,
            "error": self.error,
            "model_id": self.model_id,
            "body": self.body,
            "body_sha256": self.body_sha256,
            "chars": self.chars,
            "charge": self.charge,
            "refunded": self.refunded,
            "public": self.public(now, files_url=files_url),
        }
        if self.kind is Kind.CLONE and self.error is None:
            record["model_activated"] = self.activated
            record["model_expires_at"] = None if self.activated else self.model_expires_at
        return record
