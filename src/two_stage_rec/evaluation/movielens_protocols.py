"""The evaluation protocols of MovieLens-100K, by name, so that numbers are comparable.

=============  =================================================  ==========================================
protocol       split                                              compared with
=============  =================================================  ==========================================
``random``     uniformly random 80/20 of all ratings, seed 42     the notebook (and the TFRS tutorial)
``stratified`` 75/25 of each user's ratings, seed 42              Microsoft Recommenders' ML-100K table
                                                                  (BPR NDCG@10 0.442, BiVAE 0.475)
``u1``         GroupLens' ``u1.base`` / ``u1.test``               published RMSE results (GC-MC 0.910)
``temporal``   each user's latest 20% of ratings by timestamp     the realistic protocol: predict the future
=============  =================================================  ==========================================

Every split is a pair of :class:`~two_stage_rec.datasets.Interactions` with
ratings; call ``.without_ratings()`` on both for the implicit-feedback
version of a protocol. Top-k metrics count every test interaction as relevant,
and remove each user's training items from their recommendations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

from two_stage_rec.datasets.interactions import Interactions
from two_stage_rec.datasets.splits import SplitSpec
from two_stage_rec.errors import InvalidInputError

__all__ = ["MOVIELENS_PROTOCOLS", "MovieLensProtocol", "ProtocolSpec", "protocol_spec", "split_for_protocol"]

MovieLensProtocol: TypeAlias = Literal["random", "stratified", "u1", "temporal"]
"""MovieLens-100K's named protocols: ``random`` (the notebook's 80/20, seed 42),
``stratified`` (per user 75/25, seed 42: the published top-k tables),
``u1`` (GroupLens' canonical files), ``temporal`` (each user's latest 20%)."""

MOVIELENS_PROTOCOLS: tuple[MovieLensProtocol, ...] = get_args(MovieLensProtocol)


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """How one protocol splits the data, and what it is compared with.

    Attributes:
        name: the protocol.
        description: the split in one line.
        reference: published numbers on the same protocol, for context.
        measure_rating_errors: whether RMSE/MAE of the scoring model is a headline number.
        split: the split as a bundle's manifest records it: a
            :class:`~two_stage_rec.datasets.SplitSpec` record, or
            ``{"kind": "canonical", "name": "u1"}`` for GroupLens' files.
    """

    name: MovieLensProtocol
    description: str
    reference: str
    measure_rating_errors: bool
    split: Mapping[str, Any]


_SPECS: dict[MovieLensProtocol, ProtocolSpec] = {
    "random": ProtocolSpec(
        "random",
        "uniformly random 80/20 split of all 100,000 ratings (seed 42), as in the notebook",
        "TFRS tutorial: retrieval top-100 accuracy 0.233 (3 epochs)",
        False,
        SplitSpec("random", 0.2, 42).to_dict(),
    ),
    "stratified": ProtocolSpec(
        "stratified",
        "per-user stratified 75/25 split (seed 42), as in Microsoft Recommenders' ML-100K table",
        "Microsoft Recommenders ML-100K: BPR NDCG@10 0.442 / Recall@10 0.213; BiVAE NDCG@10 0.475",
        False,
        SplitSpec("stratified", 0.25, 42).to_dict(),
    ),
    "u1": ProtocolSpec(
        "u1",
        "GroupLens' canonical u1.base / u1.test (80/20)",
        "published RMSE on u1: GC-MC 0.910, GLocal-K 0.889; TFRS tutorial MLP about 1.10",
        True,
        {"kind": "canonical", "name": "u1"},
    ),
    "temporal": ProtocolSpec(
        "temporal",
        "each user's latest 20% of ratings by timestamp held out (ties in file order; every user keeps one)",
        "no published ML-100K table uses it; numbers are lower than on random splits (the future is harder)",
        False,
        SplitSpec("temporal", 0.2, 42).to_dict(),
    ),
}


def protocol_spec(name: str) -> ProtocolSpec:
    """The :class:`ProtocolSpec` of ``name``.

    Raises:
        InvalidInputError: ``name`` is not one of :data:`MOVIELENS_PROTOCOLS`.
    """
    for protocol, spec in _SPECS.items():
        if protocol == name:
            return spec
    raise InvalidInputError(f"unknown protocol {name!r}; choose one of {', '.join(MOVIELENS_PROTOCOLS)}")


def split_for_protocol(
    name: str, data_dir: str | None = None, *, progress: bool = True
) -> tuple[Interactions, Interactions]:
    """``(train, test)`` of a protocol: MovieLens-100K ratings (ids ``"1"``.., ratings 1..5, timestamps).

    Args:
        name: one of :data:`MOVIELENS_PROTOCOLS`.
        data_dir: an ``ml-100k`` folder; None uses ``$TWO_STAGE_REC_DATA``, the
            cache, or a verified download (see :mod:`two_stage_rec.datasets`).
        progress: show download progress when a download is needed.
    """
    spec = protocol_spec(name)
    from two_stage_rec import datasets

    if spec.split["kind"] == "canonical":
        return datasets.canonical_split(spec.split["name"], data_dir, progress=progress)
    log = datasets.movielens_100k(data_dir, progress=progress).interactions
    record = spec.split
    return datasets.split(log, SplitSpec(record["kind"], float(record["test_fraction"]), int(record["seed"])))
