"""two_stage_rec.bundle: the models-bundle format, built here from synthetic parts (no TensorFlow).

The parts are what training would produce, at a toy size: random float32
towers for string user and item ids, a random scoring MLP, a blend with an
item prior, a catalogue with metadata and a training log. ``make_parts`` and
``write_synthetic_bundle`` are also used by test_assembly.py and
test_store_registry.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from two_stage_rec import bundle as bundle_module
from two_stage_rec.bundle import (
    BLEND,
    CATALOGUE,
    ITEM_EMBEDDINGS,
    MANIFEST,
    POPULARITY,
    SCORING_MLP,
    SEEN_ITEMS,
    USER_EMBEDDINGS,
    Bundle,
    is_bundle,
    load_models,
    read_bundle,
    read_manifest,
    write_bundle,
)
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.errors import (
    DimensionMismatchError,
    InvalidInputError,
    ModelError,
    PersistenceError,
    UnknownKeyError,
)
from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights
from two_stage_rec.rerankers.mlp import MLPReranker

DIMENSION = 4
USERS = ["c-1f9a", "c-2b7e", "c-3c11", "c-4d02", "c-5e93", "c-6f00"]  # c-6f00: in the tower, no training events
ITEMS = [f"sku-{n:02d}" for n in range(1, 13)]

# (user, item, rating, timestamp): sku-03 x4, sku-07 x3, sku-01 x2, then sku-10, sku-05, sku-12 once each.
EVENTS = [
    ("c-1f9a", "sku-03", 5.0, 100),
    ("c-1f9a", "sku-07", 4.0, 101),
    ("c-1f9a", "sku-01", 3.0, 102),
    ("c-2b7e", "sku-03", 4.0, 110),
    ("c-2b7e", "sku-10", 2.0, 111),
    ("c-3c11", "sku-03", 5.0, 120),
    ("c-3c11", "sku-07", 1.0, 121),
    ("c-3c11", "sku-05", 4.0, 122),
    ("c-4d02", "sku-07", 3.0, 130),
    ("c-4d02", "sku-01", 2.0, 131),
    ("c-5e93", "sku-03", 4.0, 140),
    ("c-5e93", "sku-12", 5.0, 141),
]
POPULARITY_ORDER = ["sku-03", "sku-07", "sku-01", "sku-05", "sku-10", "sku-12"]  # ties: smaller id first


def train_log() -> Interactions:
    users, items, ratings, times = zip(*EVENTS, strict=True)
    return Interactions.from_arrays(user_ids=users, item_ids=items, ratings=ratings, timestamps=times)


def catalogue() -> Catalogue:
    metadata: list[dict[str, Any]] = [
        {
            "title": f"Item {n}",
            "genre": "odd" if n % 2 else "even",
            "year": 1990 + n,
            "price": n + 0.5,
            "in_stock": n % 3 != 0,
            "tags": ["new"] if n > 8 else [],
        }
        for n in range(1, len(ITEMS) + 1)
    ]
    del metadata[11]["title"]  # an item without a title: labelled by its id
    return Catalogue.from_records(ITEMS, metadata)


def make_parts(seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of :func:`write_bundle` (without ``recommended``) for a toy two-stage model."""
    rng = np.random.default_rng(seed)
    scoring = MLPReranker(
        [rng.normal(size=(2 * DIMENSION, 8)), rng.normal(size=(8, 1))],
        [rng.normal(size=8), np.array([3.0])],
        user_dimension=DIMENSION,
    )
    blend = BlendReranker(
        BlendWeights(retrieval=1.0, rating=0.2, item=rng.normal(size=DIMENSION).astype(np.float32), bias=0.5),
        rating_model=scoring,
    )
    return {
        "user_keys": list(USERS),
        "user_vectors": rng.normal(size=(len(USERS), DIMENSION)).astype(np.float32),
        "item_keys": list(ITEMS),
        "item_vectors": rng.normal(size=(len(ITEMS), DIMENSION)).astype(np.float32),
        "catalogue": catalogue(),
        "train": train_log(),
        "scoring": scoring,
        "blend": blend,
    }


def write_synthetic_bundle(path: Path, *, recommended: str = "blend", seed: int = 0, **overrides: Any) -> Path:
    parts = {**make_parts(seed), **overrides}
    return write_bundle(path, recommended=recommended, **parts)  # type: ignore[arg-type]


@dataclass
class Written:
    path: Path
    parts: dict[str, Any]


@pytest.fixture
def written(tmp_path: Path) -> Written:
    parts = make_parts()
    path = write_bundle(
        tmp_path / "models",
        recommended="blend",
        dataset="synthetic",
        split={"kind": "stratified", "test_fraction": 0.25, "seed": 42},
        training={"ndcg@10": {"none": 0.1, "scoring": 0.05, "blend": 0.12}},
        **parts,
    )
    return Written(path=path, parts=parts)


