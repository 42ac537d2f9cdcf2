"""Batch scoring on a Dask cluster: the job of :mod:`two_stage_rec.batch_scoring`, spread over workers.

The client reads the users lazily, cuts them into partitions of
``partition_size`` users, writes each to a file in a parts folder and submits
a task per partition to the cluster; every worker loads
the bundle once (a Dask worker plugin assembles the recommender when the
worker joins) and writes each partition it scores as a part file; the client
appends the parts to the output in input order as they finish, so the output
is byte for byte the single-process one::

    from two_stage_rec.batch_scoring import read_user_ids
    from two_stage_rec.distributed import dask_client, score_users_distributed

    with dask_client("tcp://scheduler:8786") as client:   # or dask_client(workers=4): a LocalCluster
        result = score_users_distributed(client, "/shared/models", read_user_ids("users.txt"), "/shared/recs.jsonl")

What must be shared: the workers open the bundle by its path, and read the
users from and write the parts into a folder beside the output (or
``parts_dir``) with the client, so the bundle and that folder must be at the
same path on the client and every worker (a shared file system for the
folder; a shared file system or the same copy everywhere for the bundle).
The ids travel as files rather than inside the tasks because Dask's scheduler
keeps its recent messages to each worker, which would hold every id sent.

Identical bytes need identical arithmetic: the same chunks (``partition_size``
is a multiple of ``chunk_size``) and the same BLAS and OpenMP thread settings
(Dask's nanny starts workers with ``OMP_NUM_THREADS=1``; another thread count
can change a score's last bit, and with it a near-tie at the last candidate).

Memory stays bounded on both sides: the client holds one partition of ids
at a time (at most twice as many partitions as there are workers wait on disk),
and a worker one partition and its recommender.

Needs the ``dask`` extra (``pip install "two-stage-rec[dask]"``); importing
this module does not import Dask.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from two_stage_rec._optional import require
from two_stage_rec.batch_scoring import (
    DEFAULT_CHUNK_SIZE,
    BatchScoringResult,
    _check_options,
    _check_output,
    _chunks,
    _first_and_rest,
    _partial_output,
)
from two_stage_rec.errors import InvalidInputError

if TYPE_CHECKING:
    from distributed import Client, Future

    from two_stage_rec.bundle import ModelBackend, RerankerChoice
    from two_stage_rec.types import Filter

__all__ = ["DEFAULT_PARTITION_SIZE", "BundleSpec", "dask_client", "score_users_distributed"]

DEFAULT_PARTITION_SIZE = 32 * DEFAULT_CHUNK_SIZE
"""Users per Dask task (8,192): large enough that task overhead (milliseconds) is lost in the scoring."""


@dataclass(frozen=True)
class BundleSpec:
    """How every worker assembles its recommender: the arguments of :func:`~two_stage_rec.assembly.assemble`.

    Attributes:
        path: the bundle directory, at this path on every worker.
        store: a store name (``"faiss"``, the default, an exact flat index
            built on each worker; ``"memory"``; a shared store such as
            ``"pgvector"`` or ``"pinecone"``, then usually with ``index=False``).
        store_settings: the store's own settings.
        backend: ``"numpy"`` (default) or ``"tensorflow"``.
        reranker: ``"recommended"`` (default), ``"blend"``, ``"scoring"``,
            ``"ranker"`` or ``"none"``.
        index: each worker writes the catalogue into its store (True, right
            for the local stores). False when the store already holds it: with a
            shared store, index it once rather than once per worker.
    """

    path: str
    store: str = "faiss"
    store_settings: Mapping[str, Any] | None = None
    backend: ModelBackend = "numpy"
    reranker: RerankerChoice = "recommended"
    index: bool = True


@contextmanager
def dask_client(
    scheduler: str | None = None, *, workers: int | None = None, threads_per_worker: int = 1, processes: bool = True
) -> Iterator[Client]:
    """A Dask client of a running cluster (by scheduler address) or of a new local cluster.

    Args:
        scheduler: the address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
        workers: instead, start a ``LocalCluster`` of this many workers (closed on exit).
        threads_per_worker: threads per local worker (1: scoring is numpy and
            FAISS work, parallel across workers, not threads).
        processes: local workers are processes (True) or threads of this process.

    Yields:
        A connected ``distributed.Client``, closed on exit.

    Raises:
        InvalidInputError: neither or both of ``scheduler`` and ``workers``, or
            ``workers`` below 1.
        MissingDependencyError: the ``dask`` extra is not installed.
    """
    if (scheduler is None) == (workers is None):
        raise InvalidInputError("give either a scheduler address or a number of local workers")
    if workers is not None and workers < 1:
        raise InvalidInputError(f"workers must be at least 1, got {workers}")
    distributed = require("distributed", extra="dask", package="dask[distributed]")
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address="127.0.0.1:0",  # a free local port: the default 8787 may be taken by another cluster
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def score_users_distributed(
    client: Client,
    bundle: BundleSpec | str | os.PathLike[str],
    users: Iterable[str],
    output: str | os.PathLike[str],
    *,
    k: int = 10,
    candidates: int = 50,
    include_seen: bool = False,
    filter: Filter | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    progress: bool = False,
    total: int | None = None,
    parts_dir: str | os.PathLike[str] | None = None,
) -> BatchScoringResult:
    """Write one JSON line per user to ``output`` using the workers of ``client``.

    The output is identical, byte for byte, to
    :func:`~two_stage_rec.batch_scoring.score_users` with the same bundle,
    users and settings run with the workers' thread settings (chunks are
    aligned: ``partition_size`` is a multiple of ``chunk_size``), and is
    written as atomically (a partial sibling, renamed when complete).

    Args:
        client: a connected Dask client (:func:`dask_client`).
        bundle: the bundle path (the default store, reranker and backend), or
            a :class:`BundleSpec`.
        users: user ids, read lazily on the client, in output order.
        output: the JSON Lines file (replaced atomically when it exists).
        k: recommendations per user.
        candidates: items retrieved before reranking (>= k).
        include_seen: also recommend items the user interacted with in training.
        filter: metadata filter (Pinecone filter language) for every user.
        chunk_size: users per ``recommend_batch`` call on a worker.
        partition_size: users per Dask task, a multiple of ``chunk_size``.
        progress: show a tqdm progress bar (advancing as partitions are appended).
        total: the number of users, for the progress bar.
        parts_dir: where partitions' ids and parts are written (default:
            beside ``output``); the same folder for the client and every worker.

    Returns:
        The counts and timing of the run (timing from the first submitted
        partition: the workers' bundle loading is not counted).

    Raises:
        InvalidInputError: bad settings, no user ids, ``output`` is a
            directory, or a worker's error of that kind (a bad filter).
        ModelError: a worker cannot load the bundle.
        MissingDependencyError: the ``dask`` extra is missing here, or a
            store's or backend's extra on a worker.
    """
    _check_options(k=k, candidates=candidates, chunk_size=chunk_size)
    if partition_size < chunk_size or partition_size % chunk_size:
        raise InvalidInputError(
            f"partition_size ({partition_size}) must be a multiple of chunk_size ({chunk_size}), "
            "so that workers score the same chunks as one process"
        )
    target = _check_output(output)
    spec = bundle if isinstance(bundle, BundleSpec) else BundleSpec(path=str(Path(bundle).resolve()))
    stream = _first_and_rest(users)
    require("distributed", extra="dask", package="dask[distributed]")
    from tqdm.auto import tqdm

    from two_stage_rec._distributed_worker import BundleLoader, PartitionCounts, score_partition

    job = uuid.uuid4().hex[:12]
    plugin = f"two-stage-rec-bundle-{job}"
    parts = Path(parts_dir) if parts_dir is not None else target.parent
    parts = (parts / f".{target.name}.parts-{job}").resolve()
    pending: deque[tuple[Future[PartitionCounts], Path, Path, int]] = deque()
    written = from_model = fallback = 0
    try:
        # Every worker loads the bundle now: a bad bundle fails here, before any output exists.
        client.register_plugin(BundleLoader(spec), name=plugin)
        parts.mkdir(parents=True)
        window = max(2, 2 * len(client.scheduler_info()["workers"]))
        partitions = _chunks(stream, partition_size)
        index = 0
        start = time.perf_counter()
        with (
            _partial_output(target) as handle,
            tqdm(total=total, unit="user", desc="recommending", disable=not progress) as bar,
        ):
            while True:
                while len(pending) < window:
                    partition = next(partitions, None)
                    if partition is None:
                        break
                    part = parts / f"part-{index:08d}.jsonl"
                    inputs = parts / f"part-{index:08d}.users.json"
                    inputs.write_text(json.dumps(partition, ensure_ascii=False), encoding="utf-8")
                    future = client.submit(
                        score_partition,
                        plugin,
                        str(inputs),
                        str(part),
                        k=k,
                        candidates=candidates,
                        include_seen=include_seen,
                        filter=filter,
                        chunk_size=chunk_size,
                        key=f"two-stage-rec-partition-{job}-{index}",
                    )
                    pending.append((future, inputs, part, len(partition)))
                    del partition  # the ids live in the file now: memory holds one partition at most
                    index += 1
                if not pending:
                    break
                future, inputs, part, size = pending.popleft()
                counts: PartitionCounts = future.result()
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, handle, length=1 << 20)
                part.unlink()
                inputs.unlink()
                written += size
                from_model += counts.from_model
                fallback += counts.fallback
                bar.update(size)
        seconds = time.perf_counter() - start
    finally:
        if pending:
            client.cancel([future for future, *_ in pending])  # type: ignore[no-untyped-call]
        shutil.rmtree(parts, ignore_errors=True)
        # Never registered, or the cluster is gone: nothing is left to release.
        with suppress(Exception):
            client.unregister_worker_plugin(plugin)  # type: ignore[no-untyped-call]
    return BatchScoringResult(output=target, users=written, from_model=from_model, fallback=fallback, seconds=seconds)
