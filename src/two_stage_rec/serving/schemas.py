"""The JSON shapes the recommendation service accepts and returns (pydantic models).

They are the service's public contract: FastAPI validates requests against
them and renders them, with their field descriptions, into the OpenAPI schema
at ``/openapi.json`` (browsable at ``/docs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from two_stage_rec._optional import require

require("pydantic", extra="serve")
require("orjson", extra="serve")

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from pydantic_core import to_json  # noqa: E402

from two_stage_rec.explain import Explanation  # noqa: E402
from two_stage_rec.policies.spec import PolicySpec  # noqa: E402
from two_stage_rec.recommender import Recommendation  # noqa: E402
from two_stage_rec.types import MetadataValue  # noqa: E402

__all__ = [
    "Id",
    "BatchRecommendationRequest",
    "BatchRecommendationResponse",
    "ErrorResponse",
    "HealthResponse",
    "HistoryItem",
    "HistoryNeighbour",
    "ItemContribution",
    "ItemExplanation",
    "Policies",
    "PolicyRule",
    "ReadinessResponse",
    "RecommendedItem",
    "StatsResponse",
    "UserRecommendations",
    "MAX_BATCH_USERS",
    "MAX_CANDIDATES",
    "MAX_FILTER_LENGTH",
    "MAX_HISTORY",
    "MAX_ID_LENGTH",
    "MAX_POLICY_RULES",
    "MAX_K",
    "DEFAULT_CANDIDATES",
    "explanation_json",
    "json_safe",
    "recommendations_json",
    "user_recommendations",
]

MAX_K = 1000
"""Largest ``k`` one request may ask for."""

MAX_CANDIDATES = 10_000
"""Largest ``candidates``; Pinecone's own ``top_k`` limit, so every store accepts it."""

DEFAULT_CANDIDATES = 50
"""Candidates retrieved before reranking when the request does not say (the notebook's 50)."""

MAX_BATCH_USERS = 1000
"""Largest number of users in one batch request."""

MAX_ID_LENGTH = 512
"""Longest user or item id accepted (Pinecone's id limit)."""

MAX_FILTER_LENGTH = 4096
"""Longest ``filter`` query parameter accepted (JSON text), in characters."""

MAX_HISTORY = 1000
"""Most interactions one user's ``history`` may hold (the most recent are the ones to send)."""

MAX_POLICY_RULES = 100
"""Most entries of each kind in ``policies`` (boost rules, bury rules, caps, pins, blocked ids)."""

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
"""A user or item id: a non-empty string of at most :data:`MAX_ID_LENGTH` characters."""

Rating = Annotated[float, Field(allow_inf_nan=False)]
"""A rating given with a history: any finite number (the scale of the training data, e.g. 1-5)."""

HistoryItem = Annotated[
    list[Id] | dict[Id, Rating],
    Field(
        min_length=1,
        max_length=MAX_HISTORY,
        description=f"1 to {MAX_HISTORY} interactions: item ids (oldest first when known; implicit feedback), "
        "or item id -> rating (explicit feedback).",
    ),
]
"""One user's history given with a request."""

Position = Annotated[int, Field(strict=True, ge=1)]


class PolicyRule(BaseModel):
    """A boost or bury rule: the items whose metadata match ``filter`` move ``by`` places
    (or, without ``by``, to the top for a boost, to the end for a bury)."""

    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] = Field(description="A metadata filter, in the language of the request's `filter`.")
    by: Position | None = Field(
        default=None, description="Places to move (>= 1); null or absent: to the top (boost) or the end (bury)."
    )


