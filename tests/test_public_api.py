"""The package root is the public contract: exact __all__, light import, one error tree."""

from __future__ import annotations

import subprocess
import sys

import pytest

import two_stage_rec
from two_stage_rec import errors

EXPECTED_PUBLIC = {
    "AuthenticationError",
    "Catalogue",
    "ChecksumMismatchError",
    "DatasetError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "Embedder",
    "EmptyBatchError",
    "FetchResult",
    "Filter",
    "IndexConfigurationError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "Interactions",
    "InvalidMetadataError",
    "LimitExceededError",
    "Metadata",
    "Metric",
    "MissingDependencyError",
    "ModelError",
    "NonFiniteVectorError",
    "PartialWriteError",
    "PersistenceError",
    "PopularityFallback",
    "QueryResult",
    "Recommendation",
    "Recommender",
    "Reranker",
    "RerankerName",
    "Source",
    "StoreError",
    "StoreStats",
    "StoreUnavailableError",
    "TwoStageRecError",
    "UnknownKeyError",
    "UnknownUserError",
    "VectorStore",
    "__version__",
}


def test_all_is_exactly_the_public_api():
    assert set(two_stage_rec.__all__) == EXPECTED_PUBLIC
    for name in two_stage_rec.__all__:
        assert hasattr(two_stage_rec, name), name


def test_import_is_light():
    code = (
        "import sys, two_stage_rec, two_stage_rec.embedders, two_stage_rec.stores.memory; "
        "heavy = [m for m in ('faiss', 'tensorflow', 'keras', 'pinecone', 'fastapi', 'matplotlib', 'pytest') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_has_one_root_and_its_builtin():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, two_stage_rec.TwoStageRecError), name
    assert issubclass(errors.DimensionMismatchError, ValueError)
    assert issubclass(errors.UnknownKeyError, KeyError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.PersistenceError, OSError)
    assert issubclass(errors.ChecksumMismatchError, ValueError)


def test_missing_dependency_names_the_extra(monkeypatch):
    from two_stage_rec._optional import require

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "two-stage-rec\[faiss\]"') as caught:
        require("faiss", extra="faiss", package="faiss-cpu")
    assert isinstance(caught.value, two_stage_rec.MissingDependencyError)
    assert caught.value.extra == "faiss"


def test_partial_write_error_lists_ids_briefly():
    error = errors.PartialWriteError("upsert failed", written_ids=["a"], failed_ids=[str(n) for n in range(25)])
    assert error.failed_ids[0] == "0" and len(error.failed_ids) == 25
    assert "and 15 more" in str(error)