def siblings(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.parent.iterdir())


# --------------------------------------------------------------------------- round trip


def test_round_trip_gives_back_every_part(written: Written) -> None:
    parts = written.parts
    loaded = read_bundle(written.path)
    assert isinstance(loaded, Bundle) and loaded.path == written.path and loaded.backend == "numpy"
    np.testing.assert_array_equal(loaded.user_embedder.embed(USERS), parts["user_vectors"])
    np.testing.assert_array_equal(loaded.item_embedder.embed(ITEMS[::-1]), parts["item_vectors"][::-1])
    with pytest.raises(UnknownKeyError):
        loaded.user_embedder.embed(["c-unknown"])

    train: Interactions = parts["train"]
    assert loaded.seen_items == {user: frozenset(items) for user, items in train.items_by_user().items()}
    assert "c-6f00" not in loaded.seen_items  # known to the tower, but no training events
    assert list(loaded.popularity) == POPULARITY_ORDER
    assert list(loaded.popularity.items()) == list(train.item_counts().items())

    assert loaded.catalogue.item_ids == parts["catalogue"].item_ids
    assert loaded.catalogue.metadata == parts["catalogue"].metadata

    users = parts["user_vectors"][[0, 1, 2]]
    items = parts["item_vectors"][[3, 4, 5]]
    assert loaded.scoring is not None and loaded.blend is not None
    np.testing.assert_array_equal(loaded.scoring.score(users, items), parts["scoring"].score(users, items))
    np.testing.assert_allclose(loaded.blend.score(users, items), parts["blend"].score(users, items), rtol=1e-6)
    assert loaded.report is None


def test_manifest_describes_the_bundle(written: Written) -> None:
    manifest = read_manifest(written.path)
    assert read_bundle(written.path).manifest == manifest
    assert is_bundle(written.path) and not is_bundle(written.path.parent)
    train: Interactions = written.parts["train"]
    assert (manifest.feedback, manifest.recommended, manifest.dimension, manifest.metric) == (
        "explicit",
        "blend",
        DIMENSION,
        "dotproduct",
    )
    assert manifest.dataset == "synthetic"
    assert manifest.split == {"kind": "stratified", "test_fraction": 0.25, "seed": 42}
    assert manifest.training == {"ndcg@10": {"none": 0.1, "scoring": 0.05, "blend": 0.12}}
    assert manifest.train_interactions == len(EVENTS)
    assert manifest.train_fingerprint == train.fingerprint()
    assert (manifest.users, manifest.items, manifest.saved_models) == (len(USERS), len(ITEMS), False)
    assert dt.datetime.fromisoformat(manifest.created).tzinfo is not None
    # The manifest lists every file, and the directory holds nothing else.
    assert set(manifest.files) == {
        USER_EMBEDDINGS,
        ITEM_EMBEDDINGS,
        CATALOGUE,
        SEEN_ITEMS,
        POPULARITY,
        SCORING_MLP,
        BLEND,
    }
    assert sorted(entry.name for entry in written.path.iterdir()) == sorted([*manifest.files, MANIFEST])
    assert siblings(written.path) == ["models"]  # no staging or old directory left beside it


def test_implicit_feedback_and_the_smallest_bundle(tmp_path: Path) -> None:
    """Events without ratings, no scoring model and no blend: a retrieval-only bundle."""
    parts = make_parts()
    implicit = parts["train"].without_ratings()
    path = write_synthetic_bundle(tmp_path / "b", recommended="none", train=implicit, scoring=None, blend=None)
    loaded = read_bundle(path)
    assert loaded.manifest.feedback == "implicit"
    assert loaded.manifest.train_fingerprint == parts["train"].fingerprint()  # ratings are not part of it
    assert (loaded.scoring, loaded.blend) == (None, None)
    assert SCORING_MLP not in loaded.manifest.files and BLEND not in loaded.manifest.files
    assert loaded.rerankers == {"none": None}
    assert loaded.resolve_reranker() == ("none", None)
    np.testing.assert_array_equal(loaded.user_embedder.embed(USERS[:2]), parts["user_vectors"][:2])


def test_resolve_reranker(written: Written) -> None:
    loaded = read_bundle(written.path)
    assert set(loaded.rerankers) == {"none", "scoring", "blend"}
    assert loaded.resolve_reranker() == ("blend", loaded.blend)
    assert loaded.resolve_reranker("scoring") == ("scoring", loaded.scoring)
    assert loaded.resolve_reranker("none") == ("none", None)
    with pytest.raises(InvalidInputError, match="recommended, none, scoring, blend"):
        loaded.resolve_reranker("fancy")  # type: ignore[arg-type]


