"""An embedder backed by a precomputed key -> vector table (no model framework needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError, UnknownKeyError
from two_stage_rec.types import FloatMatrix
from two_stage_rec.validation import as_float_matrix

__all__ = ["TableEmbedder", "UnknownKeyPolicy"]

UnknownKeyPolicy = Literal["raise", "zeros", "mean"]
"""What :class:`TableEmbedder` does with a key it has no row for:

* ``"raise"`` (default): raise :class:`UnknownKeyError` listing every unknown key;
* ``"zeros"``: return the zero vector (scores 0 against every item under dotproduct);
* ``"mean"``: return the mean of all rows (an "average user/item").
"""


class TableEmbedder:
    """Look up vectors in a table: row ``i`` of ``vectors`` belongs to ``keys[i]``.

    This is the fast serving path: a trained tower's embedding table exported
    to NPZ reproduces the tower's output without importing TensorFlow.

    Args:
        keys: n unique string keys.
        vectors: array-like (n, d), converted to float32.
        unknown: policy for keys not in the table (see :data:`UnknownKeyPolicy`),
            or an explicit fallback vector of shape (d,).

    Thread safety: ``embed`` is read-only and safe to call concurrently.
    """

    def __init__(
        self,
        keys: Sequence[str],
        vectors: npt.ArrayLike,
        *,
        unknown: UnknownKeyPolicy | npt.ArrayLike = "raise",
    ) -> None:
        key_list = [str(k) for k in keys]
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(key_list) or matrix.shape[0] == 0:
            raise InvalidInputError(
                f"need one row per key: {len(key_list)} keys, vectors of shape {matrix.shape}"
            )
        self._table = as_float_matrix(matrix, matrix.shape[1], what="table vectors")
        self._row_of = {key: row for row, key in enumerate(key_list)}
        if len(self._row_of) != len(key_list):
            raise InvalidInputError("table keys must be unique")
        self._keys = key_list
        self._fallback: FloatMatrix | None
        if isinstance(unknown, str):
            if unknown not in ("raise", "zeros", "mean"):
                raise InvalidInputError(f"unknown must be 'raise', 'zeros', 'mean' or a vector, got {unknown!r}")
            self._policy = unknown
            self._fallback = {
                "raise": None,
                "zeros": np.zeros((1, self.dimension), np.float32),
                "mean": self._table.mean(axis=0, keepdims=True),
            }[unknown]
        else:
            fallback = np.asarray(unknown, dtype=np.float32).reshape(1, -1)
            if fallback.shape[1] != self.dimension:
                raise DimensionMismatchError(self.dimension, fallback.shape[1], "fallback vector")
            self._policy = "vector"
            self._fallback = as_float_matrix(fallback, self.dimension, what="fallback vector")

    def __repr__(self) -> str:
        return f"TableEmbedder(keys={len(self._keys)}, dimension={self.dimension}, unknown={self._policy!r})"

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row_of

    @property
    def dimension(self) -> int:
        """Vector length d."""
        return int(self._table.shape[1])

    @property
    def keys(self) -> list[str]:
        """The table's keys, in row order."""
        return list(self._keys)

    @property
    def vectors(self) -> FloatMatrix:
        """The table, float32 (n, d), read-only view."""
        view = self._table.view()
        view.flags.writeable = False
        return view

    def embed(self, keys: Sequence[str]) -> FloatMatrix:
        """Vectors for ``keys``: float32 (len(keys), d).

        Raises:
            UnknownKeyError: with policy ``"raise"``, listing all unknown keys.
        """
        if isinstance(keys, str):
            raise InvalidInputError("keys must be a sequence of strings, not a single string")
        row_of = self._row_of
        rows = [row_of.get(k, -1) for k in keys]
        if -1 not in rows:
            return self._table[rows]
        if self._fallback is None:
            raise UnknownKeyError([k for k, r in zip(keys, rows, strict=True) if r == -1])
        padded = np.concatenate([self._table, self._fallback])
        return padded[rows]  # -1 selects the fallback row appended last

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as NPZ (``keys``: str array, ``vectors``: float32 (n, d)); no pickle."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            np.savez(handle, keys=np.array(self._keys, dtype=np.str_), vectors=self._table)
        return target

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, unknown: UnknownKeyPolicy | npt.ArrayLike = "raise"
    ) -> TableEmbedder:
        """Read a table written by :meth:`save` (or any NPZ with ``keys`` and ``vectors``)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path} is not an embedding table (NPZ with 'keys' and 'vectors'): {exc}") from exc
        return cls(keys, vectors, unknown=unknown)
