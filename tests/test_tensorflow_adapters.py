"""SavedModelEmbedder / SavedModelReranker on tiny SavedModels of every kind the notebook's models come in.

Models are built once per module in a temporary directory (TensorFlow's import
and tracing cost seconds): Keras 3 ``model.export``, ``tf.saved_model.save`` of a
``tf.Module`` with an ``input_signature``, and tf-keras (Keras 2, as TensorFlow
Recommenders uses) ``model.save`` and ``tf.saved_model.save``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from two_stage_rec import (
    DimensionMismatchError,
    Embedder,
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    Recommender,
    Reranker,
    UnknownKeyError,
    UnknownUserError,
)
from two_stage_rec.stores.memory import InMemoryVectorStore
from two_stage_rec.testing import EmbedderContract, RerankerContract

tf = pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")
keras = pytest.importorskip("keras", reason="keras (installed with tensorflow) is missing")

from two_stage_rec.adapters.tensorflow import SavedModelEmbedder, SavedModelReranker  # noqa: E402

DIM = 32
VOCAB = [str(i) for i in range(1, 61)]  # ids "1".."60"; "42" is known, "999" is not
SEED = 7

needs_tf_keras = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None,
    reason="tf_keras (Keras 2, used by TensorFlow Recommenders) is not installed; pip install tf-keras",
)


# ----------------------------------------------------------------- model builders


def _keras3_tower(path: Path) -> Path:
    """Keras 3 Sequential(StringLookup, Embedding) exported with model.export (not callable once loaded)."""
    model = keras.Sequential(
        [
            keras.Input(shape=(), dtype="string"),
            keras.layers.StringLookup(vocabulary=VOCAB),
            keras.layers.Embedding(len(VOCAB) + 1, DIM),
        ]
    )
    model.export(str(path), verbose=False)
    return path


def _keras3_scoring(path: Path) -> Path:
    model = keras.Sequential(
        [keras.Input((2 * DIM,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.export(str(path), verbose=False)
    return path


class _ModuleTower(tf.Module):  # type: ignore[misc]
    """The route the training helper exports with: a tf.Module whose __call__ has an input_signature."""

    def __init__(self) -> None:
        super().__init__()
        keys = tf.constant(VOCAB)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(1, len(VOCAB) + 1, dtype=tf.int64)),
            default_value=0,
        )
        self.embeddings = tf.Variable(tf.random.stateless_normal((len(VOCAB) + 1, DIM), seed=(SEED, 1)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, keys: Any) -> Any:
        return tf.gather(self.embeddings, self.table.lookup(keys))


def _module_tower(path: Path) -> Path:
    module = _ModuleTower()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def _tf_keras_tower(path: Path) -> Path:
    """tf-keras Sequential(StringLookup, Embedding) saved with model.save(dir): the SavedModel format."""
    import tf_keras

    model = tf_keras.Sequential(
        [tf_keras.layers.StringLookup(vocabulary=VOCAB), tf_keras.layers.Embedding(len(VOCAB) + 1, DIM)]
    )
    model(np.array(["1"]))
    model.save(str(path))
    return path


def _tfrs_like_tower(path: Path) -> Path:
    """A TFRS-style tower: a tf-keras Model subclass, saved with tf.saved_model.save (no input_signature)."""
    import tf_keras

    class UserModel(tf_keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.embedding = tf_keras.Sequential(
                [
                    tf_keras.layers.StringLookup(vocabulary=VOCAB, mask_token=None),
                    tf_keras.layers.Embedding(len(VOCAB) + 1, DIM),
                ]
            )

        def call(self, inputs: Any) -> Any:
            return self.embedding(inputs)

    model = UserModel()
    model(np.array(["1"]))
    tf.saved_model.save(model, str(path))
    return path


def _tfrs_like_scoring(path: Path) -> Path:
    """The TFRS ranking tutorial's MLP on concat(user, item): tf-keras Sequential of Dense, model.save(dir)."""
    import tf_keras

    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(256, activation="relu"),
            tf_keras.layers.Dense(64, activation="relu"),
            tf_keras.layers.Dense(1),
        ]
    )
    model(tf.zeros((1, 2 * DIM)))
    model.save(str(path))
    return path


