"""Settings: one typed object from ``CLONEQUEUE_*`` variables, built once, passed in."""

from clonequeue.config.loading import format_validation_error, load_settings
from clonequeue.config.settings import LogFormat, Settings, env_name, known_variables

__all__ = [
    "LogFormat",
    "Settings",
    "env_name",
    "format_validation_error",
    "known_variables",
    "load_settings",
]
