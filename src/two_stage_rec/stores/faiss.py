"""A vector store on FAISS: exact flat, HNSW or IVF indexes with string ids,
metadata filters and atomic, pickle-free save/load.

How it is built (and why):

* **Side table.** Every vector, id and metadata mapping also lives in numpy
  arrays ("slots") next to the FAISS index. The FAISS label of a vector is its
  slot number, so turning results back into string ids is one ``numpy.take``.
  The side table answers ``fetch`` and ``include_values`` (with the vectors as
  given, even for cosine, where FAISS holds normalised copies), drives
  filters, and is what an index is rebuilt from.
* **Overwrite and delete.** Flat and IVF indexes remove vectors for real
  (``remove_ids``) and an overwritten id keeps its slot. HNSW graphs cannot
  remove nodes, so a deleted or overwritten vector becomes a *tombstone*: it
  stays in the graph but an ID selector hides it from every search. When
  tombstones outnumber live vectors the graph is rebuilt from the side table
  (amortised O(1) rebuild work per write, at the cost of one slow write now
  and then). Flat and IVF leave empty slots in the side table, compacted by
  the same rule.
* **Filters.** The filter (Pinecone filter language, see
  :mod:`two_stage_rec.filters`) is evaluated on the side table's metadata into
  a bitmap of allowed slots, and FAISS searches with that bitmap as an ID
  selector, so a filtered query is not a post-filter. If an approximate index
  still finds fewer than ``min(top_k, matches)`` for a query (a selective
  filter on HNSW, or IVF lists too few to probe), that query is answered by
  exact numpy search over the matching vectors instead. ``describe()``
  counts these fallbacks. On HNSW and IVF, a filter selective enough that
  exact search over its matches costs fewer distance computations than the
  index would (a simple cost model, see ``_exact_is_cheaper``) skips the
  index altogether: faster, and exact.
* **IVF training.** An IVF index must be trained before it can hold vectors.
  Until the store holds ``IvfParams.min_train_size`` vectors (default
  ``39 * nlist``, FAISS's own rule of thumb) queries are answered exactly from
  the side table. The first write that reaches that size trains the coarse
  quantizer on (a sample of at most ``max_train_size`` of) the stored vectors
  and indexes them all. Later writes never retrain on their own; call
  :meth:`FaissVectorStore.train` after the data has drifted.

Scores are higher-is-better for every metric: dot product, cosine similarity
(vectors are normalised before they enter FAISS) and negative squared
euclidean distance (FAISS's L2 distance, negated).

Thread safety: ``query``, ``fetch`` and ``describe`` run concurrently with
one another; ``upsert``, ``delete`` and ``train`` may be called at any time
from any thread (``concurrent_writes = True``): each waits for running reads
and runs alone (a readers-writer lock), so a query sees the store wholly
before or wholly after each write. ``save`` must not overlap a write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec._atomic import fsync_directory, fsync_tree, write_atomically
from two_stage_rec._optional import require
from two_stage_rec.errors import InvalidInputError, PersistenceError, StoreError, TwoStageRecError
from two_stage_rec.filters import filter_mask
from two_stage_rec.scoring import exact_scores, normalize_rows, top_k_rows
from two_stage_rec.stores.memory import ReadWriteLock, check_store_config
from two_stage_rec.types import FetchResult, FloatMatrix, Metadata, MetadataValue, Metric, QueryResult, StoreStats
from two_stage_rec.validation import as_query_matrix, check_ids, check_metadata, check_top_k, check_upsert

__all__ = ["FaissVectorStore", "HnswParams", "IndexKind", "IvfParams"]

IndexKind: TypeAlias = Literal["flat", "hnsw", "ivf"]
"""``"flat"``: exact brute force. ``"hnsw"``: graph, approximate, fast. ``"ivf"``:
inverted lists over k-means cells, approximate, needs training."""

_INDEX_KINDS: Final[tuple[IndexKind, ...]] = ("flat", "hnsw", "ivf")
_FORMAT: Final = "two_stage_rec.FaissVectorStore"
_FORMAT_VERSION: Final = 1
_POINTER: Final = "CURRENT"
_SNAPSHOT_PREFIX: Final = "snapshot-"
_TEMP_PREFIX: Final = ".tmp-"
# Compact (and, for HNSW, rebuild the graph) once dead slots outnumber live
# ones; below this many dead slots a rebuild is not worth its cost.
_MIN_DEAD_TO_COMPACT: Final = 16
_EMPTY_METADATA: Metadata = {}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class HnswParams:
    """Parameters of an HNSW graph (``index="hnsw"``).

    Attributes:
        m: neighbours per node; more is better recall, more memory.
        ef_construction: candidate list size while building; more is better
            graph quality, slower writes.
        ef_search: candidate list size while searching (at least ``top_k`` is
            used); more is better recall, slower queries.
    """

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def __post_init__(self) -> None:
        _positive_int("HnswParams.m", self.m)
        _positive_int("HnswParams.ef_construction", self.ef_construction)
        _positive_int("HnswParams.ef_search", self.ef_search)


@dataclass(frozen=True, slots=True, kw_only=True)
class IvfParams:
    """Parameters of an IVF index (``index="ivf"``) and its training policy.

    Attributes:
        nlist: number of k-means cells (inverted lists).
        nprobe: cells searched per query; more is better recall, slower.
            ``None`` means ``min(20, nlist)``: on clustered data at 100k
            items, ``nlist=100`` with 20 probes measured recall@50 0.993 at
            0.31 ms against 0.971 at 0.21 ms with 10 (docs/benchmarks.md).
        min_train_size: vectors the store must hold before the index is
            trained; until then queries are exact. ``None`` means
            ``39 * nlist``, below which FAISS's k-means warns of poor centroids.
        max_train_size: at most this many stored vectors (a seeded random
            sample) train the quantizer. ``None`` means ``256 * nlist``,
            FAISS's own sampling cap.
    """

    nlist: int = 100
    nprobe: int | None = None
    min_train_size: int | None = None
    max_train_size: int | None = None

    def __post_init__(self) -> None:
        nlist = _positive_int("IvfParams.nlist", self.nlist)
        nprobe = self.probes
        if nprobe > nlist:
            raise InvalidInputError(f"IvfParams.nprobe={nprobe} exceeds nlist={nlist}")
        for name in ("min_train_size", "max_train_size"):
            value = getattr(self, name)
            if value is not None and _positive_int(f"IvfParams.{name}", value) < nlist:
                raise InvalidInputError(f"IvfParams.{name}={value} is below nlist={nlist}; k-means needs more")

    @property
    def probes(self) -> int:
        """Cells searched per query: ``nprobe``, or ``min(20, nlist)`` when it is None."""
        if self.nprobe is None:
            return min(20, self.nlist)
        return _positive_int("IvfParams.nprobe", self.nprobe)

    @property
    def train_threshold(self) -> int:
        """Stored vectors needed before the index is trained."""
        return self.min_train_size if self.min_train_size is not None else 39 * self.nlist

    @property
    def train_sample_cap(self) -> int:
        """Most vectors used to train the quantizer."""
        return self.max_train_size if self.max_train_size is not None else 256 * self.nlist


def _faiss() -> Any:
    return require("faiss", extra="faiss", package="faiss-cpu")


@contextmanager
def _faiss_errors(action: str) -> Iterator[None]:
    """Translate FAISS's errors (C++ exceptions surface as RuntimeError) into StoreError."""
    try:
        yield
    except TwoStageRecError:
        raise
    except (RuntimeError, MemoryError) as exc:
        raise StoreError(f"faiss failed to {action}: {exc}") from exc


