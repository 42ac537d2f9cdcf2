"""Side features for the towers from MovieLens-100K: user demographics, movie genres and era."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from two_stage_rec.datasets import MovieLens100K

__all__ = ["movielens_side_features"]

# MovieLens' own age groups (as in ML-1M's documentation).
_AGE_EDGES = (18, 25, 35, 45, 50, 56)
_DECADES = tuple(range(1920, 2000, 10))


def _one_hot(index: int, width: int) -> npt.NDArray[np.float32]:
    vector = np.zeros(width, dtype=np.float32)
    vector[index] = 1.0
    return vector


def movielens_side_features(
    data: MovieLens100K,
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, npt.NDArray[np.float32]]]:
    """One-hot side features keyed by id string.

    Users: age group (7), gender (2), occupation (one per occupation in the data).
    Movies: the 19 genre flags and release decade (before 1920, each decade to the 1990s, unknown).

    Returns:
        (user_features, item_features): id string -> float32 vector.
    """
    occupations = sorted({user.occupation for user in data.users})
    users: dict[str, npt.NDArray[np.float32]] = {}
    for user in data.users:
        age = int(np.searchsorted(_AGE_EDGES, user.age, side="right"))
        users[user.id_str] = np.concatenate(
            [
                _one_hot(age, len(_AGE_EDGES) + 1),
                _one_hot(0 if user.gender == "M" else 1, 2),
                _one_hot(occupations.index(user.occupation), len(occupations)),
            ]
        )
    genres = data.movies.genre_matrix().astype(np.float32)
    items: dict[str, npt.NDArray[np.float32]] = {}
    for row, movie in enumerate(data.movies):
        year = movie.year
        era = len(_DECADES) + 1 if year is None else int(np.searchsorted(_DECADES, year, side="right"))
        items[movie.id_str] = np.concatenate([genres[row], _one_hot(era, len(_DECADES) + 2)])
    return users, items
