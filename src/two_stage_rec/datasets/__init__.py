"""MovieLens-100K in plain numpy/dataclass form: loading, verification, splits.

::

    from two_stage_rec.datasets import movielens_100k, per_user_split, seen_items_by_user

    data = movielens_100k()           # data_dir=, $TWO_STAGE_REC_DATA, the cache, or a verified download
    train, test = per_user_split(data.ratings, test_fraction=0.25, seed=42)
    seen = seen_items_by_user(train)  # {"42": {"50", "172", ...}, ...}
    data.movies[50].metadata()        # {"title": "Star Wars (1977)", "genres": [...], "year": 1977}

Ids are integers in the arrays and decimal strings (``"42"``) wherever a model
or a vector store keys by them. Movies are keyed by id: titles repeat.
"""

from two_stage_rec.datasets.checksums import ML_100K_CHECKSUMS, ML_100K_URL, Checksums
from two_stage_rec.datasets.download import default_cache_dir, download_movielens_100k
from two_stage_rec.datasets.movielens import (
    DATA_ENV_VAR,
    DatasetSummary,
    MovieLens100K,
    locate_movielens_100k,
    movielens_100k,
)
from two_stage_rec.datasets.movies import GENRES, Movie, Movies
from two_stage_rec.datasets.ratings import Ratings, item_popularity, seen_items_by_user
from two_stage_rec.datasets.splits import (
    CANONICAL_SPLITS,
    CanonicalSplit,
    canonical_split,
    per_user_split,
    random_split,
)
from two_stage_rec.datasets.users import User, Users

__all__ = [
    "CANONICAL_SPLITS",
    "DATA_ENV_VAR",
    "GENRES",
    "ML_100K_CHECKSUMS",
    "ML_100K_URL",
    "CanonicalSplit",
    "Checksums",
    "DatasetSummary",
    "Movie",
    "MovieLens100K",
    "Movies",
    "Ratings",
    "User",
    "Users",
    "canonical_split",
    "default_cache_dir",
    "download_movielens_100k",
    "item_popularity",
    "locate_movielens_100k",
    "movielens_100k",
    "per_user_split",
    "random_split",
    "seen_items_by_user",
]
