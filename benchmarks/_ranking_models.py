"""Models for benchmarks/ranking_quality.py, trained once per (protocol, feedback, seed) and cached.

Per run: the protocol's training split is carved per user into A (90%) and
V (10%, seed 7: the split :func:`train_pipeline` makes); "first" models are
trained on A (they produce the features the ranker is fitted on, on V), and
:func:`train_pipeline` trains the final models on all of the training split,
with its blend and recommended second stage (the baselines). The cache holds
numpy tables only (towers, scoring MLP, blend weights), nothing pickled.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from two_stage_rec.datasets import Interactions
from two_stage_rec.datasets.splits import per_user_split
from two_stage_rec.embedders.table import TableEmbedder
from two_stage_rec.evaluation.movielens_protocols import split_for_protocol
from two_stage_rec.rerankers.blend import BlendReranker
from two_stage_rec.rerankers.mlp import MLPReranker

CATALOGUE = [str(i) for i in range(1, 1683)]
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 7  # train_pipeline's


@dataclass(frozen=True)
class Towers:
    user_keys: list[str]
    user_vectors: np.ndarray
    item_keys: list[str]
    item_vectors: np.ndarray
    scoring: MLPReranker

    def user_embedder(self) -> TableEmbedder:
        return TableEmbedder(self.user_keys, self.user_vectors)

    def item_embedder(self) -> TableEmbedder:
        return TableEmbedder(self.item_keys, self.item_vectors)


@dataclass(frozen=True)
class Prepared:
    train: Interactions
    test: Interactions
    fit_part: Interactions  # A
    holdout: Interactions  # V
    first: Towers  # trained on A
    final: Towers  # trained on all of train (train_pipeline)
    blend: BlendReranker
    recommended: str
    pipeline_report: dict[str, Any]
    training_wall_s: float


def logs(protocol: str, feedback: str) -> tuple[Interactions, Interactions]:
    train, test = split_for_protocol(protocol, progress=False)  # type: ignore[arg-type]
    if feedback == "implicit":
        return train.without_ratings(), test.without_ratings()
    return train, test


def _save(towers: Towers, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "towers.npz",
        user_keys=np.array(towers.user_keys),
        user_vectors=towers.user_vectors,
        item_keys=np.array(towers.item_keys),
        item_vectors=towers.item_vectors,
    )
    towers.scoring.save(folder / "scoring.npz")


def _load(folder: Path) -> Towers:
    with np.load(folder / "towers.npz", allow_pickle=False) as data:
        return Towers(
            user_keys=[str(k) for k in data["user_keys"]],
            user_vectors=np.asarray(data["user_vectors"], np.float32),
            item_keys=[str(k) for k in data["item_keys"]],
            item_vectors=np.asarray(data["item_vectors"], np.float32),
            scoring=MLPReranker.load(folder / "scoring.npz"),
        )


def prepare(protocol: str, feedback: str, seed: int, cache: Path | None) -> Prepared:
    """Splits and models of one run, from ``cache`` when present there."""
    train, test = logs(protocol, feedback)
    fit_part, holdout = per_user_split(train, HOLDOUT_FRACTION, seed=HOLDOUT_SEED)
    folder = None if cache is None else cache / f"{protocol}-{feedback}-{seed}"
    if folder is not None and (folder / "done.json").exists():
        meta = json.loads((folder / "done.json").read_text())
        final = _load(folder / "final")
        return Prepared(
            train=train,
            test=test,
            fit_part=fit_part,
            holdout=holdout,
            first=_load(folder / "first"),
            final=final,
            blend=BlendReranker.load(folder / "blend.npz", rating_model=final.scoring),
            recommended=meta["recommended"],
            pipeline_report=meta["pipeline_report"],
            training_wall_s=meta["training_wall_s"],
        )
    from two_stage_rec.training import train_models
    from two_stage_rec.training.blend import PIPELINE_CONFIG, train_pipeline

    config = dataclasses.replace(PIPELINE_CONFIG, seed=seed)
    started = time.perf_counter()
    first_models = train_models(fit_part, items=CATALOGUE, config=config, progress=False)
    first = Towers(
        first_models.user_keys,
        first_models.user_vectors,
        first_models.item_keys,
        first_models.item_vectors,
        first_models.reranker,
    )
    trained = train_pipeline(train, items=CATALOGUE, config=config, progress=False)
    m = trained.models
    final = Towers(m.user_keys, m.user_vectors, m.item_keys, m.item_vectors, m.reranker)
    wall = time.perf_counter() - started
    report = json.loads(json.dumps(trained.report, default=str))
    if folder is not None:
        _save(first, folder / "first")
        _save(final, folder / "final")
        trained.blend.save(folder / "blend.npz")
        (folder / "done.json").write_text(
            json.dumps({"recommended": trained.recommended, "pipeline_report": report, "training_wall_s": wall})
        )
    return Prepared(
        train=train,
        test=test,
        fit_part=fit_part,
        holdout=holdout,
        first=first,
        final=final,
        blend=trained.blend,
        recommended=trained.recommended,
        pipeline_report=report,
        training_wall_s=wall,
    )


if __name__ == "__main__":
    import sys

    protocol, feedback = sys.argv[1], sys.argv[2]
    for seed in [int(s) for s in sys.argv[3].split(",")]:
        started = time.perf_counter()
        prepared = prepare(protocol, feedback, seed, Path(sys.argv[4]))
        print(protocol, feedback, seed, prepared.recommended, round(time.perf_counter() - started, 1), flush=True)
