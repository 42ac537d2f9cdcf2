"""MovieLens ids are integers; callers may hold them as ``42``, ``np.int32(42)`` or ``"42"``."""

from __future__ import annotations

import numpy as np


def as_int_id(value: object) -> int | None:
    """The integer id ``value`` denotes, or ``None`` if it denotes none."""
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        return None
    try:
        return int(value)
    except ValueError:
        return None
