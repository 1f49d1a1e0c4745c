"""Input rows and their validation: one bad row is reported, never stops the others."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from clonequeue.api.models import describe_validation_error
from clonequeue.jobspec import JobSpec

# Turns a validation error into ``field: rule`` reasons in the input's own terms
# (CSV column names and lines); the default names fields as in the JSONL shape.
Explain = Callable[[ValidationError], list[str]]

# ``clone.fileUrl: …``, ``audios[0].speed: …``, ``audio_speed: …``: a reason about one field
_FIELD_REASON = re.compile(
    r"(?P<field>[A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): (?P<rule>.+)", re.S
)


SHOWN_ID_CHARS = 140  # a custom_id (128 at most when valid) is cut to this in messages


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one input row (or CSV row group) was rejected, with where it came from."""

    line: int
    custom_id: str | None
    reasons: list[str]
    original: Any = None  # the row as read (dict, list of CSV rows, or text)
    last_line: int | None = None  # where a CSV record read across lines ends

    def __str__(self) -> str:
        if self.last_line is not None and self.last_line > self.line:
            where = f"lines {self.line}-{self.last_line}"
        else:
            where = f"line {self.line}"
        if self.custom_id:
            shown = self.custom_id if self.custom_id.isprintable() else repr(self.custom_id)
            if len(shown) > SHOWN_ID_CHARS:  # a 5,000-character id filled the terminal
                shown = shown[: SHOWN_ID_CHARS - 1] + "…"
            where += f" ({shown})"
        return f"{where}: " + "; ".join(self.reasons)

    @property
    def field(self) -> str | None:
        """The field of the first reason (``clone.fileUrl``); None for a row-level problem."""
        return self.problems[0][0] if self.problems else None

    @property
    def rule(self) -> str:
        """The first reason without its field: the rule the row broke and what to do."""
        return self.problems[0][1] if self.problems else ""

    @property
    def problems(self) -> list[tuple[str | None, str]]:
        """``(field, rule)`` per reason; ``field`` is None when the whole row is unreadable."""
        pairs: list[tuple[str | None, str]] = []
        for reason in self.reasons:
            match = _FIELD_REASON.fullmatch(reason)
            pairs.append((match["field"], match["rule"]) if match else (None, reason))
        return pairs

    def to_record(self) -> dict[str, Any]:
        """The line written to the errors file."""
        return {
            "line": self.line,
            "custom_id": self.custom_id,
            "errors": self.reasons,
            "row": self.original,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """A parsed row (``data``) or one that could not be parsed (``error``)."""

    line: int
    data: dict[str, Any] | None = None
    error: str | None = None
    original: Any = None
    custom_id: str | None = None  # known even when the row is unreadable, if it could be read
    explain: Explain | None = None
    last_line: int | None = None  # where an unreadable row that spans lines ends


def validate_row(row: Row) -> JobSpec | RowError:
    """A :class:`JobSpec`, or a :class:`RowError` naming the line, custom_id, field and rule."""
    if row.data is None:
        reasons = [row.error or "unreadable row"]
        return RowError(row.line, row.custom_id, reasons, row.original, row.last_line)
    broken = _unpaired_surrogate(row.data)
    if broken is not None:  # no UTF-8 for it: hashing the row crashed the whole submit
        custom_id = row.data.get("custom_id")
        shown_id = custom_id if isinstance(custom_id, str) and broken != "custom_id" else None
        reason = (
            f"{broken}: holds an unpaired surrogate (a JSON escape such as \\ud800 with no "
            "pair), which is not text the API can take; fix or remove it"
        )
        return RowError(row.line, shown_id, [reason], row.original)
    try:
        return JobSpec.model_validate(whole_pitches(row.data))
    except ValidationError as exc:
        custom_id = row.data.get("custom_id")
        shown_id = custom_id if isinstance(custom_id, str) and custom_id else None
        explain = row.explain or describe
        return RowError(row.line, shown_id, explain(exc), row.original)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unpaired_surrogate(value: Any, path: str = "") -> str | None:
    """The field path (``audios[0].contentText``) of the first string in ``value`` with a
    lone surrogate, else None."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unpaired_surrogate(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unpaired_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def whole_pitches(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each audio's whole-number float ``pitch`` as the int (``1.0`` → ``1``).

    JSON has one kind of number: ``1.0`` is the whole number 1 to a JSON writer (and a
    pandas integer column with nulls holds floats), so it counts as the integer the API
    takes; ``1.5`` is left to the rule. A copy only when a pitch changes.
    """
    audios = data.get("audios")
    if not isinstance(audios, list) or not any(_float_pitch(a) for a in audios):
        return data
    fixed = [
        {**audio, "pitch": int(audio["pitch"])} if _float_pitch(audio) else audio
        for audio in audios
    ]
    return {**data, "audios": fixed}


def _float_pitch(audio: object) -> bool:
    pitch = audio.get("pitch") if isinstance(audio, dict) else None
    return isinstance(pitch, float) and pitch.is_integer()


def describe(exc: ValidationError) -> list[str]:
    """``field: rule`` per problem, in the JSONL shape (``audios[0].speed: …``)."""
    reasons = describe_validation_error(exc)  # one reason per error, in order
    for index, error in enumerate(exc.errors()):
        problem = audio_entry_problem(error)
        if problem is not None:
            reasons[index] = f"audios[{error['loc'][1]}]: {problem}"
    return reasons


def audio_entry_problem(error: Any) -> str | None:
    """What is wrong with an entry of ``audios`` as a whole (not one of its fields).

    Said here, not by the API's rule wording, which would add the limit on the number
    of audios to "Input should be a valid dictionary" though one entry is the problem.
    """
    loc = tuple(error.get("loc") or ())
    if len(loc) != 2 or loc[0] != "audios" or not isinstance(loc[1], int):
        return None
    if error["type"] == "model_type":
        return (
            f"is {json_type(error['input'])}, not an object; each audio is an object with the "
            'API\'s audio fields, e.g. {"contentText": "Hello"}'
        )
    return str(error["msg"]).removeprefix("Value error, ")


def json_type(value: object) -> str:
    """A value's kind in JSON's words ("a string", "an array"), for a value of the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def row_from(value: Any, line: int) -> Row:
    """A :class:`Row` from what a pipeline hands to the Python API: a dict, JobSpec or Row."""
    if isinstance(value, Row):
        return value
    if isinstance(value, JobSpec):
        data = value.model_dump(exclude_none=True)
        return Row(line, data=data, original=data)
    if isinstance(value, dict):
        data = unwrap_numpy(value)
        return Row(line, data=data, original=data)
    return Row(
        line,
        error=f"a row must be a dict (or JobSpec), not {type(value).__name__}",
        original=repr(value)[:200],
    )


def unwrap_numpy(value: Any) -> Any:
    """``value`` with numpy scalars as plain Python (``np.int64(3)`` → ``3``), so that
    ``df.to_dict("records")`` rows validate as the same numbers (a numpy int or bool
    is no ``int``/``bool`` to the rules; a float happens to be one). Dicts and lists
    are copied only when something in them changed."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is dict:
        items = {k: unwrap_numpy(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if kind is list:
        entries = [unwrap_numpy(v) for v in value]
        return value if all(a is b for a, b in zip(entries, value, strict=True)) else entries
    if kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def spec_from(value: JobSpec | dict[str, Any], line: int) -> JobSpec | RowError:
    """Accept a ready :class:`JobSpec` or a dict in the JSONL row shape."""
    if isinstance(value, JobSpec):
        return value
    return validate_row(row_from(value, line))
