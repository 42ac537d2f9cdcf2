"""A models bundle: one complete, self-describing directory that serving needs, written atomically.

This module owns the format: every file name below is spelled here and only
here. Training writes a bundle with :func:`write_bundle`;
:func:`read_bundle` loads it; :func:`~two_stage_rec.assembly.assemble`
turns it into a ready recommender::

    models/
      bundle.json            manifest: format, feedback, recommended reranker, split, sizes, fingerprint
      user_embeddings.npz    user tower as a table (keys, vectors)          -> TableEmbedder
      item_embeddings.npz    item tower as a table                          -> TableEmbedder
      scoring_mlp.npz        the scoring model (rating or relevance)        -> MLPReranker
      blend_reranker.npz     the blend of retrieval, scoring and item prior -> BlendReranker
      catalogue.jsonl        every item with its metadata                   -> Catalogue
      seen_items.npz         each user's training items (excluded from their recommendations)
      popularity.npz         items by training events, most first (cold-start fallback)
      training_report.json   what training measured
      ranker.npz             the ranking stage's tree ensemble (when trained) -> FeatureRanker
      ranker_item_item.npz   its EASE item-to-item weights
      ranker_history.npz     each user's training items in time order (recent items, history features)
      ranker_stage.npz       its item statistics (events, mean rating) and settings (depths, recent)
      user_model/ item_model/ scoring_model/   TF SavedModels of the notebook's shape (when asked)

Why atomic: a directory that mixes files of two trainings (a blend fitted for
other towers, a stale SavedModel) serves wrong answers without any error.
:func:`write_bundle` writes everything into a hidden sibling directory, then
swaps it in with two renames; the manifest lists every file, and
:func:`read_bundle` refuses a directory whose manifest is missing or whose
files are incomplete. A retrain therefore leaves the complete old bundle or
the complete new one, never a mixture, and no stale file survives (the swap
and what a crash mid-swap leaves are described in :mod:`two_stage_rec._atomic`).

Model directories made elsewhere (the notebook's three SavedModels) are not
bundles; load them with :func:`load_models` and pass the parts to
:class:`Bundle` directly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np

from two_stage_rec._atomic import atomic_directory
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.embedders.known import KnownKeysEmbedder
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError, PersistenceError
from two_stage_rec.protocols import Embedder, Reranker
from two_stage_rec.rerankers.blend import BlendReranker
from two_stage_rec.rerankers.feature_ranker import FeatureRanker
from two_stage_rec.rerankers.features import FeatureState
from two_stage_rec.rerankers.mlp import MLPReranker
from two_stage_rec.rerankers.ranking_stage import RankingStage
from two_stage_rec.training.report import REPORT_FILE, TrainingReport
from two_stage_rec.types import RERANKER_NAMES, Feedback, Metric, RerankerName

__all__ = [
    "BLEND",
    "CATALOGUE",
    "FORMAT_VERSION",
    "ITEM_EMBEDDINGS",
    "ITEM_MODEL",
    "MANIFEST",
    "POPULARITY",
    "RANKER",
    "RANKER_HISTORY",
    "RANKER_ITEM_ITEM",
    "RANKER_STAGE",
    "REPORT",
    "SCORING_MLP",
    "SCORING_MODEL",
    "SEEN_ITEMS",
    "USER_EMBEDDINGS",
    "USER_MODEL",
    "Bundle",
    "Feedback",
    "LoadedModels",
    "Manifest",
    "ModelBackend",
    "RerankerChoice",
    "is_bundle",
    "load_models",
    "read_bundle",
    "read_manifest",
    "write_bundle",
    "write_model_files",
]

FORMAT_VERSION = 1
MANIFEST = "bundle.json"
USER_EMBEDDINGS = "user_embeddings.npz"
ITEM_EMBEDDINGS = "item_embeddings.npz"
SCORING_MLP = "scoring_mlp.npz"
BLEND = "blend_reranker.npz"
CATALOGUE = "catalogue.jsonl"
SEEN_ITEMS = "seen_items.npz"
POPULARITY = "popularity.npz"
REPORT = REPORT_FILE
RANKER = "ranker.npz"
RANKER_ITEM_ITEM = "ranker_item_item.npz"
RANKER_HISTORY = "ranker_history.npz"
RANKER_STAGE = "ranker_stage.npz"
USER_MODEL = "user_model"
ITEM_MODEL = "item_model"
SCORING_MODEL = "scoring_model"

_LEGACY_MARKERS = ("protocol.json", "blend_report.json")
"""Files earlier versions wrote into a models directory: such a directory may be replaced."""

ModelBackend: TypeAlias = Literal["numpy", "tensorflow"]
"""``"numpy"``: embedding tables + numpy MLP (fast, no TensorFlow);
``"tensorflow"``: the SavedModels through :mod:`two_stage_rec.adapters.tensorflow`."""


RerankerChoice: TypeAlias = Literal["recommended", "none", "scoring", "blend", "ranker"]
"""A second stage by name; ``"recommended"`` is the one training measured best on held-out data."""

_MODEL_FILES: dict[ModelBackend, tuple[str, ...]] = {
    "numpy": (USER_EMBEDDINGS, ITEM_EMBEDDINGS, SCORING_MLP),
    "tensorflow": (USER_MODEL, ITEM_MODEL, SCORING_MODEL),
}


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What ``bundle.json`` says about a bundle.

    Attributes:
        feedback: ``"explicit"`` (ratings) or ``"implicit"``.
        recommended: the reranker training measured best on held-out data.
        dimension: width of the tower outputs.
        metric: the similarity the towers were trained for (``"dotproduct"``).
        dataset: where the training data came from (``"movielens-100k"``, a file name).
        split: how the data was split before training (``{"kind": "stratified",
            "test_fraction": 0.25, "seed": 42}``, a MovieLens protocol
            ``{"protocol": "u1"}``), or None when trained on everything.
        train_interactions: events trained on.
        train_fingerprint: :meth:`~two_stage_rec.datasets.Interactions.fingerprint` of them.
        users: users the user tower knows.
        items: items in the catalogue.
        saved_models: whether the TF SavedModels are included.
        files: every file and folder of the bundle.
        training: how the pipeline was fitted (held-out NDCG per reranker, blend weights, ...).
        created: ISO-8601 UTC time of writing.
        format_version: the bundle format.
    """

    feedback: Feedback
    recommended: RerankerName
    dimension: int
    metric: Metric = "dotproduct"
    dataset: str = ""
    split: dict[str, Any] | None = None
    train_interactions: int = 0
    train_fingerprint: str = ""
    users: int = 0
    items: int = 0
    saved_models: bool = False
    files: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``bundle.json`` holds)."""
        return {
            "format": "two_stage_rec.bundle",
            "format_version": self.format_version,
            "created": self.created,
            "feedback": self.feedback,
            "recommended": self.recommended,
            "dimension": self.dimension,
            "metric": self.metric,
            "dataset": self.dataset,
            "split": self.split,
            "train_interactions": self.train_interactions,
            "train_fingerprint": self.train_fingerprint,
            "users": self.users,
            "items": self.items,
            "saved_models": self.saved_models,
            "files": list(self.files),
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> Manifest:
        """Parse ``bundle.json``; raises :class:`ModelError` naming ``source`` when it is not one."""
        if data.get("format") != "two_stage_rec.bundle":
            raise ModelError(f"{source} is not a two_stage_rec bundle manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(f"{source} has bundle format {version}; this library reads {FORMAT_VERSION}")
        try:
            manifest = cls(
                feedback=data["feedback"],
                recommended=data["recommended"],
                dimension=int(data["dimension"]),
                metric=data.get("metric", "dotproduct"),
                dataset=str(data.get("dataset", "")),
                split=data.get("split"),
                train_interactions=int(data.get("train_interactions", 0)),
                train_fingerprint=str(data.get("train_fingerprint", "")),
                users=int(data.get("users", 0)),
                items=int(data.get("items", 0)),
                saved_models=bool(data.get("saved_models", False)),
                files=tuple(data.get("files", ())),
                training=dict(data.get("training", {})),
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source} lacks a field or has a malformed one: {exc}") from exc
        if manifest.feedback not in ("explicit", "implicit"):
            raise ModelError(f"{source}: feedback must be 'explicit' or 'implicit', got {manifest.feedback!r}")
        if manifest.recommended not in RERANKER_NAMES:
            raise ModelError(f"{source}: recommended must be one of {RERANKER_NAMES}, got {manifest.recommended!r}")
        return manifest


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """The model files of a directory, loaded (what :func:`load_models` returns).

    Attributes:
        user_embedder: user id -> float32 (n, d).
        item_embedder: item id -> float32 (n, d).
        reranker: the scoring model; scores (user, item) vector pairs, higher is better.
        report: the training report, or None when the directory has none.
        path: the directory loaded.
        backend: which files were used.
    """

    user_embedder: Embedder
    item_embedder: Embedder
    reranker: Reranker
    report: TrainingReport | None
    path: Path
    backend: ModelBackend


@dataclass(frozen=True, eq=False)
class Bundle:
    """Everything a served recommender needs, loaded (or assembled by hand from parts).

    Attributes:
        manifest: what the bundle says about itself.
        user_embedder: user id -> float32 (n, d); unknown users raise
            :class:`~two_stage_rec.errors.UnknownKeyError` (so the fallback answers them).
        item_embedder: item id -> float32 (n, d).
        catalogue: the items to index, with metadata.
        seen_items: user id -> items the user interacted with in training.
        popularity: item id -> training events, most popular first.
        scoring: the scoring model, or None.
        blend: the blend reranker (uses ``scoring``), or None.
        report: the training report, or None.
        path: the directory it was read from (None when built in memory).
        ranking_stage: the fitted learned ranking stage (``"ranker"``), or None.
        backend: which model files were used.
    """

    manifest: Manifest
    user_embedder: Embedder
    item_embedder: Embedder
    catalogue: Catalogue
    seen_items: Mapping[str, frozenset[str]]
    popularity: Mapping[str, int]
    scoring: Reranker | None = None
    blend: Reranker | None = None
    report: TrainingReport | None = None
    path: Path | None = None
    backend: ModelBackend = "numpy"
    ranking_stage: RankingStage | None = None

    def __repr__(self) -> str:
        where = f"{str(self.path)!r}" if self.path is not None else "in memory"
        return (
            f"Bundle({where}, {self.manifest.feedback}, items={len(self.catalogue)}, users={len(self.seen_items)}, "
            f"recommended={self.manifest.recommended!r}, backend={self.backend!r})"
        )

    @property
    def rerankers(self) -> dict[RerankerName, Reranker | None]:
        """Every second stage the bundle offers, by name.

        ``"none"`` maps to None, and so does ``"ranker"`` (when the bundle has
        :attr:`ranking_stage`): the ranking stage retrieves and ranks its own
        candidates rather than reranking the store's vector pairs, so it is
        not a :class:`~two_stage_rec.protocols.Reranker`.
        """
        offered: dict[RerankerName, Reranker | None] = {"none": None}
        if self.scoring is not None:
            offered["scoring"] = self.scoring
        if self.blend is not None:
            offered["blend"] = self.blend
        if self.ranking_stage is not None:
            offered["ranker"] = None
        return offered

    def resolve_reranker(self, choice: RerankerChoice = "recommended") -> tuple[RerankerName, Reranker | None]:
        """``(name, reranker)`` for a choice; ``"recommended"`` resolves to the manifest's.

        Raises:
            InvalidInputError: an unknown name, or one this bundle does not hold.
        """
        name = self.manifest.recommended if choice == "recommended" else choice
        offered = self.rerankers
        if name not in offered:
            known = ", ".join(["recommended", *offered])
            raise InvalidInputError(f"reranker {choice!r} is not in this bundle; choose one of {known}")
        return name, offered[name]


# ---------------------------------------------------------------- writing


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _write_seen(path: Path, seen: Mapping[str, Iterable[str]]) -> None:
    users = sorted(seen)
    lists = [sorted(seen[user]) for user in users]
    indptr = np.cumsum([0, *(len(items) for items in lists)]).astype(np.int64)
    flat = [item for items in lists for item in items]
    with open(path, "wb") as handle:
        np.savez(
            handle,
            users=np.array(users, dtype=np.str_),
            indptr=indptr,
            items=np.array(flat, dtype=np.str_) if flat else np.zeros(0, dtype="<U1"),
        )


def _read_seen(path: Path) -> dict[str, frozenset[str]]:
    with np.load(path, allow_pickle=False) as data:
        users = data["users"].tolist()
        indptr = data["indptr"]
        items = data["items"].tolist()
    return {user: frozenset(items[indptr[row] : indptr[row + 1]]) for row, user in enumerate(users)}


def _write_popularity(path: Path, counts: Mapping[str, int]) -> None:
    with open(path, "wb") as handle:
        np.savez(
            handle,
            items=np.array(list(counts), dtype=np.str_),
            counts=np.array(list(counts.values()), dtype=np.int64),
        )


def _read_popularity(path: Path) -> dict[str, int]:
    with np.load(path, allow_pickle=False) as data:
        return dict(zip(data["items"].tolist(), (int(c) for c in data["counts"]), strict=True))


def _write_ranking_stage(directory: Path, stage: RankingStage) -> list[str]:
    """Write a fitted ranking stage's files; returns their names."""
    assert stage.ranker is not None  # write_bundle checked
    state = stage.features.state
    stage.ranker.save(directory / RANKER)
    files = [RANKER, RANKER_HISTORY, RANKER_STAGE]
    weights = stage.item_item_weights
    if weights is not None:
        with open(directory / RANKER_ITEM_ITEM, "wb") as handle:
            np.savez(handle, weights=np.asarray(weights, dtype=np.float32))
        files.append(RANKER_ITEM_ITEM)
    users = sorted(state.history)
    indptr = np.cumsum([0, *(len(state.history[user]) for user in users)]).astype(np.int64)
    flat = [item for user in users for item in state.history[user]]
    with open(directory / RANKER_HISTORY, "wb") as handle:
        np.savez(
            handle,
            users=np.array(users, dtype=np.str_),
            indptr=indptr,
            items=np.array(flat, dtype=np.str_) if flat else np.zeros(0, dtype="<U1"),
        )
    depth = dict(stage.depth)
    with open(directory / RANKER_STAGE, "wb") as handle:
        np.savez(
            handle,
            items=np.array(state.item_ids, dtype=np.str_),
            counts=np.asarray(state.counts, dtype=np.float64),
            mean_rating=np.asarray(state.mean_rating, dtype=np.float64),
            depth_names=np.array(list(depth), dtype=np.str_),
            depth_values=np.array(list(depth.values()), dtype=np.int64),
            recent=np.int64(stage.features.recent),
        )
    return files


