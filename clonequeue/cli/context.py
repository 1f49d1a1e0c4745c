"""Settings for CLI commands: loaded once per invocation, only by commands that need them."""

from __future__ import annotations

from functools import lru_cache

from clonequeue.config import Settings, load_settings


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The effective settings (environment + .env); raises ConfigError with one line each.

    Their secrets are registered for redaction: an error line the CLI prints is masked.
    """
    from clonequeue.redaction import register_secrets

    loaded = load_settings()
    register_secrets(loaded.secret_values())
    return loaded