def test_load_models_reads_the_model_files_of_a_bundle(written: Written) -> None:
    models = load_models(written.path)
    np.testing.assert_array_equal(models.user_embedder.embed(["c-3c11"]), written.parts["user_vectors"][[2]])
    assert isinstance(models.reranker, MLPReranker) and models.backend == "numpy"


# --------------------------------------------------------------------------- replacing a bundle


def test_retrain_into_the_same_path_leaves_no_stale_file(written: Written) -> None:
    (written.path / "protocol.json").write_text('{"protocol": "random"}', encoding="utf-8")  # an older layout's file
    path = write_synthetic_bundle(written.path, recommended="scoring", blend=None, seed=1)
    assert path == written.path
    names = {entry.name for entry in path.iterdir()}
    assert BLEND not in names and "protocol.json" not in names
    manifest = read_manifest(path)
    assert names == {*manifest.files, MANIFEST}
    assert manifest.recommended == "scoring"
    np.testing.assert_array_equal(
        read_bundle(path).user_embedder.embed(USERS), make_parts(seed=1)["user_vectors"]
    )  # the new towers, not the old
    assert siblings(path) == ["models"]


def test_a_models_directory_of_an_earlier_version_may_be_replaced(tmp_path: Path) -> None:
    old = tmp_path / "models"
    old.mkdir()
    for name in (USER_EMBEDDINGS, ITEM_EMBEDDINGS, SCORING_MLP, "protocol.json"):
        (old / name).write_bytes(b"from an earlier version")
    with pytest.raises(ModelError, match="earlier version"):
        read_bundle(old)
    write_synthetic_bundle(old)
    assert "protocol.json" not in {entry.name for entry in old.iterdir()}
    assert read_manifest(old).recommended == "blend"


