"""``benchmarks/recommend_latency.py``'s served-pipelines section runs end to end on a tiny bundle with a ranking stage.

No timing is asserted: the test keeps the measurement code from rotting and
checks that the served ranker recommends what the ranking stage ranks.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from test_feature_ranker import lightgbm_or_skip, stage, world
from two_stage_rec.bundle import read_bundle, write_bundle
from two_stage_rec.rerankers.ranking_stage import fit_on_holdout

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def latency() -> Iterator[ModuleType]:
    pytest.importorskip("faiss", reason="the benchmark serves from the faiss store (the faiss extra)")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("recommend_latency")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_served_pipelines_are_measured_and_the_ranker_agrees_with_its_stage(
    latency: ModuleType, tmp_path: Path
) -> None:
    lightgbm_or_skip()
    train, held_out, users, item_embedder, catalogue, items = world()
    fitted = fit_on_holdout(
        stage(train, users, item_embedder, catalogue, items), train.items_by_user(), held_out.items_by_user()
    )
    path = write_bundle(
        tmp_path / "bundle",
        user_keys=list(users.keys),
        user_vectors=users.embed(list(users.keys)),
        item_keys=items,
        item_vectors=item_embedder.embed(items),
        catalogue=catalogue,
        train=train,
        recommended="ranker",
        ranking_stage=fitted,
    )
    served = latency.build_served(read_bundle(path))
    assert served is not None and set(served) == {"retrieval_only", "ranker"}  # no scoring model, no blend here
    results = latency.served_timings(served, list(users.keys), rounds=4, batch_repeats=1)
    assert set(results["single_user"]) == set(results["single_user_cpu"]) == {"retrieval_only", "ranker"}
    assert results["single_user"]["ranker"]["n"] == 4
    assert set(results["ratios_wall"]) == set(results["ratios_cpu"]) == {"ranker_over_retrieval_only"}
    assert results["recommend_batch_all_users"]["users"] == len(users.keys)
    assert np.isfinite(results["recommend_batch_all_users_cpu"]["ranker"]["p50_s"])
    assert results["agreement"] == {"ranker_same_top5_as_ranking_stage": 1.0}
    if importlib.util.find_spec("threadpoolctl") is not None:
        assert results["recommend_batch_all_users_one_thread"]["ranker"]["n"] == 1
