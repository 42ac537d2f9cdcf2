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

import numpy as np  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from pydantic_core import to_json  # noqa: E402

from two_stage_rec.recommender import Recommendation  # noqa: E402
from two_stage_rec.types import MetadataValue  # noqa: E402

__all__ = [
    "Id",
    "BatchRecommendationRequest",
    "BatchRecommendationResponse",
    "ErrorResponse",
    "HealthResponse",
    "ReadinessResponse",
    "RecommendedItem",
    "StatsResponse",
    "UserRecommendations",
    "MAX_BATCH_USERS",
    "MAX_CANDIDATES",
    "MAX_FILTER_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_K",
    "DEFAULT_CANDIDATES",
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

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
"""A user or item id: a non-empty string of at most :data:`MAX_ID_LENGTH` characters."""


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
    source: Literal["reranked", "retrieval", "fallback"] = Field(
        description="How the item was ranked: by the reranker, by retrieval similarity alone, or by "
        "the cold-start fallback because the user id is unknown."
    )

    @classmethod
    def from_recommendation(cls, recommendation: Recommendation, title: str | None) -> RecommendedItem:
        """Convert a library :class:`Recommendation`; NaN retrieval scores (fallback) become null,
        because JSON has no NaN."""
        retrieval = recommendation.retrieval_score
        return cls(
            item_id=recommendation.item_id,
            title=title,
            score=recommendation.score,
            retrieval_score=retrieval if math.isfinite(retrieval) else None,
            metadata=dict(recommendation.metadata),
            source=recommendation.source,
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
                }
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


def user_recommendations(
    user_id: str, recommendations: Sequence[Recommendation], title_of: Callable[[Recommendation], str | None]
) -> dict[str, Any]:
    """A :class:`UserRecommendations` as plain JSON-ready data, built without model validation.

    The service answers thousands of requests a second from one Python
    process, so it skips building and validating pydantic models for its own,
    already valid output: rendering a 5-item answer with :func:`recommendations_json`
    takes about 5 µs against 33 µs through the models, with the same bytes
    (``tests/test_serving_batching.py`` compares them).
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
            }
            for r in recommendations
        ],
    }


def recommendations_json(body: Mapping[str, Any]) -> bytes:
    """Render :func:`user_recommendations` output (or a list of it under ``results``) as JSON,
    as pydantic renders the models: non-finite floats become null."""
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