def test_an_empty_directory_may_be_used(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    assert is_bundle(write_synthetic_bundle(tmp_path / "models"))


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_refuses_to_replace_what_is_not_a_bundle(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "precious"
    if kind == "directory":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work", encoding="utf-8")
    else:
        target.write_text("a file", encoding="utf-8")
    with pytest.raises(PersistenceError, match="not a models bundle"):
        write_synthetic_bundle(target)
    if kind == "directory":
        assert [entry.name for entry in target.iterdir()] == ["thesis.tex"]
        assert (target / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    else:
        assert target.read_text(encoding="utf-8") == "a file"
    assert siblings(target) == ["precious"]


def test_a_failure_mid_write_keeps_the_old_bundle(written: Written, monkeypatch: pytest.MonkeyPatch) -> None:
    before = read_manifest(written.path)

    def broken_save(self: Catalogue, path: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Catalogue, "save", broken_save)
    with pytest.raises(PersistenceError, match="No space left") as caught:
        write_synthetic_bundle(written.path, recommended="none", seed=1)
    assert isinstance(caught.value.__cause__, OSError)
    assert read_manifest(written.path) == before
    np.testing.assert_array_equal(read_bundle(written.path).user_embedder.embed(USERS), written.parts["user_vectors"])
    assert siblings(written.path) == ["models"]  # the staging directory is gone


def test_any_exception_mid_write_removes_the_staging_directory(
    written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: BlendReranker, path: object) -> Path:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(BlendReranker, "save", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_synthetic_bundle(written.path, seed=1)
    assert read_manifest(written.path).recommended == "blend"
    assert siblings(written.path) == ["models"]


def test_a_failed_swap_puts_the_old_bundle_back(written: Written, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old bundle is renamed aside before the new one is renamed in; if that fails, the old one returns."""
    real_rename = os.rename
    calls: list[str] = []

    def rename(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
        calls.append(Path(source).name)
        if Path(source).name.startswith(".models.tmp-"):
            raise OSError(5, "Input/output error")
        real_rename(source, destination)

    monkeypatch.setattr(bundle_module.os, "rename", rename)
    with pytest.raises(PersistenceError, match="Input/output error"):
        write_synthetic_bundle(written.path, seed=1)
    monkeypatch.undo()
    assert calls[0] == "models"  # the swap was reached
    np.testing.assert_array_equal(read_bundle(written.path).user_embedder.embed(USERS), written.parts["user_vectors"])
    assert siblings(written.path) == ["models"]


# --------------------------------------------------------------------------- what is not a (complete) bundle


def test_an_incomplete_bundle_names_the_missing_file(written: Written) -> None:
    (written.path / POPULARITY).unlink()
    with pytest.raises(ModelError, match=r"incomplete: missing popularity\.npz"):
        read_bundle(written.path)


def test_a_directory_without_a_manifest_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist; train one with `two-stage-rec train"):
        read_bundle(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"not a models bundle \(no bundle\.json\): it holds no models"):
        read_bundle(empty)
    made_elsewhere = tmp_path / "notebook"
    (made_elsewhere / "user_model").mkdir(parents=True)
    with pytest.raises(ModelError, match="load_models"):
        read_manifest(made_elsewhere)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format="something.else"), "not a two_stage_rec bundle manifest"),
        (lambda m: m.update(format_version=99), "bundle format 99"),
        (lambda m: m.update(recommended="fancy"), "recommended must be one of"),
        (lambda m: m.update(feedback="telepathic"), "feedback must be"),
        (lambda m: m.pop("dimension"), "lacks a field"),
    ],
)
def test_a_malformed_manifest_is_a_model_error(written: Written, edit: Any, message: str) -> None:
    source = written.path / MANIFEST
    manifest = json.loads(source.read_text(encoding="utf-8"))
    edit(manifest)
    source.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        read_bundle(written.path)


def test_a_manifest_that_is_not_json(written: Written) -> None:
    (written.path / MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"cannot read .*bundle\.json"):
        read_manifest(written.path)


# --------------------------------------------------------------------------- parts that disagree: nothing written


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"recommended": "fancy"}, InvalidInputError, "recommended must be one of none, scoring, blend"),
        ({"recommended": "blend", "blend": None}, InvalidInputError, "needs the blend reranker"),
        ({"recommended": "scoring", "scoring": None, "blend": None}, InvalidInputError, "needs the scoring model"),
        # A blend that weighs the scoring model cannot be served without it.
        ({"recommended": "none", "scoring": None}, InvalidInputError, "scoring weight"),
        (
            {"recommended": "none", "saved_models": True, "scoring": None, "blend": None},
            InvalidInputError,
            "saved_models",
        ),
        ({"item_vectors": np.zeros((len(ITEMS), 3), np.float32)}, DimensionMismatchError, "item vectors"),
        (
            {"item_keys": ITEMS[:-1], "item_vectors": np.zeros((11, DIMENSION), np.float32)},
            InvalidInputError,
            r"1 catalogue items have no item vector, e\.g\. \['sku-12'\]",
        ),
        ({"user_keys": USERS[:-1]}, InvalidInputError, "differ in length"),
        (
            {
                "recommended": "scoring",
                "scoring": MLPReranker([np.ones((6, 1))], [np.zeros(1)], user_dimension=3),
                "blend": None,
            },
            DimensionMismatchError,
            "scoring model",
        ),
        (
            {"blend": BlendReranker(BlendWeights(retrieval=1.0, rating=0.0, item=np.ones(3, np.float32)))},
            DimensionMismatchError,
            "item prior",
        ),
        ({"blend": "not a blend"}, InvalidInputError, "must be a BlendReranker"),
    ],
)
def test_parts_that_disagree_are_refused_before_writing(
    tmp_path: Path, overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    target = tmp_path / "models"
    with pytest.raises(error, match=message):
        write_synthetic_bundle(target, **overrides)
    assert list(tmp_path.iterdir()) == []


def test_tensorflow_backend_needs_saved_models(written: Written) -> None:
    with pytest.raises(ModelError, match="no SavedModels"):
        read_bundle(written.path, backend="tensorflow")


def test_saved_models_round_trip_with_the_tensorflow_backend(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="writing and reading SavedModels needs the 'tensorflow' extra")
    parts = make_parts()
    path = write_synthetic_bundle(tmp_path / "models", saved_models=True)
    manifest = read_manifest(path)
    assert manifest.saved_models and {"user_model", "item_model", "scoring_model"} <= set(manifest.files)
    loaded = read_bundle(path, backend="tensorflow")
    assert loaded.backend == "tensorflow"
    np.testing.assert_allclose(loaded.user_embedder.embed(USERS), parts["user_vectors"], rtol=1e-6)
    np.testing.assert_allclose(loaded.item_embedder.embed(ITEMS[:3]), parts["item_vectors"][:3], rtol=1e-6)
    # The SavedModel tower would embed an unknown user as its out-of-vocabulary vector; the bundle refuses it.
    with pytest.raises(UnknownKeyError) as caught:
        loaded.user_embedder.embed(["c-1f9a", "c-unknown"])
    assert caught.value.keys == ["c-unknown"]
    users, items = parts["user_vectors"][:3], parts["item_vectors"][:3]
    assert loaded.scoring is not None and loaded.blend is not None
    np.testing.assert_allclose(loaded.scoring.score(users, items), parts["scoring"].score(users, items), rtol=1e-5)
    np.testing.assert_allclose(loaded.blend.score(users, items), parts["blend"].score(users, items), rtol=1e-5)
    # The numpy backend reads the same bundle.
    np.testing.assert_array_equal(read_bundle(path).user_embedder.embed(USERS), parts["user_vectors"])
