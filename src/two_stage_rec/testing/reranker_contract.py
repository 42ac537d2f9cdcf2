"""The behaviour every :class:`~two_stage_rec.Reranker` must show, as pytest tests.

Subclass :class:`RerankerContract` in a test module, state the widths of the
user and item vectors the reranker takes, and return it from
:meth:`~RerankerContract.make_reranker`::

    from two_stage_rec.testing import RerankerContract

    class TestMyReranker(RerankerContract):
        user_dimension = 32
        item_dimension = 32

        def make_reranker(self):
            return MyReranker.load("scoring/")

The :class:`~two_stage_rec.recommender.Recommender` scores the candidates of
many users in one call, in whatever grouping its batch has, and relies on
what is checked here: score ``i`` depends on pair ``i`` alone, float32
(n,) finite scores, and a declared ``input_width``
(:class:`~two_stage_rec.protocols.DeclaresInputWidth`) that is true.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from two_stage_rec.errors import InvalidInputError, MissingDependencyError
from two_stage_rec.protocols import Reranker, input_width
from two_stage_rec.types import FloatMatrix

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("pytest", "testing") from exc

__all__ = ["RerankerContract"]


class RerankerContract:
    """Subclass (as ``Test...``) and implement :meth:`make_reranker` to run the suite.

    Attributes:
        user_dimension: width d_user of the user vectors it scores.
        item_dimension: width d_item of the item vectors it scores.
        pairs: pairs scored per batch in the tests.
        score_tolerance: relative and absolute tolerance when the same pair is
            scored in different batches.
    """

    user_dimension: ClassVar[int] = 8
    item_dimension: ClassVar[int] = 8
    pairs: ClassVar[int] = 40
    score_tolerance: ClassVar[float] = 1e-5

    # ------------------------------------------------------------ hooks

    def make_reranker(self) -> Reranker:
        """Return the reranker under test. Subclasses must implement this."""
        raise NotImplementedError("subclass RerankerContract and implement make_reranker()")

    # ---------------------------------------------------------- helpers

    def _pairs(self, n: int, seed: int = 0) -> tuple[FloatMatrix, FloatMatrix]:
        rng = np.random.default_rng(seed)
        users = rng.normal(size=(n, self.user_dimension)).astype(np.float32)
        items = rng.normal(size=(n, self.item_dimension)).astype(np.float32)
        return users, items

    def _close(self, got: npt.NDArray[np.float32], want: npt.NDArray[np.float32], message: str) -> None:
        np.testing.assert_allclose(got, want, rtol=self.score_tolerance, atol=self.score_tolerance, err_msg=message)

    # ------------------------------------------------------------ tests

    def test_satisfies_the_protocol(self) -> None:
        assert isinstance(self.make_reranker(), Reranker)

    def test_scores_are_float32_one_per_pair(self) -> None:
        users, items = self._pairs(self.pairs)
        scores = self.make_reranker().score(users, items)
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float32
        assert scores.shape == (self.pairs,)
        assert np.isfinite(scores).all()

    def test_a_score_depends_on_its_pair_alone(self) -> None:
        reranker = self.make_reranker()
        users, items = self._pairs(self.pairs)
        batch = reranker.score(users, items)
        alone = np.concatenate([reranker.score(users[i : i + 1], items[i : i + 1]) for i in range(self.pairs)])
        self._close(alone, batch, "a pair scored alone differs from the same pair in a batch")
        order = np.random.default_rng(1).permutation(self.pairs)
        self._close(reranker.score(users[order], items[order]), batch[order], "permuting pairs must permute scores")
        half = self.pairs // 2
        first, second = reranker.score(users[:half], items[:half]), reranker.score(users[half:], items[half:])
        halves = np.concatenate([first, second])
        self._close(halves, batch, "scoring in two batches differs from one batch")

    def test_the_same_pairs_get_the_same_scores(self) -> None:
        reranker = self.make_reranker()
        users, items = self._pairs(self.pairs)
        self._close(reranker.score(users, items), reranker.score(users, items), "scoring is not deterministic")

    def test_inputs_are_not_modified(self) -> None:
        users, items = self._pairs(self.pairs)
        users_before, items_before = users.copy(), items.copy()
        self.make_reranker().score(users, items)
        np.testing.assert_array_equal(users, users_before)
        np.testing.assert_array_equal(items, items_before)

    def test_an_empty_batch_gives_no_scores(self) -> None:
        users, items = self._pairs(0)
        scores = self.make_reranker().score(users, items)
        assert scores.shape == (0,) and scores.dtype == np.float32

    def test_different_row_counts_are_rejected(self) -> None:
        users, items = self._pairs(self.pairs)
        with pytest.raises(InvalidInputError):
            self.make_reranker().score(users, items[:-1])

    def test_a_declared_input_width_is_true(self) -> None:
        reranker = self.make_reranker()
        width = input_width(reranker)
        if width is None:
            pytest.skip(f"{type(reranker).__name__} declares no input_width")
        assert width == self.user_dimension + self.item_dimension
        users, _ = self._pairs(4)
        wider = np.ones((4, self.item_dimension + 1), np.float32)
        with pytest.raises(InvalidInputError):
            reranker.score(users, wider)
