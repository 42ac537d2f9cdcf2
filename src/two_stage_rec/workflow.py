"""Data in, bundle out, numbers back: the train and evaluate workflow for any data set.

What the command line's ``train`` and ``evaluate`` do, as functions::

    from two_stage_rec.datasets import read_catalogue, read_interactions
    from two_stage_rec.workflow import evaluate_bundle, train_bundle

    catalogue = read_catalogue("items.csv")
    log = read_interactions("events.csv", catalogue=catalogue)
    trained = train_bundle(log, catalogue, "models/")   # holds out each user's latest 20%, measures, writes
    print(trained.held_out.summary())
    again = evaluate_bundle("models/", log)             # the same split, recreated and checked

A bundle records the split it was trained on and a fingerprint of its
training events. :func:`evaluate_bundle` recreates the split from the data it
is given and refuses to measure when the training part differs from what the
models saw: held-out numbers are only honest on events the models never saw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from two_stage_rec.bundle import Bundle, Manifest, ModelBackend, read_bundle, read_manifest, write_bundle
from two_stage_rec.datasets.catalogue import Catalogue
from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.datasets.splits import SplitSpec, canonical_split, split
from two_stage_rec.errors import InvalidInputError, ModelError
from two_stage_rec.evaluation.movielens_protocols import MovieLensProtocol, protocol_spec, split_for_protocol
from two_stage_rec.protocols import VectorStore
from two_stage_rec.types import RerankerName

if TYPE_CHECKING:
    from two_stage_rec.evaluation.result import EvaluationResult
    from two_stage_rec.training.config import TrainingConfig

__all__ = [
    "TrainedBundle",
    "default_split",
    "ensure_movielens_bundle",
    "evaluate_bundle",
    "evaluate_split",
    "movielens_split",
    "recreate_split",
    "train_bundle",
    "train_movielens_bundle",
]


@dataclass(frozen=True, eq=False)
class TrainedBundle:
    """What :func:`train_bundle` returns.

    Attributes:
        path: the bundle directory written.
        manifest: its manifest (recommended reranker, split, sizes).
        held_out: the evaluation on the held-out part of the split (None when
            trained on everything).
        train: the events trained on.
        test: the held-out events (None when trained on everything).
    """

    path: Path
    manifest: Manifest
    held_out: EvaluationResult | None
    train: Interactions
    test: Interactions | None


def default_split(interactions: Interactions) -> SplitSpec:
    """The realistic hold-out: each user's latest 20% when there are timestamps, else a random 20% per user."""
    if interactions.timestamps is not None:
        return SplitSpec("temporal", 0.2)
    return SplitSpec("stratified", 0.2, seed=42)


def recreate_split(
    interactions: Interactions, record: Mapping[str, Any], *, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Interactions, Interactions]:
    """``(train, test)`` as a bundle's manifest recorded it (``Manifest.split``).

    Raises:
        ModelError: the record names an unknown kind.
    """
    kind = record.get("kind")
    if kind == "canonical":
        return canonical_split(record["name"], data_dir, progress=False)
    try:
        spec = SplitSpec(str(kind), float(record["test_fraction"]), int(record.get("seed", 42)))  # type: ignore[arg-type]  # checked by SplitSpec
    except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
        raise ModelError(f"the bundle records an unknown split {dict(record)!r}: {exc}") from exc
    return split(interactions, spec)


