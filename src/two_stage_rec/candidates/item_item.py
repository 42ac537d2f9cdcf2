"""An item-to-item candidate source: EASE, a closed-form co-occurrence model.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)
learns an item-item weight matrix B with a zero diagonal that reconstructs each
user's interaction row from the user's other items:
``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + l2 I)^-1``. A user's score
of item j is ``sum over the user's items i of B[i, j]``: co-occurrence with
what they have seen, corrected for popular items co-occurring with everything.
On MovieLens-100K it is the strongest simple anchor of the stratified split
(NDCG@10 0.483 at l2 300-500, issue 13), and its scores are not the towers':
merged with the index's candidates it widens the pool, and as a feature it
gives the ranker a second, differently-biased relevance signal.

Cost: one ``items x items`` inverse (float64) at fit time and ``items^2``
floats of memory; scoring a user sums the weight rows of the items in their
history (``history x items`` floats read, and nothing for the others: cheaper
than a dense ``(users, items) @ (items, items)`` product when histories are
short next to the catalogue).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from two_stage_rec.candidates.sources import check_items
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import InvalidInputError
from two_stage_rec.types import FloatMatrix

__all__ = ["ItemItemSource"]


class ItemItemSource:
    """EASE scores of every item for users with a known history.

    A user absent from the history (or with no item in ``item_ids``) scores
    every item 0.
    """

    def __init__(self, weights: npt.ArrayLike, items: Sequence[str], history: Mapping[str, Collection[str]]) -> None:
        """Args:
        weights: float (n_items, n_items) item-item weights B (row: seen item,
            column: scored item), as :meth:`fit` computes them.
        items: the n_items ids, in row/column order.
        history: user -> items the user has interacted with (the rows summed).
        """
        self._items = check_items(items)
        matrix = np.asarray(weights, dtype=np.float32)
        if matrix.shape != (len(self._items), len(self._items)):
            raise InvalidInputError(f"weights must be ({len(self._items)}, {len(self._items)}), got {matrix.shape}")
        self._weights = matrix
        column = {item: c for c, item in enumerate(self._items)}
        self._history = {
            user: np.array(sorted(column[i] for i in seen if i in column), dtype=np.int64)
            for user, seen in history.items()
        }

    @classmethod
    def fit(
        cls, log: Interactions, items: Sequence[str], *, l2: float = 400.0, batch_users: int = 1024
    ) -> ItemItemSource:
        """Fit EASE on a log's user-item pairs (each pair counts once; ratings and weights are ignored).

        Args:
            log: the training events.
            items: the items to score (items of ``log`` outside it are ignored).
            l2: the ridge penalty (> 0); 300-500 suits MovieLens-100K.
            batch_users: users per dense block when forming ``X^T X``.

        Raises:
            InvalidInputError: ``l2`` is not positive.
        """
        if l2 <= 0:
            raise InvalidInputError(f"l2 must be positive, got {l2}")
        ids = check_items(items)
        column = {item: c for c, item in enumerate(ids)}
        history = log.items_by_user()
        gram = np.zeros((len(ids), len(ids)), dtype=np.float64)
        users = sorted(history)
        for start in range(0, len(users), batch_users):
            block = np.zeros((len(users[start : start + batch_users]), len(ids)), dtype=np.float64)
            for row, user in enumerate(users[start : start + batch_users]):
                block[row, [column[i] for i in history[user] if i in column]] = 1.0
            gram += block.T @ block
        gram[np.diag_indices_from(gram)] += l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        return cls(weights, ids, history)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._items

    @property
    def weights(self) -> FloatMatrix:
        """float32 (n_items, n_items), B."""
        return self._weights

    def scores(self, users: Sequence[str]) -> FloatMatrix:
        out = np.zeros((len(users), len(self._items)), dtype=np.float32)
        for row, user in enumerate(users):
            seen = self._history.get(user)
            if seen is not None and seen.size:
                out[row] = self._weights[seen].sum(axis=0)
        return out