class Policies(BaseModel):
    """Post-ranking policies, applied to every user's ranked candidates before the first `k` are kept.

    Every key is optional. Whatever their order here, they apply in one fixed
    order: `block`, `boost`, `bury`, `mmr`, `max_per`, `pin` (see
    :data:`two_stage_rec.policies.POLICY_ORDER`).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"mmr": 0.3, "max_per": {"genres": 2}, "boost": [{"filter": {"year": {"$gte": 1995}}}]}]
        },
    )

    block: list[Id] | None = Field(
        default=None, min_length=1, max_length=MAX_POLICY_RULES, description="Item ids never to recommend."
    )
    boost: list[PolicyRule] | None = Field(
        default=None, max_length=MAX_POLICY_RULES, description="Rules moving matching items up, in order."
    )
    bury: list[PolicyRule] | None = Field(
        default=None, max_length=MAX_POLICY_RULES, description="Rules moving matching items down, in order."
    )
    mmr: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Maximal marginal relevance: the trade-off in [0, 1] between relevance and variety "
        "among the top k (0: off).",
    )
    max_per: dict[Annotated[str, Field(min_length=1)], Position] | None = Field(
        default=None,
        max_length=MAX_POLICY_RULES,
        description='Metadata field -> at most this many items per value of it in the top k, e.g. `{"genres": 2}`.',
    )
    pin: dict[Id, Position] | None = Field(
        default=None,
        max_length=MAX_POLICY_RULES,
        description="Item id -> its 1-based position in the list (1 is the top). A pinned item the "
        "ranking did not return is added (`source` `pinned`) unless excluded or filtered out.",
    )

    def spec(self) -> PolicySpec:
        """The policies as the library's :class:`~two_stage_rec.policies.PolicySpec`, for
        :func:`~two_stage_rec.policies.parse_policies` (which checks each policy's own rules)."""
        spec: PolicySpec = {}
        if self.block is not None:
            spec["block"] = list(self.block)
        if self.boost is not None:
            spec["boost"] = [{"filter": rule.filter, "by": rule.by} for rule in self.boost]
        if self.bury is not None:
            spec["bury"] = [{"filter": rule.filter, "by": rule.by} for rule in self.bury]
        if self.mmr is not None:
            spec["mmr"] = self.mmr
        if self.max_per is not None:
            spec["max_per"] = dict(self.max_per)
        if self.pin is not None:
            spec["pin"] = dict(self.pin)
        return spec


class HistoryNeighbour(BaseModel):
    """An item of the user's history near the recommended one."""

    item_id: str = Field(description="The history item's id.")
    title: str | None = Field(description="Its title when the service knows one, else null.")
    similarity: float = Field(description="Cosine similarity of the two items' vectors, higher is more similar.")


class ItemContribution(BaseModel):
    """One feature's contribution to the ranker's score."""

    feature: str
    contribution: float


class ItemExplanation(BaseModel):
    """Why an item is in the list (present when the request asked for `explain`)."""

    because: list[HistoryNeighbour] = Field(
        description="Up to two items of the user's history (the training one and the request's `history`) "
        "nearest to this item, most similar first; empty when the user's history is unknown."
    )
    candidate_source: str = Field(
        description="Where the item came from: `index` (the vector index's nearest neighbours of the user), "
        "`fallback` (the cold-start popularity list), `pinned` (a `pin` policy), or, for the learned ranking "
        "stage's own candidates, the names of its sources that retrieved the item joined by `+` (`tower`, "
        "`item_item`, `tower+item_item`; `ranker` when it cannot say).",
        examples=["index", "tower+item_item", "fallback"],
    )
    retrieval_rank: int | None = Field(
        description="The item's 1-based rank by retrieval similarity among the request's candidates; null "
        "when it was not retrieved (fallback, pinned)."
    )
    contributions: list[ItemContribution] = Field(
        default_factory=list,
        description="The ranker's largest feature contributions to the score, largest first, when the "
        "ranker can give them; else empty.",
    )

    @classmethod
    def from_explanation(cls, explanation: Explanation, title_of: Callable[[str], str | None]) -> ItemExplanation:
        """Convert a library :class:`~two_stage_rec.explain.Explanation`."""
        return cls.model_validate(explanation_json(explanation, title_of))


class RecommendedItem(BaseModel):
    """One recommended item. Scores are higher-is-better."""

    item_id: str = Field(description="The item's id in the vector store (e.g. a MovieLens movie id).")
    title: str | None = Field(
        default=None,
        description="Human-readable title when the service knows one (from its title table or "
        "the item's `title` metadata), else null.",
    )
    score: float = Field(
        description="The score the item was ranked by, higher is better: the reranker's score when "
        "`source` is `reranked`, the retrieval similarity when `retrieval`, the popularity score "
        "when `fallback`."
    )
    retrieval_score: float | None = Field(
        description="The vector store's similarity between user and item, higher is better; "
        "null for `fallback` items, which were not retrieved."
    )
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="The item's stored metadata (`{}` when none)."
    )
    source: Literal["reranked", "retrieval", "fallback", "pinned"] = Field(
        description="How the item was ranked: by the reranker, by retrieval similarity alone, by "
        "the cold-start fallback because the user id is unknown, or placed by a `pin` policy "
        "without being ranked (its `score` is then null)."
    )
    folded_in: bool = Field(
        default=False,
        description="The user's vector was folded in from the request's `history` (a new user, or a known "
        "one with recent activity) rather than the trained one.",
    )
    explanation: ItemExplanation | None = Field(
        default=None, description="Why the item is there, when the request asked for `explain`; else null."
    )

    @classmethod
    def from_recommendation(
        cls,
        recommendation: Recommendation,
        title: str | None,
        title_of: Callable[[str], str | None] = lambda item_id: None,
    ) -> RecommendedItem:
        """Convert a library :class:`Recommendation`; NaN retrieval scores (fallback) become null,
        because JSON has no NaN. ``title_of`` names the history items of an explanation."""
        retrieval = recommendation.retrieval_score
        explanation = recommendation.explanation
        return cls(
            item_id=recommendation.item_id,
            title=title,
            score=recommendation.score,
            retrieval_score=retrieval if math.isfinite(retrieval) else None,
            metadata=dict(recommendation.metadata),
            source=recommendation.source,
            folded_in=recommendation.folded_in,
            explanation=None if explanation is None else ItemExplanation.from_explanation(explanation, title_of),
        )


