"""Parse MovieLens-100K rating files (``u.data``, ``u1.base``, ...) into :class:`Interactions`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import DatasetError, InvalidInputError

__all__ = ["read_ratings"]


def read_ratings(path: Path) -> Interactions:
    """Parse a MovieLens-100K rating file (``u.data``, ``u1.base``, ...).

    Each line is ``user<TAB>item<TAB>rating<TAB>unix_time``, all integers; ids
    become their decimal strings (``"42"``), ratings 1..5 stars.

    Raises:
        DatasetError: the file is missing, empty, or a line is malformed
            (the message names the file and, from numpy, the line).
    """
    if not path.is_file():
        raise DatasetError(f"rating file {path} does not exist")
    if path.stat().st_size == 0:
        raise DatasetError(f"rating file {path} is empty")
    try:
        with warnings.catch_warnings():
            # A file of blank lines makes numpy warn "input contained no data"; the size check reports it.
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"cannot parse {path}: {exc}") from exc
    if table.size == 0:
        raise DatasetError(f"rating file {path} holds no ratings")
    if table.shape[1] != 4:
        raise DatasetError(f"{path} has {table.shape[1]} columns; expected user, item, rating, timestamp")
    try:
        return Interactions.from_arrays(
            user_ids=table[:, 0], item_ids=table[:, 1], ratings=table[:, 2], timestamps=table[:, 3]
        )
    except InvalidInputError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
