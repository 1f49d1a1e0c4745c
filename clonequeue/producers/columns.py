"""The columnar job layout (Parquet files, pandas and Polars DataFrames): one job per row.

The columns are the CSV input's — ``custom_id,fileUrl,contentText,soundVersion,language``
— and the production audios are one list column, ``audios``, of structs with the
API's audio fields (``custom_id, contentText, soundVersion, language, emotion, speed,
vol, pitch, subtitleEnable, subtitleType``), so a job needs no grouping of rows. A null
(or NaN) cell is an absent field. Errors name the column (``fileUrl``,
``audios[0].speed``) and the row's number, from 1.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from clonequeue.producers.csv_cells import error_message
from clonequeue.producers.csv_reading import AUDIO_FIELDS, CLONE_COLUMNS
from clonequeue.producers.errors import UnreadableInputError
from clonequeue.producers.rows import Row

AUDIOS_COLUMN = "audios"
COLUMNS = ("custom_id", *CLONE_COLUMNS, AUDIOS_COLUMN)
REQUIRED_COLUMNS = ("custom_id", "fileUrl")


def check_columns(names: Iterable[str], label: str) -> list[str]:
    """The column names, or :class:`UnreadableInputError` naming every problem (nothing read)."""
    names = [str(n) for n in names]
    problems = [
        f"column '{n}' appears twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    for name in names:
        if name in COLUMNS:
            continue
        if name.startswith("audio_"):
            problems.append(
                f"column '{name}': audios are one list column here, 'audios', of structs "
                f"with the fields {', '.join(AUDIO_FIELDS)}"
            )
            continue
        close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.75)
        guess = next((c for c in COLUMNS if c.lower() == name.lower()), close[0] if close else None)
        hint = f" (did you mean '{guess}'?)" if guess else ""
        problems.append(f"unknown column '{name[:80]}'{hint}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        problems.append("missing column " + ", ".join(f"'{c}'" for c in missing))
    if problems:
        raise UnreadableInputError(
            f"{label}: "
            + "; ".join(problems)
            + "; the columns are "
            + ",".join(COLUMNS)
            + "; nothing was submitted"
        )
    return names


def row_of(record: Mapping[str, Any], number: int, *, plain: bool = False) -> Row:
    """One job from one row's cells.

    ``plain``: the cells are plain Python already (pyarrow's ``to_pylist``), so only
    nulls are dropped; else (DataFrames) NaN, NA, NaT and numpy values are unwrapped.
    """
    cell = _plain_cell if plain else _cell
    data: dict[str, Any] = {}
    custom_id = cell(record.get("custom_id"))
    if custom_id is not None:
        data["custom_id"] = custom_id
    data["clone"] = {c: v for c in CLONE_COLUMNS if (v := cell(record.get(c))) is not None}
    audios = cell(record.get(AUDIOS_COLUMN))
    if audios is not None:
        data["audios"] = (
            [_audio(a, cell) for a in audios] if isinstance(audios, list | tuple) else audios
        )
    original = record if plain else {k: _cell(v) for k, v in record.items()}
    return Row(number, data=data, original=original, explain=explain)


def _plain_cell(value: Any) -> Any:
    return value


def _audio(audio: Any, cell: Callable[[Any], Any]) -> Any:
    if isinstance(audio, Mapping):
        fields = {k: v for k, value in audio.items() if (v := cell(value)) is not None}
        pitch = fields.get("pitch")
        if isinstance(pitch, float) and pitch.is_integer():
            # pandas keeps an integer column with nulls as floats (2 becomes 2.0)
            fields["pitch"] = int(pitch)
        return fields
    return audio  # not a struct: the rules say what it should be


def _cell(value: Any) -> Any:
    """A cell as plain Python: NaN, NA and NaT are None; numpy scalars and arrays unwrapped."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value) in (str, bool, int, float):
        return value
    if isinstance(value, Mapping):
        return {k: _cell(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cell(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays (pandas list cells) and scalars
    if tolist is not None:
        return _cell(tolist())
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def explain(exc: ValidationError) -> list[str]:
    """``column: rule`` per problem: ``fileUrl: …``, ``audios[1].speed: …``."""
    reasons = []
    for error in exc.errors():
        column = _column(error["loc"])
        message = error_message(error)
        reasons.append(f"{column}: {message}" if column else message)
    return reasons


def _column(loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "clone":
        return ".".join(str(p) for p in loc[1:])
    parts = [str(loc[0])] if loc else []
    for part in loc[1:]:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)
