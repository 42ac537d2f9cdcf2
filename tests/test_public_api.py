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
    "Explanation",
    "Fallback",
    "FoldIn",
    "History",
    "Policy",
    "RankedList",
    "FetchResult",
    "Filter",
    "IndexConfigurationError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidInputError",
    "Interactions",
    "InvalidMetadataError",
    "InvalidPolicyError",
    "InvalidResultError",
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
    assert issubclass(errors.InvalidResultError, TypeError)


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


def test_version_comes_from_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    assert two_stage_rec.__version__ == importlib.metadata.version("two-stage-rec")

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    # A source checkout on sys.path that was never installed has no metadata to read.
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    two_stage_rec._version.cache_clear()
    try:
        assert two_stage_rec.__version__ == "0+unknown"
    finally:
        two_stage_rec._version.cache_clear()
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        two_stage_rec.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_the_license_text_matches_the_declared_license() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "two_stage_rec developers" in text
    assert 'license = "MIT"' in (root / "pyproject.toml").read_text(encoding="utf-8")


def test_every_error_survives_pickling() -> None:
    """Errors cross process boundaries (Dask workers, service workers) with their message and attributes."""
    import pickle

    from two_stage_rec import errors

    custom: dict[type[Exception], Exception] = {
        errors.MissingDependencyError: errors.MissingDependencyError("faiss", "faiss"),
        errors.DimensionMismatchError: errors.DimensionMismatchError(32, 16, "user embeddings"),
        errors.DuplicateIdError: errors.DuplicateIdError(["a", "a"]),
        errors.UnknownKeyError: errors.UnknownKeyError(["x"], what="item id"),
        errors.UnknownUserError: errors.UnknownUserError(["u1", "u2"]),
        errors.PartialWriteError: errors.PartialWriteError("batch 2 failed", written_ids=["a"], failed_ids=["b"]),
    }
    for name in errors.__all__:
        cls = getattr(errors, name)
        error = custom.get(cls) or cls("something went wrong")
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and str(copy) == str(error), name
        assert vars(copy) == vars(error), name