def evaluate_split(
    bundle: Bundle,
    train: Interactions,
    test: Interactions,
    *,
    store: str | VectorStore = "memory",
    k: int = 10,
    candidates: int = 50,
    n_resamples: int = 2_000,
    seed: int = 0,
    diversity_field: str | None = None,
) -> EvaluationResult:
    """Measure every second stage of ``bundle`` on ``test``: retrieval only, each reranker, most popular.

    ``train`` gives the seen items each user's recommendations leave out and
    the popularity baseline. RMSE of the scoring model is reported when both
    the bundle and ``test`` are explicit. ``diversity_field`` (e.g.
    ``"genres"``) adds the distinct values of that metadata field in each top k.
    """
    from two_stage_rec.assembly import assemble, bundle_rerankers, bundle_stages
    from two_stage_rec.evaluation import evaluate

    # The recommender's own reranker is only what rating errors are measured on; every
    # ranking comes from ``rerankers`` below, on the same candidates.
    rating_model: RerankerName = "scoring" if bundle.scoring is not None else "none"
    with assemble(bundle, store=store, reranker=rating_model, fallback=False) as served:
        return evaluate(
            served.recommender,
            train,
            test,
            k=k,
            cutoffs=sorted({1, 5, k, 20}),
            candidates=max(candidates, 20, k),
            rerankers=bundle_rerankers(bundle),
            stages=bundle_stages(bundle),
            measure_rating_errors=bundle.scoring is not None
            and bundle.manifest.feedback == "explicit"
            and test.has_ratings,
            n_resamples=n_resamples,
            seed=seed,
            diversity_field=diversity_field,
        )


def _summary(result: EvaluationResult) -> dict[str, Any]:
    """The headline numbers of an evaluation, for the bundle manifest."""
    k = result.k
    return {
        "k": k,
        "users": result.n_users,
        **{
            name: {f"ndcg@{k}": ranker.metrics[f"ndcg@{k}"], f"recall@{k}": ranker.metrics[f"recall@{k}"]}
            for name, ranker in result.rankers.items()
        },
    }


def _train_and_write(
    train: Interactions,
    test: Interactions | None,
    catalogue: Catalogue,
    out: str | os.PathLike[str],
    *,
    split_record: Mapping[str, Any] | None,
    dataset: str,
    config: TrainingConfig | None,
    saved_models: bool,
    measure: bool,
    k: int,
    candidates: int,
    progress: bool,
) -> TrainedBundle:
    from two_stage_rec.training.blend import train_pipeline

    training = train_pipeline(
        train,
        test=test,
        items=list(catalogue.item_ids),
        config=config,
        candidates=candidates,
        progress=progress,
        catalogue=catalogue,
    )
    models = training.models
    parts: dict[str, Any] = {
        "user_keys": models.user_keys,
        "user_vectors": models.user_vectors,
        "item_keys": models.item_keys,
        "item_vectors": models.item_vectors,
        "user_unknown": models.user_unknown,
        "item_unknown": models.item_unknown,
        "scoring": models.reranker,
        "blend": training.blend,
        "ranking_stage": training.ranking_stage,
    }
    report = dict(training.report)
    held_out = None
    if measure and test is not None:
        # Measured before writing, so the manifest carries the held-out numbers.
        from two_stage_rec.embedders.table import TableEmbedder

        in_memory = Bundle(
            manifest=Manifest(
                feedback="explicit" if train.has_ratings else "implicit",
                recommended=training.recommended,
                dimension=models.dimension,
            ),
            user_embedder=TableEmbedder(models.user_keys, models.user_vectors),
            item_embedder=TableEmbedder(models.item_keys, models.item_vectors),
            catalogue=catalogue,
            seen_items={user: frozenset(items) for user, items in train.items_by_user().items()},
            popularity=train.item_counts(),
            scoring=models.reranker,
            blend=training.blend,
            ranking_stage=training.ranking_stage,
        )
        held_out = evaluate_split(in_memory, train, test, k=k, candidates=candidates)
        report["held_out"] = _summary(held_out)
    path = write_bundle(
        out,
        catalogue=catalogue,
        train=train,
        recommended=training.recommended,
        report=models.report,
        dataset=dataset,
        split=split_record,
        training=report,
        saved_models=saved_models,
        **parts,
    )
    return TrainedBundle(path=path, manifest=read_manifest(path), held_out=held_out, train=train, test=test)