def _save_function(path: Path, function: Any, *, signatures: dict[str, Any] | None = None) -> Path:
    """Save one tf.function as the module's __call__ (callable once loaded)."""
    module = tf.Module()
    module.__call__ = function
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def _spec(*shape: int | None, dtype: Any = None) -> Any:
    return tf.TensorSpec(list(shape), dtype or tf.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved_models")
    built = {
        "keras3_tower": _keras3_tower(root / "keras3_tower"),
        "keras3_scoring": _keras3_scoring(root / "keras3_scoring"),
        "module_tower": _module_tower(root / "module_tower"),
    }

    # Variants the adapters must accept: undeclared widths, hashing (no vocabulary), (n,) scores.
    @tf.function(input_signature=[_spec(None, dtype=tf.string)])
    def hashed_tower(keys: Any) -> Any:
        buckets = tf.strings.to_hash_bucket_fast(keys, 97)
        vectors = tf.one_hot(buckets % 8, 8)
        return tf.reshape(vectors, [tf.shape(keys)[0], -1])  # width not declared statically

    @tf.function(input_signature=[_spec(None, None)])
    def sum_scoring(pairs: Any) -> Any:
        return tf.reduce_sum(pairs, axis=1)  # (n,), any width

    @tf.function(input_signature=[_spec(None, dtype=tf.string)])
    def two_outputs(keys: Any) -> Any:
        vectors = tf.one_hot(tf.strings.to_hash_bucket_fast(keys, 4), 4)
        return {"embedding": vectors, "norm": tf.norm(vectors, axis=1)}

    # Models the adapters must refuse.
    @tf.function(input_signature=[_spec(None, dtype=tf.string)])
    def flat_tower(keys: Any) -> Any:
        return tf.ones_like(tf.strings.length(keys), tf.float32)  # (n,), not (n, d)

    @tf.function(input_signature=[_spec(None, dtype=tf.string)])
    def index_tower(keys: Any) -> Any:
        return tf.expand_dims(tf.strings.to_hash_bucket_fast(keys, 10), 1)  # int64 (n, 1)

    @tf.function(input_signature=[_spec(None, 2 * DIM)])
    def wide_scoring(pairs: Any) -> Any:
        return pairs[:, :3]  # (n, 3)

    @tf.function(input_signature=[_spec(1, 2 * DIM)])
    def fixed_batch_scoring(pairs: Any) -> Any:
        return tf.reduce_sum(pairs, axis=1, keepdims=True)

    built["hashed_tower"] = _save_function(root / "hashed_tower", hashed_tower)
    built["sum_scoring"] = _save_function(root / "sum_scoring", sum_scoring)
    module = tf.Module()
    module.two = two_outputs
    tf.saved_model.save(module, str(root / "two_outputs"), signatures={"serving_default": two_outputs})
    built["two_outputs"] = root / "two_outputs"
    built["flat_tower"] = _save_function(root / "flat_tower", flat_tower)
    built["index_tower"] = _save_function(root / "index_tower", index_tower)
    built["wide_scoring"] = _save_function(root / "wide_scoring", wide_scoring)
    built["fixed_batch_scoring"] = _save_function(root / "fixed_batch_scoring", fixed_batch_scoring)
    if importlib.util.find_spec("tf_keras") is not None:
        built["tf_keras_tower"] = _tf_keras_tower(root / "tf_keras_tower")
        built["tfrs_like_tower"] = _tfrs_like_tower(root / "tfrs_like_tower")
        built["tfrs_like_scoring"] = _tfrs_like_scoring(root / "tfrs_like_scoring")
    return built


def _raw_embed(path: Path, keys: list[str]) -> np.ndarray[Any, Any]:
    """What the loaded model itself returns, called the notebook's way (or via serve when not callable)."""
    loaded = tf.saved_model.load(str(path))
    function = loaded if callable(loaded) else loaded.serve
    return np.asarray(function(np.array(keys)))


TOWERS = [
    "keras3_tower",
    "module_tower",
    pytest.param("tf_keras_tower", marks=needs_tf_keras),
    pytest.param("tfrs_like_tower", marks=needs_tf_keras),
]


# ------------------------------------------------------------------------- embedder


@pytest.mark.parametrize("name", TOWERS)
def test_embedder_matches_the_notebook_call(models: dict[str, Path], name: str) -> None:
    embedder = SavedModelEmbedder(models[name])
    assert isinstance(embedder, Embedder)
    assert embedder.dimension == DIM
    vectors = embedder.embed(["42"])
    assert vectors.shape == (1, DIM) and vectors.dtype == np.float32
    keys = ["42", "1", "60", "7"]
    batch = embedder.embed(keys)
    np.testing.assert_allclose(batch, _raw_embed(models[name], keys), rtol=0, atol=1e-6)
    np.testing.assert_allclose(batch[0], vectors[0], rtol=0, atol=1e-6)
    assert len({row.tobytes() for row in batch}) == len(keys)  # distinct keys, distinct vectors


@needs_tf_keras
def test_tf_keras_models_load_without_tf_keras(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> None:
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # any `import tf_keras` now raises ImportError
    assert SavedModelEmbedder(models["tfrs_like_tower"]).embed(["42"]).shape == (1, DIM)
    assert SavedModelReranker(models["tfrs_like_scoring"]).input_width == 2 * DIM


@pytest.mark.parametrize("name", TOWERS)
def test_embedder_reads_the_string_lookup_vocabulary(models: dict[str, Path], name: str) -> None:
    assert SavedModelEmbedder(models[name]).vocabulary == tuple(VOCAB)


def test_keras3_export_is_used_through_serve_or_a_named_signature(models: dict[str, Path]) -> None:
    path = models["keras3_tower"]
    default = SavedModelEmbedder(path)
    assert "serve" in repr(default)
    by_signature = SavedModelEmbedder(path, signature="serving_default")
    assert by_signature.dimension == DIM
    np.testing.assert_array_equal(default.embed(["42", "3"]), by_signature.embed(["42", "3"]))


def test_unknown_keys_get_the_oov_vector_silently_by_default(models: dict[str, Path]) -> None:
    embedder = SavedModelEmbedder(models["keras3_tower"])
    oov = embedder.embed(["999", "not-a-user", "42"])
    np.testing.assert_array_equal(oov[0], oov[1])  # one shared out-of-vocabulary vector
    assert not np.array_equal(oov[0], oov[2])


@pytest.mark.parametrize("name", ["keras3_tower", pytest.param("tfrs_like_tower", marks=needs_tf_keras)])
def test_unknown_raise_checks_the_model_vocabulary(models: dict[str, Path], name: str) -> None:
    embedder = SavedModelEmbedder(models[name], unknown="raise")
    assert embedder.embed(["42"]).shape == (1, DIM)
    with pytest.raises(UnknownKeyError) as caught:
        embedder.embed(["42", "999", "0"])
    assert caught.value.keys == ["999", "0"]


def test_unknown_raise_with_known_keys(models: dict[str, Path]) -> None:
    embedder = SavedModelEmbedder(models["hashed_tower"], unknown="raise", known_keys=["a", "b"])
    assert embedder.embed(["b", "a"]).shape == (2, 8)
    with pytest.raises(UnknownKeyError):
        embedder.embed(["c"])


def test_unknown_raise_without_a_vocabulary_is_a_model_error(models: dict[str, Path]) -> None:
    assert SavedModelEmbedder(models["hashed_tower"]).vocabulary is None
    with pytest.raises(ModelError, match="known_keys"):
        SavedModelEmbedder(models["hashed_tower"], unknown="raise")


def test_undeclared_width_is_found_by_probing(models: dict[str, Path]) -> None:
    embedder = SavedModelEmbedder(models["hashed_tower"])
    assert embedder.dimension == 8
    assert embedder.embed(["x", "y", "z"]).shape == (3, 8)


def test_batch_size_splits_calls_without_changing_results(models: dict[str, Path]) -> None:
    whole = SavedModelEmbedder(models["module_tower"])
    split = SavedModelEmbedder(models["module_tower"], batch_size=7)
    keys = VOCAB[:25]
    np.testing.assert_array_equal(split.embed(keys), whole.embed(keys))


def test_empty_batch_and_bad_keys(models: dict[str, Path]) -> None:
    embedder = SavedModelEmbedder(models["module_tower"])
    empty = embedder.embed([])
    assert empty.shape == (0, DIM) and empty.dtype == np.float32
    with pytest.raises(InvalidInputError):
        embedder.embed("42")
    with pytest.raises(InvalidInputError):
        embedder.embed([42])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"unknown": "zeros"}, "unknown"),
        ({"known_keys": ["1"]}, "known_keys"),
        ({"unknown": "raise", "known_keys": "42"}, "single string"),
    ],
)
def test_embedder_rejects_bad_configuration(models: dict[str, Path], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SavedModelEmbedder(models["module_tower"], **kwargs)


def test_multi_output_signature_needs_output(models: dict[str, Path]) -> None:
    path = models["two_outputs"]  # not callable, no serve: the default is serving_default
    with pytest.raises(ModelError, match="embedding, norm"):
        SavedModelEmbedder(path)
    embedder = SavedModelEmbedder(path, output="embedding")
    assert embedder.dimension == 4
    assert embedder.embed(["a", "b"]).shape == (2, 4)
    via_function = SavedModelEmbedder(path, signature="two", output="embedding")
    np.testing.assert_array_equal(via_function.embed(["a"]), embedder.embed(["a"]))
    with pytest.raises(ModelError, match="no output 'nope'"):
        SavedModelEmbedder(path, output="nope")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("flat_tower", "expected float \\(n, d\\)"),
        ("index_tower", "int64"),
        ("sum_scoring", "scoring model"),
    ],
)
def test_embedder_refuses_models_of_the_wrong_shape(models: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        SavedModelEmbedder(models[name])


def test_unknown_signature_lists_what_exists(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match="serving_default"):
        SavedModelEmbedder(models["keras3_tower"], signature="predict")


# ------------------------------------------------------------------------ paths


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        SavedModelEmbedder(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="does not exist"):
        SavedModelReranker(tmp_path / "nowhere")


def test_directory_that_is_not_a_saved_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match="not a SavedModel"):
        SavedModelEmbedder(tmp_path)