@contextmanager
def _single_thread_if(faiss: Any, condition: bool) -> Iterator[None]:
    """Run FAISS on one OpenMP thread (for the calling thread only) while ``condition`` holds.

    One query gains nothing from OpenMP (FAISS parallelises over queries), but
    ``IndexIDMap`` still opens a parallel region to translate its 50 labels,
    and on a busy machine that region waits for a descheduled worker: measured
    on 2 CPUs under a load average of 10, a one-query top-50 over 1,682
    vectors took 17 ms at the median with two threads and 0.22 ms with one. The OpenMP
    thread count is a per-thread setting, so queries from other threads keep theirs.
    """
    if not condition:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class FaissVectorStore:
    """A vector store on a FAISS index, exact (``"flat"``) or approximate (``"hnsw"``, ``"ivf"``).

    Example::

        store = FaissVectorStore(dimension=32, metric="dotproduct", index="hnsw",
                                 hnsw=HnswParams(m=32, ef_search=128))
        store.upsert(["1", "2"], vectors, metadata=[{"genre": "comedy"}, {"genre": "drama"}])
        result = store.query(user_vectors, top_k=50, filter={"genre": "comedy"})

    Args:
        dimension: vector length d.
        metric: ``"dotproduct"`` (default), ``"cosine"`` or ``"euclidean"``;
            scores are higher-is-better for all three.
        index: ``"flat"`` (exact, default), ``"hnsw"`` or ``"ivf"``.
        hnsw: parameters for ``index="hnsw"`` (defaults when None).
        ivf: parameters for ``index="ivf"`` (defaults when None).

    Raises:
        InvalidInputError: bad dimension or metric, an unknown index kind, or
            parameters given for an index kind that was not chosen.
        MissingDependencyError: faiss-cpu is not installed.
    """

    supports_persistence = True
    returns_values = True
    concurrent_writes = True

    def __init__(
        self,
        *,
        dimension: int,
        metric: Metric = "dotproduct",
        index: IndexKind = "flat",
        hnsw: HnswParams | None = None,
        ivf: IvfParams | None = None,
    ) -> None:
        check_store_config(dimension, metric)
        if index not in _INDEX_KINDS:
            raise InvalidInputError(f"index must be one of {_INDEX_KINDS}, got {index!r}")
        if hnsw is not None and index != "hnsw":
            raise InvalidInputError(f"hnsw parameters were given but index={index!r}")
        if ivf is not None and index != "ivf":
            raise InvalidInputError(f"ivf parameters were given but index={index!r}")
        if hnsw is not None and not isinstance(hnsw, HnswParams):
            raise InvalidInputError(f"hnsw must be HnswParams, got {type(hnsw).__name__}")
        if ivf is not None and not isinstance(ivf, IvfParams):
            raise InvalidInputError(f"ivf must be IvfParams, got {type(ivf).__name__}")
        self._faiss = _faiss()
        self._dimension = int(dimension)
        self._metric: Metric = metric
        self._kind: IndexKind = index
        self._hnsw = (hnsw or HnswParams()) if index == "hnsw" else None
        self._ivf = (ivf or IvfParams()) if index == "ivf" else None
        self._vectors = np.empty((0, self._dimension), dtype=np.float32)
        self._slot_ids = np.empty(0, dtype=object)
        self._alive = np.zeros(0, dtype=np.bool_)
        self._metadata: list[Metadata] = []
        self._n_slots = 0
        self._slot_of: dict[str, int] = {}
        self._exact_fallbacks = 0
        self._index: Any = self._new_index()
        self._lock = ReadWriteLock()

    # ------------------------------------------------------------------ facts

    def __repr__(self) -> str:
        return (
            f"FaissVectorStore(dimension={self._dimension}, metric={self._metric!r}, "
            f"index={self._kind!r}, count={len(self._slot_of)})"
        )

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def dimension(self) -> int:
        """Vector dimension d."""
        return self._dimension

    @property
    def metric(self) -> Metric:
        """The similarity ranked by (scores are higher-is-better)."""
        return self._metric

    @property
    def index_kind(self) -> IndexKind:
        """``"flat"``, ``"hnsw"`` or ``"ivf"``."""
        return self._kind

    @property
    def is_exact(self) -> bool:
        """True for ``"flat"``; HNSW and IVF are approximate."""
        return self._kind == "flat"

    @property
    def is_trained(self) -> bool:
        """False for an IVF index that has not yet seen enough vectors to train."""
        return bool(self._index.is_trained)

    def describe(self) -> StoreStats:
        """Dimension, metric, count, and index details.

        ``details`` holds ``index`` (kind), ``faiss_index`` (FAISS class),
        ``trained``, ``tombstones`` (HNSW vectors hidden but not yet removed),
        ``exact_fallbacks`` (queries answered exactly because the index found
        too few matches) and the index parameters.
        """
        with self._lock.reading():
            return self._describe()

    def _describe(self) -> StoreStats:
        inner = self._faiss.downcast_index(self._index.index) if self._kind != "ivf" else self._index
        details: dict[str, object] = {
            "index": self._kind,
            "faiss_index": type(inner).__name__,
            "trained": self.is_trained,
            "tombstones": int(self._index.ntotal) - len(self._slot_of) if self._kind == "hnsw" else 0,
            "exact_fallbacks": self._exact_fallbacks,
        }
        if self._hnsw is not None:
            details["hnsw"] = asdict(self._hnsw)
        if self._ivf is not None:
            details["ivf"] = asdict(self._ivf)
        return StoreStats(
            dimension=self._dimension,
            metric=self._metric,
            count=len(self._slot_of),
            backend="faiss",
            details=details,
        )

    # ------------------------------------------------------------------ index

    def _metric_code(self) -> int:
        """FAISS's metric: L2 for euclidean; inner product for dot product and (normalised) cosine."""
        return int(self._faiss.METRIC_L2 if self._metric == "euclidean" else self._faiss.METRIC_INNER_PRODUCT)

    def _new_index(self) -> Any:
        """An empty FAISS index; labels are slot numbers."""
        faiss = self._faiss
        metric = self._metric_code()
        d = self._dimension
        with _faiss_errors("create an index"):
            if self._kind == "flat":
                return faiss.IndexIDMap(faiss.IndexFlat(d, metric))
            if self._kind == "hnsw":
                assert self._hnsw is not None
                graph = faiss.IndexHNSWFlat(d, self._hnsw.m, metric)
                graph.hnsw.efConstruction = self._hnsw.ef_construction
                graph.hnsw.efSearch = self._hnsw.ef_search
                return faiss.IndexIDMap(graph)
            assert self._ivf is not None
            quantizer = faiss.IndexFlat(d, metric)
            # IndexIVFFlat keeps a Python reference to its quantizer.
            return faiss.IndexIVFFlat(quantizer, d, self._ivf.nlist, metric)

    def _empty_index(self) -> Any:
        """An empty index ready for ``add``: for a trained IVF, a copy of its trained centroids.

        Building a fresh index (instead of resetting the current one) keeps
        the current index intact until its replacement is complete.
        """
        if self._ivf is None or not self._index_is_live():
            return self._new_index()
        faiss = self._faiss
        metric = self._metric_code()
        with _faiss_errors("copy the IVF centroids"):
            quantizer = faiss.clone_index(self._index.quantizer)
            # A trained quantizer holding nlist centroids makes the new IVF index trained.
            return faiss.IndexIVFFlat(quantizer, self._dimension, self._ivf.nlist, metric)

    def _for_index(self, vectors: FloatMatrix) -> FloatMatrix:
        """What FAISS holds and is queried with: unit rows for cosine, else as given."""
        return normalize_rows(vectors) if self._metric == "cosine" else vectors

    def _index_is_live(self) -> bool:
        """False only for an IVF index still waiting for enough vectors to train."""
        return bool(self._index.is_trained)

    def _search_params(self, selector: Any | None) -> Any:
        faiss = self._faiss
        if self._kind == "hnsw":
            assert self._hnsw is not None
            params = faiss.SearchParametersHNSW(efSearch=self._hnsw.ef_search)
        elif self._kind == "ivf":
            assert self._ivf is not None
            params = faiss.SearchParametersIVF(nprobe=self._ivf.probes)
        elif selector is None:
            return None  # a flat index needs no parameters; skips building a SWIG object per query
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    # ------------------------------------------------------------------ writes

    def _reserve(self, extra: int) -> None:
        """Grow the side table (amortised doubling) to hold ``extra`` more slots."""
        needed = self._n_slots + extra
        capacity = self._alive.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 64)
        vectors = np.empty((new_capacity, self._dimension), dtype=np.float32)
        vectors[: self._n_slots] = self._vectors[: self._n_slots]
        slot_ids = np.full(new_capacity, "", dtype=object)
        slot_ids[: self._n_slots] = self._slot_ids[: self._n_slots]
        alive = np.zeros(new_capacity, dtype=np.bool_)
        alive[: self._n_slots] = self._alive[: self._n_slots]
        self._vectors, self._slot_ids, self._alive = vectors, slot_ids, alive

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite vectors; see :meth:`two_stage_rec.VectorStore.upsert`.

        The whole batch is validated before anything is written. Overwriting
        an id replaces its vector and its metadata (``None`` clears it).

        Args:
            ids: n unique, non-empty string ids.
            vectors: array-like (n, dimension), converted to float32.
            metadata: n mappings, or None.

        Returns:
            n, the number of vectors written.

        Raises:
            InvalidInputError: (a subclass of) for any invalid input; nothing is written.
            StoreError: FAISS failed; nothing is written.
        """
        id_list, matrix, metadata_copies = check_upsert(ids, vectors, metadata, self._dimension)
        with self._lock.writing():
            written = self._upsert(id_list, matrix, metadata_copies)
        # Outside the lock: train() takes it itself (it is not reentrant).
        self._maybe_train()
        return written

    def _upsert(self, id_list: list[str], matrix: FloatMatrix, metadata_copies: Sequence[Metadata] | None) -> int:
        n = len(id_list)
        old_slots = np.fromiter((self._slot_of.get(i, -1) for i in id_list), dtype=np.int64, count=n)
        existing = old_slots >= 0
        # HNSW cannot remove a node, so an overwritten id moves to a new slot
        # and its old slot becomes a tombstone; flat and IVF reuse the slot.
        fresh = np.ones(n, dtype=np.bool_) if self._kind == "hnsw" else ~existing
        slots = old_slots.copy()
        slots[fresh] = np.arange(self._n_slots, self._n_slots + int(fresh.sum()), dtype=np.int64)
        if self._index_is_live():
            try:
                with _faiss_errors("write vectors"):
                    if self._kind != "hnsw" and existing.any():
                        self._index.remove_ids(old_slots[existing])
                    self._index.add_with_ids(self._for_index(matrix), slots)
            except StoreError:
                self._rebuild_index()  # undo a half-applied remove/add from the unchanged side table
                raise
        self._reserve(int(fresh.sum()))
        if self._kind == "hnsw":
            self._retire(old_slots[existing])
        self._vectors[slots] = matrix
        self._slot_ids[slots] = np.array(id_list, dtype=object)
        self._alive[slots] = True
        self._metadata.extend(_EMPTY_METADATA for _ in range(int(fresh.sum())))
        for position, slot in enumerate(slots.tolist()):
            self._metadata[slot] = metadata_copies[position] if metadata_copies is not None else _EMPTY_METADATA
        self._n_slots += int(fresh.sum())
        self._slot_of.update(zip(id_list, slots.tolist(), strict=True))
        self._maybe_compact()
        return n

    def _retire(self, slots: npt.NDArray[np.int64]) -> None:
        """Mark slots dead in the side table (their vectors are already out of FAISS, or tombstoned)."""
        self._alive[slots] = False
        self._slot_ids[slots] = ""
        for slot in slots.tolist():
            self._metadata[slot] = _EMPTY_METADATA

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ids; ids that are not stored are ignored.

        Raises:
            InvalidIdError: an id is not a non-empty string.
            StoreError: FAISS failed; nothing is deleted.
        """
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        with self._lock.writing():
            self._delete(id_list)

    def _delete(self, id_list: list[str]) -> None:
        doomed = sorted({self._slot_of[i] for i in id_list if i in self._slot_of})
        if not doomed:
            return
        slots = np.array(doomed, dtype=np.int64)
        if self._kind != "hnsw" and self._index_is_live():
            with _faiss_errors("delete vectors"):
                self._index.remove_ids(slots)
        for item_id in self._slot_ids[slots].tolist():
            del self._slot_of[item_id]
        self._retire(slots)
        self._maybe_compact()

    def _live_slots(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self._alive[: self._n_slots]).astype(np.int64)

    def _maybe_train(self) -> None:
        if self._ivf is None or self._index_is_live() or len(self._slot_of) < self._ivf.train_threshold:
            return
        try:
            self.train()
        except StoreError as exc:
            raise StoreError(
                f"the batch was written, but training the IVF index failed ({exc}); "
                "queries stay exact until train() succeeds"
            ) from exc

    def train(self) -> None:
        """Train (or retrain) the IVF quantizer on the stored vectors and re-index them all.

        Called automatically once the store first holds
        ``IvfParams.min_train_size`` vectors; call it again yourself after
        the data has drifted. Uses a seeded sample of at most
        ``IvfParams.max_train_size`` vectors.

        Raises:
            InvalidInputError: the index is not IVF, or the store holds fewer
                vectors than ``nlist``.
            StoreError: FAISS failed; the previous index is kept.
        """
        with self._lock.writing():
            self._train()

    def _train(self) -> None:
        if self._ivf is None:
            raise InvalidInputError(f"only an IVF index is trained; this one is {self._kind!r}")
        live = self._live_slots()
        if live.shape[0] < self._ivf.nlist:
            raise InvalidInputError(
                f"training needs at least nlist={self._ivf.nlist} vectors; the store holds {live.shape[0]}"
            )
        vectors = self._for_index(self._vectors[live])
        sample = vectors
        if vectors.shape[0] > self._ivf.train_sample_cap:
            chosen = np.random.default_rng(0).choice(vectors.shape[0], self._ivf.train_sample_cap, replace=False)
            sample = vectors[np.sort(chosen)]
        index = self._new_index()
        with _faiss_errors("train the IVF index"):
            index.train(sample)
            index.add_with_ids(vectors, live)
        self._index = index

    def _maybe_compact(self) -> None:
        dead = self._n_slots - len(self._slot_of)
        if dead >= _MIN_DEAD_TO_COMPACT and dead > len(self._slot_of):
            try:
                self._compact()
            except StoreError as exc:
                raise StoreError(
                    f"the write landed, but compacting the index afterwards failed ({exc}); "
                    "the store is still correct, only larger than needed"
                ) from exc

    def _compact(self) -> None:
        """Drop dead slots from the side table and re-add the live vectors under new labels.

        The new index is complete before anything is swapped, so a FAISS
        failure leaves the store as it was.
        """
        live = self._live_slots()
        index = self._indexed(live, labels=np.arange(live.shape[0], dtype=np.int64))
        self._vectors = self._vectors[live]
        self._slot_ids = self._slot_ids[live]
        self._alive = np.ones(live.shape[0], dtype=np.bool_)
        self._metadata = [self._metadata[s] for s in live.tolist()]
        self._n_slots = int(live.shape[0])
        self._slot_of = {item_id: slot for slot, item_id in enumerate(self._slot_ids.tolist())}
        self._index = index

    def _rebuild_index(self) -> None:
        """Make the FAISS index hold exactly the live side-table vectors, keeping IVF training."""
        live = self._live_slots()
        self._index = self._indexed(live, labels=live)

    def _indexed(self, slots: npt.NDArray[np.int64], *, labels: npt.NDArray[np.int64]) -> Any:
        """A new index holding the side-table vectors of ``slots`` under ``labels``."""
        index = self._empty_index()
        if slots.shape[0] and bool(index.is_trained):
            with _faiss_errors("rebuild the index"):
                index.add_with_ids(self._for_index(self._vectors[slots]), labels)
        return index

    # ------------------------------------------------------------------ reads

    def query(
        self,
        vectors: npt.ArrayLike,
        top_k: int,
        *,
        filter: Mapping[str, object] | None = None,
        include_values: bool = False,
        include_metadata: bool = False,
    ) -> QueryResult:
        """Find the ``top_k`` best matches per query; see :meth:`two_stage_rec.VectorStore.query`.

        Each row holds ``min(top_k, matching vectors)`` results, also on the
        approximate indexes: rows where FAISS finds fewer are answered by
        exact search over the matching vectors.

        Args:
            vectors: array-like (n, dimension) query vectors.
            top_k: matches wanted per query (>= 1).
            filter: Pinecone-language metadata filter, or None.
            include_values: return stored vectors (float32 (n, width, d), NaN pads).
            include_metadata: return stored metadata.

        Returns:
            A :class:`QueryResult`, scores descending, higher is better.

        Raises:
            InvalidInputError: bad query vectors or top_k.
            InvalidFilterError: the filter is malformed.
            StoreError: FAISS failed.
        """
        queries = as_query_matrix(vectors, self._dimension)
        k = check_top_k(top_k)
        with self._lock.reading():
            return self._query(queries, k, filter, include_values, include_metadata)

    def _query(
        self,
        queries: FloatMatrix,
        k: int,
        filter: Mapping[str, object] | None,
        include_values: bool,
        include_metadata: bool,
    ) -> QueryResult:
        allowed = self._alive[: self._n_slots]
        if filter is not None:
            allowed = allowed & filter_mask(filter, self._metadata)
            n_allowed = int(allowed.sum())
        else:
            n_allowed = len(self._slot_of)  # = allowed.sum(), without an O(slots) pass per query
        width = min(k, n_allowed)
        n = queries.shape[0]
        if width == 0:
            labels = np.full((n, 0), -1, dtype=np.int64)
            return self._result(labels, np.empty((n, 0), np.float32), include_values, include_metadata)
        restricted = n_allowed < int(self._index.ntotal)
        if not self._index_is_live() or (restricted and self._exact_is_cheaper(n_allowed, width)):
            labels, scores = self._exact(queries, allowed, width)
        else:
            labels, scores = self._search(queries, allowed, n_allowed, width)
        return self._result(labels, scores, include_values, include_metadata)

    def _exact_is_cheaper(self, n_allowed: int, k: int) -> bool:
        """Whether exact search over the ``n_allowed`` matching vectors beats the approximate index.

        Counted in distance computations per query: exact search costs
        ``n_allowed``. IVF scans ``nprobe / nlist`` of all vectors, matching or
        not. HNSW must expand about ``ef / s`` nodes of ``m`` neighbours each
        to collect ``ef`` matches when a fraction ``s`` of the vectors match,
        so exact wins when ``n_allowed * s <= ef * m``. A selective filter is
        then both faster and exact. (Flat indexes always use FAISS.)
        """
        total = max(int(self._index.ntotal), 1)
        if self._ivf is not None:
            return n_allowed * self._ivf.nlist <= total * self._ivf.probes
        if self._hnsw is not None:
            ef = max(self._hnsw.ef_search, k)
            return n_allowed * (n_allowed / total) <= ef * self._hnsw.m
        return False

    def _search(
        self,
        queries: FloatMatrix,
        allowed: npt.NDArray[np.bool_],
        n_allowed: int,
        width: int,
    ) -> tuple[npt.NDArray[np.int64], FloatMatrix]:
        """FAISS search restricted to allowed slots, exact fallback for short rows."""
        selector = None
        if n_allowed < int(self._index.ntotal):
            # A bitmap over labels (= slots): O(1) membership, built in numpy.
            selector = self._faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
        params = self._search_params(selector)
        with _faiss_errors("search"), _single_thread_if(self._faiss, queries.shape[0] == 1):
            distances, labels = self._index.search(self._for_index(queries), width, params=params)
        labels = labels.astype(np.int64, copy=False)
        found = labels >= 0
        scores = (-distances if self._metric == "euclidean" else distances).astype(np.float32, copy=False)
        if found.all():  # the usual case: every row full, nothing to pad or fall back on
            return labels, scores
        scores = np.where(found, scores, -np.inf).astype(np.float32, copy=False)
        short = np.flatnonzero(found.sum(axis=1) < width)
        if short.size:
            self._exact_fallbacks += int(short.size)
            labels[short], scores[short] = self._exact(queries[short], allowed, width)
        return labels, scores

    def _exact(
        self, queries: FloatMatrix, allowed: npt.NDArray[np.bool_], width: int
    ) -> tuple[npt.NDArray[np.int64], FloatMatrix]:
        """Exact top-``width`` over the allowed slots, in numpy."""
        candidates = np.flatnonzero(allowed)
        scores = exact_scores(queries, self._vectors[candidates], self._metric)
        columns, top, _ = top_k_rows(scores, width)
        labels = np.where(columns >= 0, candidates[np.maximum(columns, 0)], -1).astype(np.int64)
        return labels, top

    def _result(
        self,
        labels: npt.NDArray[np.int64],
        scores: FloatMatrix,
        include_values: bool,
        include_metadata: bool,
    ) -> QueryResult:
        # Labels are side-table slots, so the result is gathered from the side table.
        return QueryResult.from_positions(
            labels,
            scores,
            ids=self._slot_ids,
            vectors=self._vectors if include_values else None,
            metadata=self._metadata if include_metadata else None,
        )

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Stored vectors (as given, float32 (found, d)) and metadata; unknown ids go to ``missing``."""
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        with self._lock.reading():
            found = [i for i in id_list if i in self._slot_of]
            slots = np.array([self._slot_of[i] for i in found], dtype=np.int64)
            return FetchResult(
                ids=found,
                vectors=self._vectors[slots].copy() if found else np.empty((0, self._dimension), np.float32),
                metadata=[dict(self._metadata[s]) for s in slots.tolist()],
                missing=[i for i in id_list if i not in self._slot_of],
            )

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to a directory, atomically; no pickle.

        Layout: ``path/CURRENT`` (JSON naming the live snapshot) and
        ``path/snapshot-<hex>/`` holding ``index.faiss`` (``faiss.write_index``),
        ``vectors.npz`` (ids, vectors, live mask) and ``store.json`` (config
        and metadata). A snapshot is written into a temporary directory inside
        ``path``, fsynced and renamed; then ``CURRENT`` is replaced atomically
        (``two_stage_rec._atomic``). No rename atomically replaces a non-empty
        directory, hence versions side by side and a pointer file rather than
        a directory swap: a crash at any moment leaves ``CURRENT`` naming a
        complete snapshot, the old one or the new one, and a reader never finds
        the store missing. Older snapshots are removed after the switch.

        Args:
            path: directory to save to; created if missing. An existing
                directory must be empty or a previous save.

        Returns:
            The directory, as a Path.

        Raises:
            PersistenceError: the directory is not usable or writing failed;
                a previous save there is left intact.
        """
        target = Path(path)
        try:
            target.mkdir(parents=True, exist_ok=True)
            if not (target / _POINTER).is_file() and any(target.iterdir()):
                raise PersistenceError(
                    f"{target} is neither empty nor a saved FaissVectorStore; refusing to write into it"
                )
            staging = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=target))
        except OSError as exc:
            raise PersistenceError(f"cannot save FaissVectorStore to {target}: {exc}") from exc
        snapshot = target / f"{_SNAPSHOT_PREFIX}{uuid.uuid4().hex}"
        try:
            self._write_snapshot(staging)
            fsync_tree(staging)
            os.rename(staging, snapshot)
            fsync_directory(target)
            pointer = {"format": _FORMAT, "version": _FORMAT_VERSION, "snapshot": snapshot.name}
            write_atomically(target / _POINTER, json.dumps(pointer).encode(), prefix=_TEMP_PREFIX)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if _current_snapshot_name(target) != snapshot.name:
                shutil.rmtree(snapshot, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, PersistenceError):
                raise PersistenceError(f"cannot save FaissVectorStore to {target}: {exc}") from exc
            raise
        for entry in target.iterdir():
            stale = entry.name.startswith((_SNAPSHOT_PREFIX, _TEMP_PREFIX)) and entry.name != snapshot.name
            if stale and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
        return target

    def _write_snapshot(self, directory: Path) -> None:
        live = self._alive[: self._n_slots]
        with _faiss_errors("write the index"):
            self._faiss.write_index(self._index, str(directory / "index.faiss"))
        with open(directory / "vectors.npz", "wb") as handle:
            np.savez(
                handle,
                ids=np.array(self._slot_ids[: self._n_slots].tolist(), dtype=np.str_),
                vectors=self._vectors[: self._n_slots],
                alive=live,
            )
        config = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "dimension": self._dimension,
            "metric": self._metric,
            "index": self._kind,
            "hnsw": asdict(self._hnsw) if self._hnsw is not None else None,
            "ivf": asdict(self._ivf) if self._ivf is not None else None,
            "count": len(self._slot_of),
            "metadata": [dict(m) for m in self._metadata[: self._n_slots]],
        }
        (directory / "store.json").write_bytes(json.dumps(config).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaissVectorStore:
        """Load a store written by :meth:`save`.

        Raises:
            PersistenceError: the directory is missing, not a saved store,
                from an unknown format version, or corrupt.
            MissingDependencyError: faiss-cpu is not installed.
        """
        target = Path(path)
        try:
            return cls._load(target)
        except PersistenceError:
            raise
        except ImportError:
            raise  # MissingDependencyError: faiss-cpu is not installed, the files may be fine
        except Exception as exc:  # any failure to read the files means a corrupt save
            raise PersistenceError(f"cannot load FaissVectorStore from {target}: {exc}") from exc

    @classmethod
    def _load(cls, target: Path) -> FaissVectorStore:
        if not target.is_dir():
            raise PersistenceError(f"{target} is not a directory")
        name = _current_snapshot_name(target)
        if name is None:
            raise PersistenceError(f"{target} holds no {_POINTER} file; it is not a saved FaissVectorStore")
        snapshot = target / name
        config = json.loads((snapshot / "store.json").read_text(encoding="utf-8"))
        if config.get("format") != _FORMAT or config.get("version") != _FORMAT_VERSION:
            raise PersistenceError(f"{snapshot} has format {config.get('format')!r} v{config.get('version')!r}")
        store = cls(
            dimension=config["dimension"],
            metric=config["metric"],
            index=config["index"],
            hnsw=HnswParams(**config["hnsw"]) if config["hnsw"] is not None else None,
            ivf=IvfParams(**config["ivf"]) if config["ivf"] is not None else None,
        )
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(snapshot / "vectors.npz", "rb") as handle, np.load(handle, allow_pickle=False) as arrays:
            ids = arrays["ids"]
            vectors = np.ascontiguousarray(arrays["vectors"], dtype=np.float32)
            alive = arrays["alive"].astype(np.bool_)
        metadata = config["metadata"]
        n_slots = ids.shape[0]
        if vectors.shape != (n_slots, store.dimension) or alive.shape != (n_slots,) or len(metadata) != n_slots:
            raise PersistenceError(f"{snapshot}: ids, vectors, live mask and metadata disagree in length")
        live_ids = ids[alive].tolist()
        if int(alive.sum()) != config["count"] or len(set(live_ids)) != len(live_ids) or "" in live_ids:
            raise PersistenceError(f"{snapshot}: the stored ids are inconsistent")
        live_metadata = check_metadata(live_ids, [metadata[i] for i in np.flatnonzero(alive).tolist()])
        with _faiss_errors("read the index"):
            index = store._faiss.read_index(str(snapshot / "index.faiss"))
        if _index_layout(store._faiss, index) != (store._kind, store._metric_code()):
            raise PersistenceError(f"{snapshot}: index.faiss is not a {store._kind!r} {store._metric!r} index")
        # HNSW may also hold tombstones, at most one per dead slot.
        total, count = int(index.ntotal), int(alive.sum())
        consistent = count <= total <= n_slots if store._kind == "hnsw" else total == count
        if index.d != store.dimension or (index.is_trained and not consistent):
            raise PersistenceError(f"{snapshot}: index.faiss does not match the stored vectors")
        store._restore(index, ids, vectors, alive, live_metadata or [])
        return store

    def _restore(
        self,
        index: Any,
        ids: npt.NDArray[np.str_],
        vectors: FloatMatrix,
        alive: npt.NDArray[np.bool_],
        live_metadata: list[dict[str, MetadataValue]],
    ) -> None:
        self._index = index
        self._n_slots = int(ids.shape[0])
        self._vectors = vectors
        self._slot_ids = np.array(ids.tolist(), dtype=object)
        self._slot_ids[~alive] = ""
        self._alive = alive
        live = np.flatnonzero(alive).tolist()
        self._metadata = [_EMPTY_METADATA] * self._n_slots
        for slot, entry in zip(live, live_metadata, strict=True):
            self._metadata[slot] = entry
        self._slot_of = {str(self._slot_ids[slot]): slot for slot in live}


def _index_layout(faiss: Any, index: Any) -> tuple[str, int] | None:
    """(index kind, metric code) of a FAISS index as this module builds them, else None."""
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf", int(index.metric_type)
    if isinstance(index, faiss.IndexIDMap):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw", int(inner.metric_type)
        if isinstance(inner, faiss.IndexFlat):
            return "flat", int(inner.metric_type)
    return None


def _current_snapshot_name(target: Path) -> str | None:
    """The snapshot directory CURRENT names, or None when there is no readable pointer."""
    try:
        pointer = json.loads((target / _POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = pointer.get("snapshot") if isinstance(pointer, dict) else None
    if not isinstance(name, str) or not name.startswith(_SNAPSHOT_PREFIX) or "/" in name or "\\" in name:
        return None
    return name
