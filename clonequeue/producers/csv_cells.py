"""A CSV cell as a value, and a validation error in a CSV's own terms (columns, lines).

Numbers are plain ASCII as JSON writes them: Python's ``float()``/``int()`` also take
``1_0``, Arabic-Indic or full-width digits, ``nan`` and ``.5``, so a typo could
silently change a value. Errors name the ``audio_*`` column and, for a later row of a
several-row job, its line.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from clonequeue.api.models import with_rule
from clonequeue.jobspec import AudioIdCollision
from clonequeue.producers.rows import audio_entry_problem

_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
# Numbers as JSON writes them (plus a leading + and zeros): ASCII digits only. Python's
# float()/int() also take 1_0, Arabic-Indic or full-width digits, nan and .5, so a typo
# could silently change a value.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PLAIN_WHOLE = re.compile(r"[+-]?[0-9]+")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_MAX_PITCH_DIGITS = 20  # a whole pitch written longer is far out of range: kept as text
_PLAIN_FORMS = {
    "float": "is not a plain number{where}; write digits 0-9, with an optional sign, decimal "
    "point and exponent (e.g. 1.25)",
    "int": "is not a plain whole number{where}; write digits 0-9 with an optional sign (e.g. -3)",
}
_TYPE_ERRORS = {
    "float": "is not a number",
    "int": "is not a whole number",
    "bool": "is not true or false; write true/false, yes/no or 1/0 (any case)",
}


def convert_cell(field: str, cell: str) -> Any:
    """Numbers and booleans from their text; anything else stays text for the rules to judge.

    A number is plain ASCII (:data:`_PLAIN_NUMBER`), as in JSON: Python's ``float("1_0")``
    is 10.0 and ``int("\u0661")`` is 1, and a typo must not silently become a value.
    """
    text = cell.strip(" \t")
    if field in ("speed", "vol"):
        return float(text) if _PLAIN_NUMBER.fullmatch(text) else cell
    if field == "pitch":
        try:
            if _PLAIN_WHOLE.fullmatch(text):
                return int(text)
            return _whole(text) if _PLAIN_NUMBER.fullmatch(text) else cell
        except ValueError:  # more digits than Python converts (4,300): out of range anyway
            return cell
    if field == "subtitleEnable":
        return _BOOLS.get(cell.strip().lower(), cell)
    return cell


def _whole(text: str) -> int | str:
    """A plain number with no fractional part as the int (``1.0``, ``-2.00``, ``1e1``), as
    JSON and pandas write whole numbers too; else the text, for the rule to reject
    (``'1.5' is not a whole number``). Exact (Decimal): ``1.0000000000000001`` is no 1."""
    number = Decimal(text)
    if number.adjusted() > _MAX_PITCH_DIGITS or number != number.to_integral_value():
        return text
    return int(number)


def explain_by_line(exc: ValidationError, lines: list[int]) -> list[str]:
    """``column: rule`` per problem; a problem on a later row of the job names its line."""
    reasons = []
    for error in exc.errors():
        collision = (error.get("ctx") or {}).get("error")
        if isinstance(collision, AudioIdCollision):
            reasons.append(_collision(collision, lines))
            continue
        column, line = _column(error["loc"], lines)
        message = error_message(error)
        where = column if line == lines[0] else f"{column} (line {line})"
        reasons.append(f"{where}: {message}" if where else message)
    return reasons


def _collision(collision: AudioIdCollision, lines: list[int]) -> str:
    """Two audios of a job with one id, each named by its row's line."""

    def line_of(index: int) -> int:
        return lines[index] if index < len(lines) else lines[0]

    return collision.describe(
        lambda i: f"the audio on line {line_of(i)}",
        lambda i: f"audio_custom_id (line {line_of(i)})",
        "audio_custom_id",
    )


def _column(loc: tuple[int | str, ...], lines: list[int]) -> tuple[str, Any]:
    if len(loc) >= 3 and loc[0] == "audios" and isinstance(loc[1], int):
        index = loc[1]
        return f"audio_{loc[2]}", lines[index] if index < len(lines) else lines[0]
    if len(loc) == 2 and loc[0] == "clone":
        return str(loc[1]), lines[0]
    return ".".join(str(part) for part in loc), lines[0]


def error_message(error: Any) -> str:
    """One pydantic error in words: the rule, or the cell that is not of the right type."""
    kind = str(error["type"])
    if kind == "missing":
        return "is required"
    entry_problem = audio_entry_problem(error)
    if entry_problem is not None:
        return entry_problem
    for prefix, text in _TYPE_ERRORS.items():
        if kind.startswith(prefix):
            given = error["input"]
            return with_rule(error, f"{given!r} {_not_plain(prefix, given) or text}")
    return with_rule(error, str(error["msg"]).removeprefix("Value error, "))


def _not_plain(kind: str, given: Any) -> str | None:
    """For text Python would read as a number (``1_0``, ``\u0661``, ``nan``, ``.5``) but
    that is not a plain one: the form to write, and the first character that is wrong."""
    if kind not in _PLAIN_FORMS or not isinstance(given, str):
        return None
    text = given.strip(" \t")
    try:
        float(text)
    except ValueError:
        return None  # not a number at all: "'fast' is not a number"
    if _PLAIN_NUMBER.fullmatch(text):
        return None  # a plain number of the wrong kind: "'1.5' is not a whole number"
    where = ""
    for position, char in enumerate(given, start=1):
        if char not in _NUMBER_CHARS and char not in " \t":
            shown = (
                repr(char)
                if char.isascii()
                else f"U+{ord(char):04X} " + (unicodedata.name(char, ""))
            )
            where = f" ({shown.strip()} at position {position})"
            break
    return _PLAIN_FORMS[kind].format(where=where)