def test_keras_file_gets_a_hint(tmp_path: Path) -> None:
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"PK")
    with pytest.raises(ModelError, match=r"model\.export"):
        SavedModelReranker(model_file)


def test_corrupt_saved_model(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="could not load"):
        SavedModelEmbedder(tmp_path)


def test_model_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SavedModelEmbedder(tmp_path / "nowhere")


def test_missing_tensorflow_names_the_extra(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"two-stage-rec\[tensorflow\]"):
        SavedModelEmbedder(models["module_tower"])


# ------------------------------------------------------------------------ reranker


SCORERS = ["keras3_scoring", pytest.param("tfrs_like_scoring", marks=needs_tf_keras)]


@pytest.mark.parametrize("name", SCORERS)
def test_reranker_scores_50_pairs_in_one_call_like_50_notebook_calls(models: dict[str, Path], name: str) -> None:
    reranker = SavedModelReranker(models[name])
    assert isinstance(reranker, Reranker)
    assert reranker.input_width == 2 * DIM
    rng = np.random.default_rng(SEED)
    users = np.repeat(rng.normal(size=(1, DIM)).astype(np.float32), 50, axis=0)
    items = rng.normal(size=(50, DIM)).astype(np.float32)
    scores = reranker.score(users, items)
    assert scores.shape == (50,) and scores.dtype == np.float32

    loaded = tf.saved_model.load(str(models[name]))
    model = loaded if callable(loaded) else loaded.serve
    per_row = np.array(
        [np.asarray(model(tf.concat([users[i : i + 1], items[i : i + 1]], axis=1)))[0, 0] for i in range(50)]
    )
    np.testing.assert_allclose(scores, per_row, rtol=0, atol=1e-5)
    assert np.ptp(scores) > 0  # a real model, not a constant