def _read_ranking_stage(
    root: Path,
    files: tuple[str, ...],
    *,
    user_embedder: Embedder,
    item_embedder: Embedder,
    scoring: Reranker | None,
    catalogue: Catalogue,
) -> RankingStage:
    ranker = FeatureRanker.load(root / RANKER)
    try:
        with np.load(root / RANKER_STAGE, allow_pickle=False) as data:
            items = tuple(data["items"].tolist())
            counts = np.asarray(data["counts"], dtype=np.float64)
            mean_rating = np.asarray(data["mean_rating"], dtype=np.float64)
            depth = dict(zip(data["depth_names"].tolist(), (int(d) for d in data["depth_values"]), strict=True))
            recent = int(data["recent"])
        with np.load(root / RANKER_HISTORY, allow_pickle=False) as data:
            users = data["users"].tolist()
            indptr = data["indptr"]
            flat = data["items"].tolist()
        weights = None
        if RANKER_ITEM_ITEM in files:
            with np.load(root / RANKER_ITEM_ITEM, allow_pickle=False) as data:
                weights = np.asarray(data["weights"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"bundle {root} has a malformed ranking stage file: {exc}") from exc
    history = {user: tuple(flat[indptr[row] : indptr[row + 1]]) for row, user in enumerate(users)}
    state = FeatureState(items, counts, mean_rating, history)
    try:
        return RankingStage.restore(
            state,
            user_embedder=user_embedder,
            item_embedder=item_embedder,
            item_item_weights=weights,
            depth=depth,
            ranker=ranker,
            scoring=scoring,
            catalogue=catalogue,
            recent=recent,
        )
    except InvalidInputError as exc:
        raise ModelError(f"bundle {root} has an inconsistent ranking stage: {exc}") from exc


def _replaceable(target: Path) -> bool:
    """Whether an existing directory may be replaced: empty, a bundle, or an older models directory."""
    if not target.exists():
        return True
    if not target.is_dir():
        return False
    names = {entry.name for entry in target.iterdir()}
    return not names or MANIFEST in names or bool(names & {USER_EMBEDDINGS, REPORT, *_LEGACY_MARKERS})


def write_model_files(
    directory: Path,
    *,
    user_keys: list[str],
    user_vectors: np.ndarray[Any, np.dtype[np.float32]],
    item_keys: list[str],
    item_vectors: np.ndarray[Any, np.dtype[np.float32]],
    scoring: MLPReranker | None,
    saved_models: bool,
    user_unknown: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    item_unknown: np.ndarray[Any, np.dtype[np.float32]] | None = None,
) -> list[str]:
    """Write the towers' tables, the scoring MLP and (when asked) the three SavedModels into ``directory``.

    The model files of a bundle, and all of a models-only directory
    (:func:`~two_stage_rec.training.export_models`). Returns the names written.
    """
    files = [USER_EMBEDDINGS, ITEM_EMBEDDINGS]
    TableEmbedder(user_keys, user_vectors).save(directory / USER_EMBEDDINGS)
    TableEmbedder(item_keys, item_vectors).save(directory / ITEM_EMBEDDINGS)
    if scoring is not None:
        scoring.save(directory / SCORING_MLP)
        files.append(SCORING_MLP)
    if saved_models:
        if scoring is None:
            raise InvalidInputError("SavedModels need the scoring model")
        from two_stage_rec.training.savedmodel import keyed_vectors_module, save_module, scoring_module

        zeros = np.zeros(user_vectors.shape[1], dtype=np.float32)
        save_module(
            keyed_vectors_module(user_keys, user_vectors, zeros if user_unknown is None else user_unknown),
            directory / USER_MODEL,
        )
        save_module(
            keyed_vectors_module(item_keys, item_vectors, zeros if item_unknown is None else item_unknown),
            directory / ITEM_MODEL,
        )
        save_module(scoring_module(scoring), directory / SCORING_MODEL)
        files += [USER_MODEL, ITEM_MODEL, SCORING_MODEL]
    return files


def write_bundle(
    path: str | os.PathLike[str],
    *,
    user_keys: list[str],
    user_vectors: np.ndarray[Any, np.dtype[np.float32]],
    item_keys: list[str],
    item_vectors: np.ndarray[Any, np.dtype[np.float32]],
    catalogue: Catalogue,
    train: Interactions,
    recommended: RerankerName,
    scoring: MLPReranker | None = None,
    blend: BlendReranker | None = None,
    ranking_stage: RankingStage | None = None,
    report: TrainingReport | None = None,
    dataset: str = "",
    split: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    saved_models: bool = False,
    user_unknown: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    item_unknown: np.ndarray[Any, np.dtype[np.float32]] | None = None,
) -> Path:
    """Write a complete bundle to ``path``, replacing any bundle there atomically.

    Most callers use :meth:`~two_stage_rec.training.PipelineTraining.write_bundle`,
    which fills these from a training run.

    Args:
        path: the bundle directory (created; an existing bundle is replaced).
        user_keys: user ids, row order of ``user_vectors``.
        user_vectors: float32 (n_users, d), the user tower's output per user.
        item_keys: item ids, row order of ``item_vectors``.
        item_vectors: float32 (n_items, d).
        catalogue: the items to serve, with metadata (every one needs a vector).
        train: the events the models were trained on (seen items, popularity,
            fingerprint).
        recommended: the second stage to serve by default.
        scoring: the scoring model; needed for ``"scoring"`` and for a blend
            with a non-zero scoring weight.
        blend: the blend reranker.
        ranking_stage: the fitted learned ranking stage (``"ranker"``),
            built for these towers and ``train``
            (:meth:`~two_stage_rec.rerankers.ranking_stage.RankingStage.with_ranker`).
        report: the training report.
        dataset: where the data came from, for people reading the manifest.
        split: how train was carved from the data, or None.
        training: how the pipeline was fitted (held-out measurements).
        saved_models: also write the three TF SavedModels (needs ``tensorflow``
            and ``scoring``).
        user_unknown: float32 (d,) the tower's out-of-vocabulary output, for the
            SavedModel (zeros when None).
        item_unknown: likewise for items.

    Returns:
        The bundle directory.

    Raises:
        InvalidInputError: the parts disagree (dimensions, a catalogue item
            without a vector, a recommended reranker that is unknown or
            missing, a blend with a scoring weight but no scoring model);
            nothing is written.
        PersistenceError: ``path`` exists and is not a bundle (it is never
            replaced), or the directory cannot be written.
    """
    target = Path(path)
    dimension = int(user_vectors.shape[1])
    if item_vectors.shape[1] != dimension:
        raise DimensionMismatchError(dimension, int(item_vectors.shape[1]), "item vectors")
    if len(user_keys) != len(user_vectors) or len(item_keys) != len(item_vectors):
        raise InvalidInputError("keys and vectors differ in length")
    known_items = set(item_keys)
    missing = [item_id for item_id in catalogue.item_ids if item_id not in known_items]
    if missing:
        raise InvalidInputError(f"{len(missing)} catalogue items have no item vector, e.g. {missing[:5]}")
    # Everything read_bundle would refuse is refused here, before a bundle that cannot be served replaces one.
    if recommended not in RERANKER_NAMES:
        raise InvalidInputError(f"recommended must be one of {', '.join(RERANKER_NAMES)}, got {recommended!r}")
    if recommended == "scoring" and scoring is None:
        raise InvalidInputError("recommended='scoring' needs the scoring model")
    if recommended == "blend" and blend is None:
        raise InvalidInputError("recommended='blend' needs the blend reranker")
    if recommended == "ranker" and ranking_stage is None:
        raise InvalidInputError("recommended='ranker' needs the ranking stage")
    if ranking_stage is not None:
        if ranking_stage.ranker is None:
            raise InvalidInputError("the ranking stage has no ranker; fit one with fit_on_holdout")
        unknown = [item for item in ranking_stage.features.item_ids if item not in known_items]
        if unknown:
            raise InvalidInputError(f"{len(unknown)} ranking stage items have no item vector, e.g. {unknown[:5]}")
    if saved_models and scoring is None:
        raise InvalidInputError("saved_models=True needs the scoring model")
    if scoring is not None and (scoring.user_dimension, scoring.item_dimension) != (dimension, dimension):
        raise DimensionMismatchError(
            scoring.user_dimension + scoring.item_dimension, 2 * dimension, "user + item vectors for the scoring model"
        )
    if blend is not None:
        if not isinstance(blend, BlendReranker):
            raise InvalidInputError(f"blend must be a BlendReranker, got {type(blend).__name__}")
        if blend.weights.rating != 0.0 and scoring is None:
            raise InvalidInputError("the blend has a scoring weight, so the bundle needs the scoring model")
        if blend.weights.item is not None and blend.weights.item.shape[0] != dimension:
            raise DimensionMismatchError(dimension, int(blend.weights.item.shape[0]), "the blend's item prior")
    if not _replaceable(target):
        raise PersistenceError(
            f"refusing to replace {target}: it exists and is not a models bundle (no {MANIFEST}); choose another path"
        )
    try:
        with atomic_directory(target) as staging:
            files = write_model_files(
                staging,
                user_keys=user_keys,
                user_vectors=user_vectors,
                item_keys=item_keys,
                item_vectors=item_vectors,
                scoring=scoring,
                saved_models=saved_models,
                user_unknown=user_unknown,
                item_unknown=item_unknown,
            )
            files += [CATALOGUE, SEEN_ITEMS, POPULARITY]
            catalogue.save(staging / CATALOGUE)
            _write_seen(staging / SEEN_ITEMS, train.items_by_user())
            _write_popularity(staging / POPULARITY, train.item_counts())
            if blend is not None:
                blend.save(staging / BLEND)
                files.append(BLEND)
            if ranking_stage is not None:
                files += _write_ranking_stage(staging, ranking_stage)
            if report is not None:
                report.save(staging / REPORT)
                files.append(REPORT)
            manifest = Manifest(
                feedback="explicit" if train.has_ratings else "implicit",
                recommended=recommended,
                dimension=dimension,
                metric=blend.metric if blend is not None else "dotproduct",
                dataset=dataset,
                split=dict(split) if split is not None else None,
                train_interactions=len(train),
                train_fingerprint=train.fingerprint(),
                users=len(user_keys),
                items=len(catalogue),
                saved_models=saved_models,
                files=tuple(sorted(files)),
                training=dict(training or {}),
                created=_utc_now(),
            )
            # The manifest goes last: a staging directory without one is never a bundle.
            (staging / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise PersistenceError(f"cannot write the bundle to {target}: {exc}") from exc
    return target


# ---------------------------------------------------------------- reading


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a bundle manifest (a complete bundle, since it is written last)."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read only ``bundle.json`` (cheap: no model is loaded).

    Raises:
        ModelError: ``path`` is not a bundle (the message says what it is instead).
    """
    root = Path(path)
    source = root / MANIFEST
    if not root.is_dir():
        raise ModelError(f"models bundle {root} does not exist; train one with `two-stage-rec train --out {root}`")
    if not source.is_file():
        legacy = (root / USER_EMBEDDINGS).is_file() or (root / USER_MODEL).is_dir()
        hint = (
            "it holds models from an earlier version or made elsewhere: retrain it, or load the models with "
            "two_stage_rec.bundle.load_models and build a Bundle with your catalogue"
            if legacy
            else "it holds no models"
        )
        raise ModelError(f"{root} is not a models bundle (no {MANIFEST}): {hint}")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{source} is not a JSON object")
    return Manifest.from_dict(data, source=str(source))


def read_bundle(path: str | os.PathLike[str], *, backend: ModelBackend = "numpy") -> Bundle:
    """Load a bundle written by :func:`write_bundle`.

    Args:
        path: the bundle directory.
        backend: ``"numpy"`` (default: tables and numpy MLP, no TensorFlow) or
            ``"tensorflow"`` (the SavedModels; the bundle must include them).
            With either, a user the towers were not trained on is unknown
            (:class:`~two_stage_rec.errors.UnknownKeyError`) rather than
            embedded as the out-of-vocabulary vector.

    Raises:
        ModelError: not a bundle, a listed file is missing, or a file is malformed.
        DimensionMismatchError: the parts disagree.
        MissingDependencyError: ``backend="tensorflow"`` without the extra.
    """
    root = Path(path)
    manifest = read_manifest(root)
    absent = [name for name in manifest.files if not (root / name).exists()]
    if absent:
        raise ModelError(f"bundle {root} is incomplete: missing {', '.join(absent)}")
    if backend == "tensorflow" and not manifest.saved_models:
        raise ModelError(
            f"bundle {root} has no SavedModels; serve it with the numpy backend or retrain with --saved-models"
        )
    models = load_models(root, backend=backend) if SCORING_MLP in manifest.files else None
    user_table = TableEmbedder.load(root / USER_EMBEDDINGS)
    user_embedder: Embedder
    item_embedder: Embedder
    if models is not None:
        user_embedder, item_embedder, scoring = models.user_embedder, models.item_embedder, models.reranker
    else:
        user_embedder, item_embedder, scoring = user_table, TableEmbedder.load(root / ITEM_EMBEDDINGS), None
    if backend == "tensorflow":
        user_embedder = KnownKeysEmbedder(user_embedder, user_table.keys)
    if user_embedder.dimension != manifest.dimension:
        raise DimensionMismatchError(manifest.dimension, user_embedder.dimension, f"user embeddings in {root}")
    blend = BlendReranker.load(root / BLEND, rating_model=scoring) if BLEND in manifest.files else None
    try:
        catalogue = Catalogue.load(root / CATALOGUE)
        seen = _read_seen(root / SEEN_ITEMS)
        popularity = _read_popularity(root / POPULARITY)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"bundle {root} has a malformed data file: {exc}") from exc
    report = TrainingReport.load(root / REPORT) if REPORT in manifest.files else None
    ranking_stage = (
        _read_ranking_stage(
            root,
            manifest.files,
            user_embedder=user_table,
            item_embedder=item_embedder if backend == "numpy" else TableEmbedder.load(root / ITEM_EMBEDDINGS),
            scoring=scoring,
            catalogue=catalogue,
        )
        if RANKER in manifest.files
        else None
    )
    if manifest.recommended == "ranker" and ranking_stage is None:
        raise ModelError(f"bundle {root} recommends the ranking stage but holds none")
    return Bundle(
        manifest=manifest,
        user_embedder=user_embedder,
        item_embedder=item_embedder,
        catalogue=catalogue,
        seen_items=seen,
        popularity=popularity,
        scoring=scoring,
        blend=blend,
        report=report,
        path=root,
        backend=backend,
        ranking_stage=ranking_stage,
    )


def load_models(path: str | os.PathLike[str], backend: ModelBackend = "numpy") -> LoadedModels:
    """Load only the model files of a directory: a bundle, or models made elsewhere.

    For SavedModels of the notebook's shape made elsewhere (``user_model/``,
    ``item_model/``, ``scoring_model/``), use ``backend="tensorflow"``.

    Args:
        path: the directory.
        backend: ``"numpy"`` reads ``user_embeddings.npz``, ``item_embeddings.npz``
            and ``scoring_mlp.npz`` (no TensorFlow import); ``"tensorflow"``
            reads the three SavedModels.

    Returns:
        A :class:`LoadedModels`; numpy embedders raise for unknown ids (pair
        them with a cold-start fallback).

    Raises:
        ModelError: the directory does not exist, lacks a file the backend
            needs (all missing names are listed), or a file is malformed.
        DimensionMismatchError: user, item and scoring dimensions disagree.
        MissingDependencyError: backend ``"tensorflow"`` without the extra.
    """
    root = Path(path)
    if backend not in _MODEL_FILES:
        raise InvalidInputError(f"backend must be 'numpy' or 'tensorflow', got {backend!r}")
    if not root.is_dir():
        raise ModelError(f"models directory {root} does not exist")
    missing = [name for name in _MODEL_FILES[backend] if not (root / name).exists()]
    if missing:
        raise ModelError(f"models directory {root} is incomplete for backend {backend!r}: missing {', '.join(missing)}")
    user_embedder: Embedder
    item_embedder: Embedder
    reranker: Reranker
    if backend == "numpy":
        user_embedder = TableEmbedder.load(root / USER_EMBEDDINGS)
        item_embedder = TableEmbedder.load(root / ITEM_EMBEDDINGS)
        mlp = MLPReranker.load(root / SCORING_MLP)
        if (mlp.user_dimension, mlp.item_dimension) != (user_embedder.dimension, item_embedder.dimension):
            raise DimensionMismatchError(
                mlp.user_dimension + mlp.item_dimension,
                user_embedder.dimension + item_embedder.dimension,
                "user + item embeddings for the scoring MLP",
            )
        reranker = mlp
    else:
        from two_stage_rec.adapters.tensorflow import SavedModelEmbedder, SavedModelReranker

        user_embedder = SavedModelEmbedder(root / USER_MODEL)
        item_embedder = SavedModelEmbedder(root / ITEM_MODEL)
        reranker = SavedModelReranker(root / SCORING_MODEL)
    if user_embedder.dimension != item_embedder.dimension:
        raise DimensionMismatchError(user_embedder.dimension, item_embedder.dimension, "item embeddings")
    report = TrainingReport.load(root / REPORT) if (root / REPORT).is_file() else None
    return LoadedModels(
        user_embedder=user_embedder,
        item_embedder=item_embedder,
        reranker=reranker,
        report=report,
        path=root,
        backend=backend,
    )
