"""Tidy every command's ``--help``: click-style value names instead of typer's type markers.

Typer (0.29) labels each option with its Python type (``<str>``, ``<bool>``,
``<int range>``); a flag takes no value at all, and a value is better named the
way click and most CLIs do (``TEXT``, ``INTEGER``, ``PATH``, ``text|json``).
"""

from __future__ import annotations

from typing import Any

import typer.core

_VALUE_NAMES = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "FLOAT",
    "float range": "FLOAT",
    "path": "PATH",
    "file": "FILE",
    "dir": "DIR",
    "list[str]": "TEXT",
}


def tidy(command: Any, parent: Any = None) -> Any:
    """Set a metavar on every parameter of ``command`` and its subcommands; returns it.

    ``--help`` is made (and kept) by the command for its context, so each context
    is built as the real one is: the command's own settings, under its parent's.
    """
    context = command.context_class(command, parent=parent, **command.context_settings)
    for param in command.get_params(context):
        _tidy_param(param, context)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub, context)
    return command


def _no_type(ctx: Any = None) -> None:
    return None


def _tidy_param(param: Any, context: Any) -> None:
    if isinstance(param, typer.core.TyperArgument):
        setattr(param, "display_type_rich", _no_type)  # noqa: B010 - its name (FILE|-) says it all
        if param.metavar is None:
            param.metavar = (param.name or "value").upper()
        return
    if param.metavar is not None:
        return
    if getattr(param, "is_flag", False):
        param.metavar = ""
        return
    shown = str(param.display_type(context)).strip("<>")
    param.metavar = _VALUE_NAMES.get(shown, shown)
