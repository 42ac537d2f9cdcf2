"""Data in, in one shape: :class:`Interactions` (who interacted with what) and a :class:`Catalogue` (what exists).

::

    from two_stage_rec.datasets import ColumnMapping, movielens_100k, read_catalogue, read_interactions, temporal_split

    catalogue = read_catalogue("products.parquet", item_id_column="sku")   # extra: data; other columns: metadata
    log = read_interactions(
        "events.csv", columns=ColumnMapping(user="customer", item="sku", timestamp="time"), catalogue=catalogue
    )
    train, test = temporal_split(log, 0.2)                                 # each user's latest 20% held out

    data = movielens_100k()          # data_dir=, $TWO_STAGE_REC_DATA, the cache, or a verified download
    data.interactions                # Interactions: ids "1".."943" / "1".."1682", ratings 1..5, timestamps
    data.catalogue.metadata_of("50") # {"title": "Star Wars (1977)", "genres": [...], "year": 1977}

Ids are strings everywhere; integer ids are accepted and become their decimal
string (``"42"``), which models and vector stores key by.
"""

from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.checksums import ML_100K_CHECKSUMS, ML_100K_URL, Checksums
from two_stage_rec.datasets.download import default_cache_dir, download_movielens_100k
from two_stage_rec.datasets.interactions import Interactions, UnknownItemPolicy
from two_stage_rec.datasets.movielens import (
    DATA_ENV_VAR,
    DatasetSummary,
    MovieLens100K,
    locate_movielens_100k,
    movielens_100k,
)
from two_stage_rec.datasets.movies import GENRES, Movie, Movies
from two_stage_rec.datasets.readers import (
    ColumnMapping,
    catalogue_from_dataframe,
    interactions_from_dataframe,
    read_catalogue,
    read_interactions,
)
from two_stage_rec.datasets.splits import (
    CANONICAL_SPLITS,
    SPLIT_KINDS,
    CanonicalSplit,
    SplitKind,
    SplitSpec,
    canonical_split,
    per_user_split,
    random_split,
    split,
    temporal_split,
)
from two_stage_rec.datasets.users import User, Users

__all__ = [
    "CANONICAL_SPLITS",
    "DATA_ENV_VAR",
    "GENRES",
    "ML_100K_CHECKSUMS",
    "ML_100K_URL",
    "SPLIT_KINDS",
    "CanonicalSplit",
    "Catalogue",
    "Checksums",
    "ColumnMapping",
    "DatasetSummary",
    "Interactions",
    "Movie",
    "MovieLens100K",
    "Movies",
    "SplitKind",
    "SplitSpec",
    "UnknownItemPolicy",
    "User",
    "Users",
    "canonical_split",
    "catalogue_from_dataframe",
    "default_cache_dir",
    "download_movielens_100k",
    "interactions_from_dataframe",
    "locate_movielens_100k",
    "movielens_100k",
    "per_user_split",
    "random_split",
    "read_catalogue",
    "read_interactions",
    "split",
    "temporal_split",
]
