"""Typed requests and answers of the JimmyAI SoundClone API.

Field names are the API's own (camelCase), so a job row, the request we send and
the provider's reference all read alike. Building a request model enforces every
documented rule: an invalid request can never reach the network.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
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


def _text(value: Any) -> Any:
    """A number as its text (an id or modelId sent as a number); blank as absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _text_or_none(value: Any) -> str | None:
    """A field we only show: its text, or absent when it is of another kind."""
    value = _text(value)
    return value if isinstance(value, str) else None


def _http_url_or_none(value: Any) -> str | None:
    """A file's URL: http(s) only ("" or "javascript:…" is no file; it fails the step)."""
    value = _text_or_none(value)
    return (
        value if value is not None and value.lower().startswith(("http://", "https://")) else None
    )


def _number_or_none(value: Any) -> float | None:
    """``created``: epoch seconds, or absent (an ISO date is not worth failing a task)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _status(value: Any) -> str:
    """The status as text ("COMPLETED", " completed " and 3 included; null: queued)."""
    value = _text(value)
    return value.strip() if isinstance(value, str) else "queued"


class RemoteTask(BaseModel):
    """``data`` of a create or query answer. Unknown extra fields are kept, not rejected,
    and a known field of an unexpected kind is read as absent rather than throwing the
    whole answer away: only the id must be there (a text or a number)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[str, BeforeValidator(_text), Field(min_length=1)]
    status: Annotated[str, BeforeValidator(_status)] = "queued"
    object: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    created: Annotated[float | None, BeforeValidator(_number_or_none)] = None
    model: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    modelId: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    audioUrl: Annotated[str | None, BeforeValidator(_http_url_or_none)] = None
    subtitleFile: Annotated[str | None, BeforeValidator(_http_url_or_none)] = None
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
        if self.error in (None, "", {}, []):
            return "the API reported the task failed without a reason"
        if isinstance(self.error, dict):
            message = self.error.get("message") or self.error.get("msg")
            if message:
                return str(message)
            return json.dumps(self.error, ensure_ascii=False, default=str)
        if isinstance(self.error, list):
            return "; ".join(str(part) for part in self.error)
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
