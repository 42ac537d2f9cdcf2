"""``movielens_100k()``: find (or download), verify and parse MovieLens-100K."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from two_stage_rec.datasets import checksums as _checksums
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.checksums import Checksums, verify_folder
from two_stage_rec.datasets.download import CACHE_FOLDER_NAME, download_movielens_100k
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.datasets.movies import Movies, read_movies
from two_stage_rec.datasets.ratings import read_ratings
from two_stage_rec.datasets.users import Users, read_users

__all__ = [
    "DATA_ENV_VAR",
    "DatasetSummary",
    "MovieLens100K",
    "locate_movielens_100k",
    "movielens_100k",
]

DATA_ENV_VAR = "TWO_STAGE_REC_DATA"
"""Environment variable naming an existing ml-100k folder (used instead of the cache)."""

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """The numbers ``two-stage-rec data info`` prints.

    Attributes:
        n_ratings: number of ratings.
        n_users: number of users listed in ``u.user``.
        n_movies: number of movies listed in ``u.item``.
        n_distinct_titles: distinct movie titles (fewer than movies: titles repeat).
        rating_counts: star value -> number of ratings, ascending stars.
        density: ``n_ratings / (n_users * n_movies)``; sparsity is ``1 - density``.
        first_timestamp: Unix seconds of the earliest rating.
        last_timestamp: Unix seconds of the latest rating.
    """

    n_ratings: int
    n_users: int
    n_movies: int
    n_distinct_titles: int
    rating_counts: dict[float, int]
    density: float
    first_timestamp: int
    last_timestamp: int

    @property
    def sparsity(self) -> float:
        """Fraction of the user x movie matrix with no rating."""
        return 1.0 - self.density


@dataclass(frozen=True, slots=True, eq=False)
class MovieLens100K:
    """MovieLens-100K in plain numpy/dataclass form.

    Attributes:
        interactions: the 100,000 ratings (943 users x 1,682 movies, 1..5
            stars, with timestamps), ids as decimal strings (``"42"``).
        movies: the catalogue, keyed by movie id (titles are metadata, not keys).
        users: demographics, keyed by user id.
        path: the verified folder the files were read from (it also holds the
            canonical ``u1..u5`` / ``ua`` / ``ub`` split files).
    """

    interactions: Interactions
    movies: Movies
    users: Users
    path: Path

    def __repr__(self) -> str:
        return (
            f"MovieLens100K(interactions={len(self.interactions)}, users={len(self.users)}, "
            f"movies={len(self.movies)}, path={str(self.path)!r})"
        )

    @property
    def catalogue(self) -> Catalogue:
        """Every movie as a :class:`Catalogue` item: id ``"50"``, metadata title, genres, year."""
        return Catalogue.from_records(self.movies.ids_str(), self.movies.metadata())

    def summary(self) -> DatasetSummary:
        """Counts, rating histogram and density of the data set."""
        log = self.interactions
        assert log.ratings is not None and log.timestamps is not None  # read_ratings always fills both
        stars, counts = np.unique(log.ratings, return_counts=True)
        n_ratings = len(log)
        return DatasetSummary(
            n_ratings=n_ratings,
            n_users=len(self.users),
            n_movies=len(self.movies),
            n_distinct_titles=len(set(self.movies.titles())),
            rating_counts={float(s): int(c) for s, c in zip(stars, counts, strict=True)},
            density=n_ratings / (len(self.users) * len(self.movies)),
            first_timestamp=int(log.timestamps.min()),
            last_timestamp=int(log.timestamps.max()),
        )


def _local_folder(path: Path) -> Path:
    # Accept the folder that holds the files, or its parent (where the zip was unpacked).
    nested = path / CACHE_FOLDER_NAME
    if not (path / "u.data").exists() and (nested / "u.data").exists():
        return nested
    return path


def locate_movielens_100k(
    data_dir: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    url: str | None = None,
    checksums: Checksums | None = None,
) -> Path:
    """Find a verified ML-100K folder, downloading it when there is none.

    Resolution order:

    1. ``data_dir``, if given: an existing ``ml-100k`` folder (or its parent);
    2. the folder named by ``$TWO_STAGE_REC_DATA``, if set;
    3. the cache: ``<cache_dir>/ml-100k`` (``cache_dir`` defaults to
       ``$TWO_STAGE_REC_CACHE``, else the platform cache, see
       :func:`~two_stage_rec.datasets.download.default_cache_dir`);
    4. otherwise the official zip is downloaded into the cache (see
       :func:`~two_stage_rec.datasets.download.download_movielens_100k`).

    Whichever folder is chosen, ``u.data``, ``u.item`` and ``u.user`` are
    checked against their published SHA-256 before it is returned.

    Args:
        data_dir: a local ml-100k folder (skips the environment and the cache).
        cache_dir: where downloads are kept.
        progress: show a progress bar while downloading.
        url: the zip's URL; default :data:`~two_stage_rec.datasets.checksums.ML_100K_URL`.
        checksums: expected digests; default
            :data:`~two_stage_rec.datasets.checksums.ML_100K_CHECKSUMS`. Pass
            others only for a data set in the ML-100K format that is not the
            published one (a test fixture, a mirror with a re-zipped archive).

    Raises:
        DatasetError: the folder does not exist or misses a file (named), or
            the download failed.
        ChecksumMismatchError: a file is corrupt, partial or not the published one.
    """
    expected = checksums if checksums is not None else _checksums.ML_100K_CHECKSUMS
    if data_dir is not None:
        folder = _local_folder(Path(data_dir).expanduser())
        verify_folder(folder, expected, label=f"MovieLens-100K folder {folder} (data_dir)")
        return folder
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        folder = _local_folder(Path(configured).expanduser())
        verify_folder(folder, expected, label=f"MovieLens-100K folder {folder} (from ${DATA_ENV_VAR})")
        return folder
    return download_movielens_100k(cache_dir, url=url, checksums=expected, progress=progress)


def movielens_100k(
    data_dir: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    url: str | None = None,
    checksums: Checksums | None = None,
) -> MovieLens100K:
    """Load MovieLens-100K: ratings, movies and users, verified.

    Finds the files as :func:`locate_movielens_100k` describes (a local folder,
    ``$TWO_STAGE_REC_DATA``, the cache, or a verified download), then parses
    them. Loading the real files takes a few tens of milliseconds.

    Example:
        >>> data = movielens_100k()  # doctest: +SKIP
        >>> len(data.interactions), len(data.users), len(data.movies)  # doctest: +SKIP
        (100000, 943, 1682)
        >>> data.movies[50].title  # doctest: +SKIP
        'Star Wars (1977)'

    Args:
        data_dir: a local ml-100k folder (skips the environment and the cache).
        cache_dir: where downloads are kept.
        progress: show a progress bar while downloading.
        url: the zip's URL; default :data:`~two_stage_rec.datasets.checksums.ML_100K_URL`.
        checksums: expected digests; default
            :data:`~two_stage_rec.datasets.checksums.ML_100K_CHECKSUMS` (see
            :func:`locate_movielens_100k` for when to pass others).

    Returns:
        A :class:`MovieLens100K`.

    Raises:
        DatasetError: missing files, failed download, or unparsable lines
            (file and line are named).
        ChecksumMismatchError: a file is corrupt, partial or not the published one.
    """
    folder = locate_movielens_100k(data_dir, cache_dir=cache_dir, progress=progress, url=url, checksums=checksums)
    return MovieLens100K(
        interactions=read_ratings(folder / "u.data"),
        movies=read_movies(folder / "u.item"),
        users=read_users(folder / "u.user"),
        path=folder,
    )
