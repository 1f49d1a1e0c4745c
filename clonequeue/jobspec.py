"""A job as a pipeline hands it over: one clone plus the production audios it asks for.

``clone`` and each entry of ``audios`` carry the API's own field names (an audio
is the audio request minus ``modelId``, which the clone produces). ``custom_id``
is the caller's key for the job and its id in Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clonequeue.api.billing import CostEstimate, billed_chars, preview_chars
from clonequeue.api.models import AudioSpec, CloneRequest
from clonequeue.constants import MAX_AUDIOS_PER_JOB

CUSTOM_ID_MAX_CHARS = 128
DEFAULT_AUDIO_ID_RULE = (
    "an audio without one is named <job custom_id>-<n>, n its position in the job from 1"
)


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


class AudioIdCollision(ValueError):
    """Two audios of one job have the same custom_id, one of them maybe a default one.

    The message names the audios as in JSONL (``audios[1]``); :meth:`describe` names
    them in another input's terms (a CSV row's line).
    """

    def __init__(
        self, audio_id: str, first: int, second: int, given: tuple[str | None, str | None]
    ) -> None:
        self.audio_id, self.first, self.second, self.given = audio_id, first, second, given
        super().__init__(
            self.describe(lambda i: f"audios[{i}]", lambda i: f"audios[{i}].custom_id", "custom_id")
        )

    def __reduce__(self) -> tuple[type[AudioIdCollision], tuple[Any, ...]]:
        return type(self), (self.audio_id, self.first, self.second, self.given)

    def describe(
        self, audio: Callable[[int], str], id_field: Callable[[int], str], id_name: str
    ) -> str:
        """The collision in words: ``audio(i)`` names audio ``i``, ``id_field(i)`` its id field."""
        first, second, audio_id = self.first, self.second, self.audio_id
        an_id = ("an " if id_name[0] in "aeiou" else "a ") + id_name
        first_given, second_given = (given is not None for given in self.given)
        if first_given and second_given:
            return f"{id_field(second)} '{audio_id}' is used twice in this job"
        if second_given:  # the first one has this id by default
            return (
                f"{id_field(second)}: '{audio_id}' is also the default id of {audio(first)}, "
                f"which has no {id_name} ({DEFAULT_AUDIO_ID_RULE}); set {an_id} on "
                f"{audio(first)}, or use another id here"
            )
        return (
            f"{id_field(second)}: not given, so it is '{audio_id}' by default "
            f"({DEFAULT_AUDIO_ID_RULE}), which is already the {id_name} of {audio(first)}; "
            f"set {an_id} on {audio(second)}, or give {audio(first)} another"
        )


class JobSpec(BaseModel):
    """A validated job row. Building one checks every documented API rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_id: CustomId
    clone: CloneRequest
    audios: list[AudioItem] = Field(default_factory=list, max_length=MAX_AUDIOS_PER_JOB)

    @model_validator(mode="after")
    def _audio_ids_are_unique(self) -> Self:
        first_of: dict[str, int] = {}
        for index in range(len(self.audios)):
            audio_id = self.audio_custom_id(index)
            first = first_of.setdefault(audio_id, index)
            if first != index:
                given = (self.audios[first].custom_id, self.audios[index].custom_id)
                raise AudioIdCollision(audio_id, first, index, given)
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