class UserRecommendations(BaseModel):
    """Recommendations for one user, best first."""

    user_id: str = Field(description="The user id as it was asked for.")
    items: list[RecommendedItem] = Field(
        description="At most `k` items, best first; fewer only when the catalogue, after exclusions "
        "and the filter, holds fewer."
    )


class BatchRecommendationRequest(BaseModel):
    """Recommendations for many users in one request (one embedding call, one store query and
    one reranker call for all of them)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_ids": ["42", "55"],
                    "k": 5,
                    "filter": {"genres": {"$in": ["Comedy"]}},
                    "exclude": {"42": ["50", "172"]},
                },
                {
                    "user_ids": ["42", "somebody-new"],
                    "k": 5,
                    "history": {"somebody-new": {"50": 5, "181": 4, "1": 2}},
                    "policies": {"mmr": 0.3, "max_per": {"genres": 2}},
                    "explain": True,
                },
            ]
        },
    )

    user_ids: list[Id] = Field(
        min_length=1,
        max_length=MAX_BATCH_USERS,
        description=f"1 to {MAX_BATCH_USERS} non-empty user ids; results come back in this order.",
    )
    k: int = Field(default=5, ge=1, le=MAX_K, description="Recommendations wanted per user.")
    candidates: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CANDIDATES,
        description=f"Items retrieved per user before reranking; must be >= k. Default: max(k, {DEFAULT_CANDIDATES}).",
    )
    rerank: bool = Field(
        default=True, description="Rerank the candidates with the reranker (when the service has one)."
    )
    exclude_seen: bool = Field(
        default=True, description="Leave out items the service knows each user has already rated."
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Metadata filter in the Pinecone filter language "
        "(`$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`), applied to every user.",
    )
    exclude: dict[str, list[Id]] | None = Field(
        default=None, description="Per user id, further item ids never to recommend."
    )
    history: dict[Id, HistoryItem] | None = Field(
        default=None,
        max_length=MAX_BATCH_USERS,
        description="Per user id (each one of `user_ids`), interactions given now: the user's vector is folded "
        "in from them (a user the model has never seen is personalised; its items say `folded_in`). "
        "Items the store does not hold are ignored. The history's items are left out of the "
        "recommendations when `exclude_seen` is true.",
    )
    policies: Policies | None = Field(
        default=None, description="Post-ranking policies applied to every user (diversity, business rules)."
    )
    explain: bool = Field(
        default=False, description="Attach an `explanation` to every item (one more store fetch per request)."
    )


class BatchRecommendationResponse(BaseModel):
    """One entry per requested user, in request order."""

    results: list[UserRecommendations]


class ErrorResponse(BaseModel):
    """The body of every error the service returns on purpose."""

    error: str = Field(
        description="Machine-readable code: `unknown_user`, `unknown_items`, `invalid_input`, `invalid_filter`, "
        "`invalid_request`, `payload_too_large`, `not_found`, `method_not_allowed`, `store_unavailable`, "
        "`store_error`, `internal_error`; on the admin endpoints also "
        "`unauthorized`, `forbidden`, `reload_in_progress`, `reload_failed` and `not_supported`."
    )
    detail: str = Field(description="What went wrong, for a human. Never holds secrets or stack traces.")
    user_ids: list[str] | None = Field(
        default=None, description="For `unknown_user`: every user id the service does not know."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For `invalid_request`: one entry per rejected field (pydantic's format)."
    )
    item_ids: list[str] | None = Field(
        default=None, description="For `unknown_items`: every item id the item tower has no vector for."
    )


class HealthResponse(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    """Readiness: the store answers and holds items to recommend."""

    ready: bool
    count: int | None = Field(description="Vectors in the store; null when the store did not answer.")
    detail: str | None = None


class StatsResponse(BaseModel):
    """What the vector store reports about itself, and how the recommender is composed."""

    backend: str = Field(description="Store backend: `memory`, `faiss`, `pinecone`, ...")
    dimension: int = Field(description="Vector dimension d.")
    metric: str = Field(description="Similarity the store ranks by (scores always higher-is-better).")
    count: int = Field(description="Vectors stored.")
    details: dict[str, Any] = Field(default_factory=dict, description="Backend-specific facts.")
    reranker: bool = Field(description="Whether a reranker is configured.")
    fallback: bool = Field(description="Whether unknown users get a cold-start fallback (else 404).")


def explanation_json(explanation: Explanation, title_of: Callable[[str], str | None]) -> dict[str, Any]:
    """An :class:`ItemExplanation` as plain JSON-ready data; ``title_of`` names the history items."""
    return {
        "because": [
            {"item_id": item, "title": title_of(item), "similarity": similarity}
            for item, similarity in explanation.because
        ],
        "candidate_source": explanation.candidate_source,
        "retrieval_rank": explanation.retrieval_rank,
        "contributions": [{"feature": feature, "contribution": value} for feature, value in explanation.contributions],
    }


def user_recommendations(
    user_id: str,
    recommendations: Sequence[Recommendation],
    title_of: Callable[[Recommendation], str | None],
    item_title: Callable[[str], str | None] = lambda item_id: None,
) -> dict[str, Any]:
    """A :class:`UserRecommendations` as plain JSON-ready data, built without model validation.

    The service answers thousands of requests a second from one Python
    process, so it skips building and validating pydantic models for its own,
    already valid output: rendering a 5-item answer with :func:`recommendations_json`
    takes about 5 µs against 33 µs through the models, with the same bytes
    (``tests/test_serving_batching.py`` compares them). ``item_title`` names
    the history items of explanations.
    """
    return {
        "user_id": user_id,
        "items": [
            {
                "item_id": r.item_id,
                "title": title_of(r),
                "score": r.score,
                "retrieval_score": r.retrieval_score if math.isfinite(r.retrieval_score) else None,
                "metadata": r.metadata,
                "source": r.source,
                "folded_in": r.folded_in,
                "explanation": None if r.explanation is None else explanation_json(r.explanation, item_title),
            }
            for r in recommendations
        ],
    }


def recommendations_json(body: Mapping[str, Any]) -> bytes:
    """Render :func:`user_recommendations` output (or a list of it under ``results``) as JSON,
    as pydantic renders the models: non-finite floats become null.

    orjson writes the same bytes as pydantic (compact, shortest round-trip floats, NaN and
    infinities as null) in about a third of the time; a value it refuses (an integer beyond
    64 bits, an unusual metadata type) is rendered by pydantic instead.
    """
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return to_json(body, inf_nan_mode="null")


def json_safe(value: object) -> Any:
    """Turn backend ``details`` (numpy scalars, tuples, nested mappings) into plain JSON values."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return str(value)
