"""Import optional dependencies where they are used, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from two_stage_rec.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Args:
        module: the import name, e.g. ``"faiss"``.
        extra: the two-stage-rec extra that installs it, e.g. ``"faiss"``.
        package: the distribution name when it differs (``"faiss-cpu"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra) from exc
