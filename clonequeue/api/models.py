"""Typed requests and answers of the JimmyAI SoundClone API.

Field names are the API's own (camelCase), so a job row, the request we send and
the provider's reference all read alike. Building a request model enforces every
documented rule: an invalid request can never reach the network.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from clonequeue.api import rules
from clonequeue.constants import (
    AUDIO_TEXT_MAX_CHARS,
    MAX_AUDIOS_PER_JOB,
    PITCH_MAX,
    PITCH_MIN,
    PREVIEW_TEXT_MAX_CHARS,
    SPEED_MAX,
    SPEED_MIN,
    VOL_MAX,
)

SoundVersion = Literal["v1", "v2"]
Emotion = Literal["happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral"]

FileUrl = Annotated[str, AfterValidator(rules.check_file_url)]
PreviewText = Annotated[
    str, AfterValidator(lambda t: rules.check_text(t, max_chars=PREVIEW_TEXT_MAX_CHARS))
]
AudioText = Annotated[
    str,
    AfterValidator(lambda t: rules.check_text(t, max_chars=AUDIO_TEXT_MAX_CHARS)),
    AfterValidator(rules.check_pause_markers),
]
Language = Annotated[str, AfterValidator(rules.check_language)]
ModelId = Annotated[str, AfterValidator(rules.check_model_id)]


class _Request(BaseModel):
    """Unknown fields are errors: a typo like ``emotoin`` must not be dropped silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set."""
        return self.model_dump(exclude_none=True)


class CloneRequest(_Request):
    """``POST /soundCloning/clones``: clone a voice and render its preview."""

    fileUrl: FileUrl
    contentText: PreviewText | None = None
    soundVersion: SoundVersion | None = None
    language: Language | None = None


class AudioSpec(_Request):
    """A production audio as a job row asks for it: the audio request minus ``modelId``."""

    contentText: AudioText
    soundVersion: SoundVersion | None = None
    language: Language | None = None
    emotion: Emotion | None = None
    speed: float | None = Field(None, ge=SPEED_MIN, le=SPEED_MAX, strict=True)
    vol: float | None = Field(None, gt=0, le=VOL_MAX, strict=True)
    pitch: StrictInt | None = Field(None, ge=PITCH_MIN, le=PITCH_MAX)
    subtitleEnable: StrictBool | None = None
    subtitleType: Literal["word"] | None = None

    @field_validator("subtitleType")
    @classmethod
    def _subtitle_type_needs_subtitles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("subtitleEnable") is not True:
            raise ValueError("is set but subtitleEnable is not true, so no subtitles would be made")
        return value

    def with_model(self, model_id: str) -> AudioRequest:
        """The full request for the model a completed clone produced."""
        return AudioRequest(modelId=model_id, **self.to_body())


class AudioRequest(AudioSpec):
    """``POST /soundCloning/audios``: speak a script with a cloned voice."""

    modelId: ModelId


class TaskStatus(StrEnum):
    """The documented statuses; the API may send others, which we treat as still running."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class RemoteTask(BaseModel):
    """``data`` of a create or query answer. Unknown extra fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    status: str = "queued"
    object: str | None = None
    created: float | None = None
    model: str | None = None
    modelId: str | None = None
    audioUrl: str | None = None
    subtitleFile: str | None = None
    error: Any = None

    @property
    def is_completed(self) -> bool:
        return self.status.lower() == TaskStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status.lower() == TaskStatus.FAILED

    @property
    def is_terminal(self) -> bool:
        return self.is_completed or self.is_failed

    def error_text(self) -> str:
        """The provider's reason for a failed task, as one line."""
        if self.error is None or self.error == "":
            return "the API reported the task failed without a reason"
        if isinstance(self.error, dict):
            message = self.error.get("message") or self.error.get("msg")
            if message:
                return str(message)
        return str(self.error)


# The allowed values of every field with a range, in the API's terms, and what to do.
FIELD_RULES = {
    "speed": f"the API accepts {SPEED_MIN:g} to {SPEED_MAX:g} (default 1)",
    "vol": f"the API accepts more than 0, up to {VOL_MAX:g} (default 1)",
    "pitch": f"the API accepts whole numbers from {PITCH_MIN} to {PITCH_MAX} (default 0)",
    "audios": f"a job has at most {MAX_AUDIOS_PER_JOB} audios (clonequeue's limit): split it "
    "into several jobs, each with its own custom_id",
}
_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_long")


def field_rule(loc: tuple[int | str, ...]) -> str | None:
    """The allowed range of the field at ``loc`` (``('audios', 0, 'speed')``), if it has one."""
    names = [part for part in loc if isinstance(part, str)]
    return FIELD_RULES.get(names[-1]) if names else None


def with_rule(error: Any, message: str) -> str:
    """``message``, and for a field with a range: what was given and what is allowed."""
    loc = tuple(error.get("loc") or ())
    rule = field_rule(loc)
    if rule is None or (loc[-1:] == ("audios",) and error["type"] not in _RANGE_ERRORS):
        return message  # "audios: Input should be a valid list" needs no count limit
    if error["type"] in _RANGE_ERRORS:
        given = error["input"]
        shown = f"{len(given)} given" if isinstance(given, list) else f"{given!r} is out of range"
        return f"{shown}; {rule}"
    return f"{message}; {rule}"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``field: rule`` line per problem, e.g. ``clone.fileUrl: extension .txt is …``.

    A field with a range names it (``audios[0].speed: 3 is out of range; the API
    accepts 0.5 to 2 (default 1)``), not only pydantic's bound.
    """
    lines = []
    for error in exc.errors():
        field = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).removeprefix(".")
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "is not a field of this request (check the spelling)"
        elif kind == "missing":
            message = "is required"
        else:
            message = with_rule(error, str(error["msg"]).removeprefix("Value error, "))
        lines.append(f"{prefix}{field}: {message}" if field or prefix else message)
    return lines
