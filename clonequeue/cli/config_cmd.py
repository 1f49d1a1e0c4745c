"""``clonequeue config``: show the effective settings, secrets redacted."""

from __future__ import annotations

import json

import typer

from clonequeue.cli import context
from clonequeue.cli.errors import JsonCommand
from clonequeue.config import env_name
from clonequeue.config.settings import Settings, describe_setting_value

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


@app.command("show", cls=JsonCommand)
def show(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of lines."),
) -> None:
    """Print every setting as NAME=value with what it does; every secret is redacted: the API
    token, the webhook secret, the Sentinel password and Flower's logins show only whether
    they are set, and URLs lose their passwords and query values."""
    settings = context.settings()
    values = {
        env_name(name): describe_setting_value(name, getattr(settings, name))
        for name in Settings.model_fields
    }
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        field = Settings.model_fields[name.removeprefix("CLONEQUEUE_").lower()]
        typer.echo(f"{name + '=' + value:<{width + 24}}  # {field.description}")
