"""Optional packages (pyarrow, pandas, polars), imported only when a feature needs them.

A plain install stays small; the ``parquet`` and ``frames`` extras bring them. When
one is missing, the error says exactly what to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from clonequeue.errors import MissingExtraError

EXTRAS = {"pyarrow": "parquet", "pandas": "frames", "polars": "frames"}


def require(module: str, needed_for: str) -> ModuleType:
    """Import ``module`` (``pyarrow.parquet``…), or raise :class:`MissingExtraError`."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS[top]
        raise MissingExtraError(
            f"{needed_for} needs {top}, which is not installed: "
            f"pip install 'clonequeue[{extra}]' (or pip install {top})"
        ) from None
