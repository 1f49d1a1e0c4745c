"""Checks of the Python API's arguments, made once, where a call comes in.

A wrong type that travels inside fails far from the call, in words about our code
(``'int' object has no attribute 'decode'``); checked at the boundary, the
``TypeError`` names the argument, what it got and what it takes. A value of the
right type that would harm the caller (``poll_interval=0`` busy-loops on Redis,
``timeout=nan`` never ends) is a ``ValueError`` in the same words. It imports
nothing of clonequeue, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

SHOWN_CHARS = 60  # of a wrong value's repr, in the message
NONE = type(None)
FUNCTION = cast(type, Callable)  # isinstance(value, FUNCTION) is callable(value)


def check_arg(
    call: str, name: str, value: object, accepted: tuple[type, ...], expected: str
) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of one of ``accepted``.

    A bool is refused where a number is wanted (it is an ``int`` to Python, not to
    a caller who wrote ``max_chars=True``); list ``bool`` in ``accepted`` to allow it.
    """
    is_bool = isinstance(value, bool)
    if isinstance(value, accepted) and (not is_bool or bool in accepted):
        return
    raise argument_error(call, name, value, expected)


def check_bool(call: str, name: str, value: object) -> None:
    """A flag: ``True`` or ``False`` only (``force="no"`` is truthy, and would act)."""
    check_arg(call, name, value, (bool,), "True or False")


def check_value(call: str, name: str, value: object, ok: bool, expected: str) -> None:
    """Raise ``ValueError`` unless ``ok`` (``value`` has the right type, checked before)."""
    if not ok:
        raise value_error(call, name, value, expected)


def value_error(call: str, name: str, value: object, expected: str) -> ValueError:
    """``Batch.wait(timeout=...): expected a finite number of seconds …; got float nan``."""
    return ValueError(f"{call}({name}=...): expected {expected}; got {described(value)}")


def argument_error(
    call: str, name: str, value: object, expected: str, *, hint: str = ""
) -> TypeError:
    """``submit(batch=...): expected a batch name (str) or None; got int 5``, then ``hint``."""
    return TypeError(f"{call}({name}=...): expected {expected}; got {described(value)}{hint}")


def described(value: object) -> str:
    """The type and a short repr: ``int 5``, ``str '10'``, ``None``."""
    if value is None:
        return "None"
    shown = repr(value)
    if len(shown) > SHOWN_CHARS:
        shown = shown[: SHOWN_CHARS - 3] + "..."
    return f"{type(value).__name__} {shown}"
