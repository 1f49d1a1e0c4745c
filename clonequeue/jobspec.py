"""A job as a pipeline hands it over: one clone plus the production audios it asks for.

``clone`` and each entry of ``audios`` carry the API's own field names (an audio
is the audio request minus ``modelId``, which the clone produces). ``custom_id``
is the caller's key for the job and its id in Redis.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clonequeue.api.billing import CostEstimate, billed_chars, preview_chars
from clonequeue.api.models import AudioSpec, CloneRequest
from clonequeue.constants import MAX_AUDIOS_PER_JOB

CUSTOM_ID_MAX_CHARS = 128


def check_custom_id(value: str) -> str:
    """A custom_id: 1–128 printable characters without surrounding whitespace."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > CUSTOM_ID_MAX_CHARS:
        raise ValueError(f"is {len(value)} characters long; at most {CUSTOM_ID_MAX_CHARS}")
    if value != value.strip():
        raise ValueError("has leading or trailing whitespace")
    if any(not c.isprintable() for c in value):
        raise ValueError("contains control characters")
    return value


CustomId = Annotated[str, AfterValidator(check_custom_id)]


class AudioItem(AudioSpec):
    """One production audio of a job; ``custom_id`` defaults to ``<job custom_id>-<n>``."""

    custom_id: CustomId | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"custom_id"})


class JobSpec(BaseModel):
    """A validated job row. Building one checks every documented API rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_id: CustomId
    clone: CloneRequest
    audios: list[AudioItem] = Field(default_factory=list, max_length=MAX_AUDIOS_PER_JOB)

    @model_validator(mode="after")
    def _audio_ids_are_unique(self) -> Self:
        seen: set[str] = set()
        for index in range(len(self.audios)):
            audio_id = self.audio_custom_id(index)
            if audio_id in seen:
                raise ValueError(
                    f"audios[{index}].custom_id '{audio_id}' is used twice in this job"
                )
            seen.add(audio_id)
        return self

    def audio_custom_id(self, index: int) -> str:
        """The custom_id of audio ``index``, given or derived from the job's."""
        return self.audios[index].custom_id or f"{self.custom_id}-{index + 1}"

    def cost(self) -> CostEstimate:
        """What this job bills when everything succeeds: characters and create calls."""
        return CostEstimate(
            preview_chars=preview_chars(self.clone.contentText),
            production_chars=sum(billed_chars(a.contentText) for a in self.audios),
            clones=1,
            audios=len(self.audios),
        )