def train_bundle(
    interactions: Interactions,
    catalogue: Catalogue,
    out: str | os.PathLike[str],
    *,
    split_spec: SplitSpec | Literal["auto"] | None = "auto",
    dataset: str = "",
    config: TrainingConfig | None = None,
    saved_models: bool = False,
    measure: bool = True,
    k: int = 10,
    candidates: int = 50,
    progress: bool = True,
) -> TrainedBundle:
    """Train the recommended pipeline on any interaction log and write a bundle.

    Holds out a split (by default :func:`default_split`), trains the towers,
    the scoring model (rating model for explicit feedback, relevance model for
    implicit) and the blend on the rest, picks the reranker that measured best
    on a validation part of the training events, measures everything on the
    held-out part, and writes the bundle (recording the split, so
    :func:`evaluate_bundle` can recreate it).

    Args:
        interactions: the events; every item must be in ``catalogue``.
        catalogue: the items to serve, with metadata.
        out: the bundle directory (an existing bundle there is replaced atomically).
        split_spec: the hold-out; ``"auto"`` = :func:`default_split`; None
            trains on everything (for production; nothing is measured).
        dataset: a name for the data, recorded in the manifest.
        config: training settings; None = the measured-best pipeline settings
            for the kind of feedback.
        saved_models: also write TF SavedModels of the notebook's shape.
        measure: evaluate on the held-out part.
        k: cut-off of the held-out metrics.
        candidates: candidates per user, as serving retrieves them.
        progress: progress bars.

    Raises:
        InvalidInputError: an interaction names an item outside the catalogue,
            or the log is too small to split.
        MissingDependencyError: training needs the ``tensorflow`` extra.
    """
    interactions.restrict_items(catalogue.item_ids, unknown="raise")
    if split_spec == "auto":
        split_spec = default_split(interactions)
    if split_spec is None:
        train, test, record = interactions, None, None
    else:
        train, test = split(interactions, split_spec)
        record = split_spec.to_dict()
    return _train_and_write(
        train,
        test,
        catalogue,
        out,
        split_record=record,
        dataset=dataset,
        config=config,
        saved_models=saved_models,
        measure=measure,
        k=k,
        candidates=candidates,
        progress=progress,
    )


