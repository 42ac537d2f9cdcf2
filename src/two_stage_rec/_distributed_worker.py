"""The worker side of :mod:`two_stage_rec.distributed`: load the bundle once per worker, score partitions.

Imported only after ``distributed`` was found (it subclasses Dask's
``WorkerPlugin``), on the client that registers the plugin and on every
worker that unpickles it.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distributed import WorkerPlugin, get_worker

from two_stage_rec import errors
from two_stage_rec.assembly import assemble
from two_stage_rec.batch_scoring import _chunks, _score_chunk

if TYPE_CHECKING:
    from distributed import Worker

    from two_stage_rec.assembly import AssembledRecommender
    from two_stage_rec.distributed import BundleSpec
    from two_stage_rec.types import Filter


class BundleLoader(WorkerPlugin):
    """Assembles the recommender when attached to a worker; closes it when removed.

    Dask attaches the plugin to every worker of the cluster, including
    workers that join later, so each worker loads the bundle exactly once
    however many partitions it scores. The worker's threads share the
    recommender (its ``recommend_batch`` is thread-safe with the local stores).
    """

    def __init__(self, spec: BundleSpec) -> None:
        self.spec = spec
        self.served: AssembledRecommender | None = None

    async def setup(self, worker: Worker) -> None:
        # Loading takes seconds for a large bundle; off the event loop, the worker keeps answering heartbeats.
        self.served = await asyncio.get_running_loop().run_in_executor(None, self._assemble)

    def _assemble(self) -> AssembledRecommender:
        spec = self.spec
        return assemble(
            spec.path,
            store=spec.store,
            store_settings=spec.store_settings,
            backend=spec.backend,
            reranker=spec.reranker,
            index=spec.index,
        )

    def teardown(self, worker: Worker) -> None:
        if self.served is not None:
            self.served.close()
            self.served = None


@dataclass(frozen=True)
class PartitionCounts:
    """What one partition wrote."""

    from_model: int
    fallback: int


def score_partition(
    plugin: str,
    users: str,
    part: str,
    *,
    k: int,
    candidates: int,
    include_seen: bool,
    filter: Filter | None,
    chunk_size: int,
) -> PartitionCounts:
    """Score the users of the JSON file ``users`` with this worker's recommender; write their lines to ``part``.

    The users travel as a file beside the parts rather than inside the task:
    Dask's scheduler keeps its last thousand messages to each worker (each
    under 1 MB) for debugging, so ids sent in the tasks would pile up there.

    The part appears whole or not at all (written beside it, then renamed), so
    a task that Dask re-runs after a lost worker never leaves half a part.
    Chunks start at multiples of ``chunk_size`` within the partition, as in the
    single-process run, so the numbers (and the bytes) are the same.
    """
    served = get_worker().plugins[plugin].served  # type: ignore[attr-defined]
    if served is None:  # the plugin was removed while the task waited
        raise errors.InvalidInputError(f"worker plugin {plugin!r} holds no recommender")
    with open(users, encoding="utf-8") as handle:
        user_ids: list[str] = json.load(handle)
    target = Path(part)
    temporary = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    from_model = fallback = 0
    try:
        with open(temporary, "wb") as out:
            for chunk in _chunks(user_ids, chunk_size):
                scored = _score_chunk(
                    served, chunk, k=k, candidates=candidates, include_seen=include_seen, filter=filter
                )
                out.write(scored.data)
                from_model += scored.from_model
                fallback += scored.fallback
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return PartitionCounts(from_model, fallback)
