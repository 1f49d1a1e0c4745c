"""Build :class:`Settings` and turn every problem into one line that names the variable."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from clonequeue.config.redis_urls import shown_url
from clonequeue.config.settings import (
    ENV_PREFIX,
    Settings,
    env_name,
    known_variables,
    unknown_variables,
)
from clonequeue.errors import ConfigError


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings from the environment and ``env_file``; raise one :class:`ConfigError`.

    ``overrides`` take precedence over the environment (tests and the CLI use them).
    A ``CLONEQUEUE_*`` variable that is not a setting is an error too: a typo must
    not silently fall back to a default (a budget, a rate limit).
    """
    sources: dict[str, str] = dict(os.environ)
    from_file: set[str] = set()
    if env_file is not None and Path(env_file).is_file():
        in_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        from_file = set(in_file) - set(os.environ)
        sources.update(in_file)
    problems = [
        _unknown_variable_message(name, env_file if name in from_file else None)
        for name in unknown_variables(sources)
    ]
    if not problems:
        try:
            return Settings(_env_file=env_file, **overrides)
        except ValidationError as exc:
            problems = format_validation_error(exc)
    raise ConfigError("\n".join(problems))


def _unknown_variable_message(name: str, env_file: str | Path | None = None) -> str:
    """Suggest a setting only when the part after ``CLONEQUEUE_`` is a close match (a typo):
    the shared prefix alone made ``CLONEQUEUE_FOO`` look like ``CLONEQUEUE_LOG_FORMAT``.
    A name only ``env_file`` sets says so: a user looks for it in the shell otherwise."""
    wrote = name.upper().removeprefix(ENV_PREFIX)
    names = {known.removeprefix(ENV_PREFIX): known for known in known_variables()}
    close = difflib.get_close_matches(wrote, list(names), n=1, cutoff=0.8)
    hint = f" (did you mean {names[close[0]]}?)" if close else ""
    where = f" (set in {env_file})" if env_file is not None else ""
    return f"{name}{where} is not a clonequeue setting{hint}; see `clonequeue config show`"


def _is_secret(field: str) -> bool:
    """Secret fields (and the file that holds one) never have their value echoed."""
    info = Settings.model_fields.get(field)
    annotation = str(info.annotation) if info is not None else ""
    return "SecretStr" in annotation or "token" in field


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, naming the variable, never echoing a secret."""
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        message = str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        if not loc:
            lines.append(message if ENV_PREFIX in message else f"settings: {message}")
            continue
        field = str(loc[0])
        given = error.get("input")
        if field.endswith("_url") and isinstance(given, str):
            message = _without_parts_of(given, message)
            given = shown_url(given)
        shown = "" if _is_secret(field) else f"={given!r}"
        lines.append(f"{env_name(field)}{shown}: {message}")
    return lines


def _without_parts_of(url: str, message: str) -> str:
    """``message`` with no text of ``url`` but what its masked form shows. Our validators
    say the rule, never the value; should a parser's text slip through (urlsplit's
    ``'TOKEN' does not appear to be an IPv4 or IPv6 address``), only the rule is left."""
    shown = shown_url(url)
    rest = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*:", "", url)  # the scheme is no secret
    words = {
        w
        for w in re.split(r"[^A-Za-z0-9_~.+%-]+", rest)
        if len(w) >= 6 and re.search("[A-Za-z]", w) and w not in shown
    }
    return "must be a valid URL" if any(w in message for w in words) else message