def movielens_split(
    protocol: MovieLensProtocol, data_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> tuple[Interactions, Interactions, dict[str, Any]]:
    """``(train, test, split_record)`` of a MovieLens-100K protocol.

    The protocols are named in :mod:`two_stage_rec.evaluation.movielens_protocols`.
    """
    from two_stage_rec.datasets.movielens import locate_movielens_100k

    record = protocol_spec(protocol).split
    folder = locate_movielens_100k(data_dir, progress=progress)
    train, test = split_for_protocol(protocol, str(folder), progress=progress)
    return train, test, dict(record, protocol=protocol)


def train_movielens_bundle(
    out: str | os.PathLike[str],
    *,
    protocol: MovieLensProtocol = "random",
    implicit: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    config: TrainingConfig | None = None,
    saved_models: bool = False,
    measure: bool = True,
    progress: bool = True,
) -> TrainedBundle:
    """:func:`train_bundle` on MovieLens-100K with one of its named protocols.

    Args:
        out: the bundle directory.
        protocol: the split (default ``"random"``, the notebook's 80/20).
        implicit: drop the ratings (train and measure as implicit feedback).
        data_dir: an ml-100k folder (default: ``$TWO_STAGE_REC_DATA``, the cache, or a verified download).
        config: training settings (None: the measured-best pipeline).
        saved_models: also write TF SavedModels.
        measure: evaluate on the protocol's test split.
        progress: progress bars.
    """
    from two_stage_rec.datasets.movielens import movielens_100k

    data = movielens_100k(data_dir, progress=progress)
    train, test, record = movielens_split(protocol, data.path, progress=progress)
    if implicit:
        train, test = train.without_ratings(), test.without_ratings()
        record = dict(record, implicit=True)
    return _train_and_write(
        train,
        test,
        data.catalogue,
        out,
        split_record=record,
        dataset="movielens-100k",
        config=config,
        saved_models=saved_models,
        measure=measure,
        k=10,
        candidates=50,
        progress=progress,
    )


def evaluate_bundle(
    bundle: str | os.PathLike[str] | Bundle,
    interactions: Interactions | None = None,
    *,
    test: Interactions | None = None,
    store: str | VectorStore = "faiss",
    backend: ModelBackend = "numpy",
    data_dir: str | os.PathLike[str] | None = None,
    k: int = 10,
    candidates: int = 50,
    n_resamples: int = 10_000,
    seed: int = 0,
    diversity_field: str | None = None,
) -> EvaluationResult:
    """Evaluate a bundle on the held-out part of the data it was trained on, or on a separate test log.

    Args:
        bundle: the bundle (or its path).
        interactions: the whole log the bundle's split was taken from (the
            split is recreated from the manifest and its training part checked
            against the bundle's fingerprint). None for MovieLens bundles
            (loaded from ``data_dir``).
        test: instead, a log of events the bundle never saw; the bundle's own
            seen items are then excluded.
        store: where to index the catalogue for the evaluation.
        backend: model files to use.
        data_dir: ml-100k folder for MovieLens bundles.
        k: main cut-off.
        candidates: candidates per user.
        n_resamples: bootstrap resamples of the paired comparisons.
        seed: bootstrap seed.
        diversity_field: also report the distinct values of this metadata
            field (e.g. ``"genres"``) in each ranking's top k.

    Raises:
        ModelError: the bundle was trained on everything and no ``test`` is
            given, or the recreated training part is not what the bundle was
            trained on (its numbers would be inflated).
    """
    loaded = bundle if isinstance(bundle, Bundle) else read_bundle(bundle, backend=backend)
    manifest = loaded.manifest
    if test is not None:
        train = _seen_as_interactions(loaded)
        if not test.has_ratings and train.has_ratings:
            train = train.without_ratings()
    else:
        record = manifest.split
        if record is None:
            raise ModelError(
                "this bundle was trained on all its data, so no held-out part exists; pass a separate test log "
                "(--test FILE) of events it never saw"
            )
        if interactions is None:
            if manifest.dataset != "movielens-100k":
                raise InvalidInputError("pass the interactions the bundle's split was taken from")
            from two_stage_rec.datasets.movielens import movielens_100k

            data = movielens_100k(data_dir, progress=False)
            interactions, data_dir = data.interactions, data.path
        train, test = recreate_split(interactions, record, data_dir=data_dir)
        if record.get("implicit") or manifest.feedback == "implicit":
            train, test = train.without_ratings(), test.without_ratings()
        if train.fingerprint() != manifest.train_fingerprint:
            raise ModelError(
                f"these models were not trained on the training part of this data (split {dict(record)}; "
                f"{len(train):,} training events here, {manifest.train_interactions:,} in the bundle): the held-out "
                "part may overlap what they saw, so the numbers would be inflated. Evaluate with the data the "
                "bundle was trained from, or retrain on this data."
            )
    return evaluate_split(
        loaded,
        train,
        test,
        store=store,
        k=k,
        candidates=candidates,
        n_resamples=n_resamples,
        seed=seed,
        diversity_field=diversity_field,
    )


def _seen_as_interactions(bundle: Bundle) -> Interactions:
    """The bundle's seen items as an implicit log (for exclusion and the popularity baseline)."""
    users: list[str] = []
    items: list[str] = []
    for user, seen in bundle.seen_items.items():
        users.extend([user] * len(seen))
        items.extend(sorted(seen))
    return Interactions.from_arrays(user_ids=users, item_ids=items)


def ensure_movielens_bundle(
    out: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    saved_models: bool = False,
    progress: bool = True,
) -> bool:
    """Train the notebook's MovieLens-100K bundle (random 80/20 split) into ``out`` unless a bundle is there.

    Returns:
        True when a bundle was trained now, False when one was already there.

    Raises:
        MissingDependencyError: training needs the ``tensorflow`` extra (checked
            before any data is loaded, without importing TensorFlow).
    """
    import importlib.util

    from two_stage_rec.bundle import is_bundle
    from two_stage_rec.errors import MissingDependencyError

    if is_bundle(out):
        return False
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError("tensorflow", "tensorflow")
    train_movielens_bundle(out, protocol="random", data_dir=data_dir, saved_models=saved_models, progress=progress)
    return True