def test_reranker_through_a_named_signature(models: dict[str, Path]) -> None:
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(5, DIM)), rng.normal(size=(5, DIM))
    default = SavedModelReranker(models["keras3_scoring"])
    by_signature = SavedModelReranker(models["keras3_scoring"], signature="serving_default")
    np.testing.assert_allclose(by_signature.score(users, items), default.score(users, items), atol=1e-6)


def test_reranker_accepts_flat_scores_and_undeclared_width(models: dict[str, Path]) -> None:
    reranker = SavedModelReranker(models["sum_scoring"])
    assert reranker.input_width is None
    users = np.ones((3, 2), dtype=np.float64)
    items = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(reranker.score(users, items), np.array([3, 4, 5], dtype=np.float32))


def test_reranker_dimension_mismatch(models: dict[str, Path]) -> None:
    reranker = SavedModelReranker(models["keras3_scoring"])
    with pytest.raises(DimensionMismatchError) as caught:
        reranker.score(np.zeros((50, DIM)), np.zeros((50, DIM // 2)))
    assert (caught.value.expected, caught.value.got) == (2 * DIM, DIM + DIM // 2)


def test_reranker_rejects_bad_pairs(models: dict[str, Path]) -> None:
    reranker = SavedModelReranker(models["keras3_scoring"])
    with pytest.raises(InvalidInputError, match="in pairs"):
        reranker.score(np.zeros((3, DIM)), np.zeros((4, DIM)))
    with pytest.raises(InvalidInputError, match="2-D"):
        reranker.score(np.zeros(DIM), np.zeros(DIM))
    with pytest.raises(InvalidInputError, match="numeric"):
        reranker.score(np.array([["a"] * DIM]), np.zeros((1, DIM)))
    empty = reranker.score(np.zeros((0, DIM)), np.zeros((0, DIM)))
    assert empty.shape == (0,) and empty.dtype == np.float32


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wide_scoring", r"\(n, 1\) or \(n,\)"),
        ("fixed_batch_scoring", "exactly 1 rows"),
        ("module_tower", "is this an embedder"),
    ],
)
def test_reranker_refuses_models_of_the_wrong_shape(models: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        SavedModelReranker(models[name])


def test_model_failure_at_call_time_is_a_model_error(models: dict[str, Path]) -> None:
    # The model declares no width, so a width it cannot take only fails inside TensorFlow.
    @tf.function(input_signature=[_spec(None, None)])
    def needs_four(pairs: Any) -> Any:
        return tf.reshape(pairs, [-1, 4])[:, :1]

    path = _save_function(models["sum_scoring"].parent / "needs_four", needs_four)
    reranker = SavedModelReranker(path)
    with pytest.raises(ModelError, match="failed"):
        reranker.score(np.zeros((1, 1)), np.zeros((1, 2)))


# --------------------------------------------------------- composed in a Recommender


@pytest.mark.parametrize(
    ("tower", "scorer"),
    [
        ("keras3_tower", "keras3_scoring"),
        pytest.param("tfrs_like_tower", "tfrs_like_scoring", marks=needs_tf_keras),
    ],
)
def test_recommender_end_to_end(models: dict[str, Path], tower: str, scorer: str) -> None:
    users = SavedModelEmbedder(models[tower], unknown="raise")
    items = SavedModelEmbedder(models[tower])  # same tower for items keeps the fixture small
    reranker = SavedModelReranker(models[scorer])
    store = InMemoryVectorStore(dimension=DIM)
    recommender = Recommender(user_embedder=users, item_embedder=items, store=store, reranker=reranker)
    assert recommender.index_items(VOCAB, metadata=[{"title": f"movie {i}"} for i in VOCAB]) == len(VOCAB)

    reranked = recommender.recommend("42", k=5, candidates=20, exclude={"42"})
    retrieved = recommender.recommend("42", k=20, candidates=20, exclude={"42"}, rerank=False)
    assert [r.source for r in reranked] == ["reranked"] * 5
    assert "42" not in {r.item_id for r in reranked}

    # Reference: the raw models, scoring the same 20 candidates the store returned.
    user_vector = _raw_embed(models[tower], ["42"])
    candidate_ids = [r.item_id for r in retrieved]
    candidate_vectors = _raw_embed(models[tower], candidate_ids)
    loaded = tf.saved_model.load(str(models[scorer]))
    scoring_model = loaded if callable(loaded) else loaded.serve
    pairs = tf.concat([np.repeat(user_vector, len(candidate_ids), axis=0), candidate_vectors], axis=1)
    raw_scores = np.asarray(scoring_model(pairs)).reshape(-1)
    expected = [candidate_ids[i] for i in np.argsort(-raw_scores, kind="stable")[:5]]
    assert [r.item_id for r in reranked] == expected
    np.testing.assert_allclose([r.score for r in reranked], np.sort(raw_scores)[::-1][:5], atol=1e-5)

    with pytest.raises(UnknownUserError):
        recommender.recommend("999")


def test_recommender_rejects_an_embedder_of_another_dimension(models: dict[str, Path]) -> None:
    embedder = SavedModelEmbedder(models["module_tower"])
    with pytest.raises(DimensionMismatchError) as caught:
        Recommender(user_embedder=embedder, store=InMemoryVectorStore(dimension=DIM // 2))
    assert (caught.value.expected, caught.value.got) == (DIM // 2, DIM)
    with pytest.raises(DimensionMismatchError):
        Recommender(
            user_embedder=SavedModelEmbedder(models["hashed_tower"]),
            item_embedder=embedder,
            store=InMemoryVectorStore(dimension=8),
        )


# ------------------------------------------------------------------ contract suites


_ADAPTERS: dict[tuple[Path, str], Any] = {}


class _SavedModels:
    """Gives each contract test the module's SavedModels, loading each adapter once."""

    @pytest.fixture(autouse=True)
    def _models(self, models: dict[str, Path]) -> None:
        self.paths = models

    def _adapter(self, kind: type[Any], name: str, **options: Any) -> Any:
        key = (self.paths[name], kind.__name__)
        if key not in _ADAPTERS:
            _ADAPTERS[key] = kind(self.paths[name], **options)
        return _ADAPTERS[key]


class TestSavedModelEmbedderContract(_SavedModels, EmbedderContract):
    unknown_keys = ("999", "0")

    def make_embedder(self) -> Embedder:
        return cast(Embedder, self._adapter(SavedModelEmbedder, "keras3_tower", unknown="raise"))

    def known_keys(self) -> list[str]:
        return ["42", "1", "7", "60"]


class TestSavedModelEmbedderWithoutVocabularyContract(_SavedModels, EmbedderContract):
    """A hashing tower embeds every key: the unknown-key test is skipped with its reason."""

    def make_embedder(self) -> Embedder:
        return cast(Embedder, self._adapter(SavedModelEmbedder, "hashed_tower"))

    def known_keys(self) -> list[str]:
        return ["a", "b", "c", "anything"]


class TestSavedModelRerankerContract(_SavedModels, RerankerContract):
    user_dimension = DIM
    item_dimension = DIM

    def make_reranker(self) -> Reranker:
        return cast(Reranker, self._adapter(SavedModelReranker, "keras3_scoring"))


class TestSavedModelRerankerOfUndeclaredWidthContract(_SavedModels, RerankerContract):
    user_dimension = DIM
    item_dimension = DIM

    def make_reranker(self) -> Reranker:
        return cast(Reranker, self._adapter(SavedModelReranker, "sum_scoring"))
