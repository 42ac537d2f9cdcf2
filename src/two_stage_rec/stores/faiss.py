"""A vector store on FAISS: exact flat, HNSW or IVF indexes (or ``"auto"``, flat
that becomes IVF past a measured size) with string ids, metadata filters and
atomic, pickle-free save/load.

How it is built (and why):

* **One copy of the vectors.** The vectors live in the FAISS index only; the
  store keeps ids, a live mask, metadata (and, for cosine, each vector's
  norm) in numpy "slots". A vector's FAISS label is its slot number, so
  results become string ids with one ``numpy.take``. ``fetch`` and
  ``include_values`` reconstruct vectors from the index (``IndexIDMap2``
  over flat and HNSW, an IVF with a hash-table direct map), which is exact
  for dot product and euclidean and within two float32 roundings of the
  vector as given for cosine (FAISS holds unit rows; the store multiplies
  back by the norm). An earlier version kept a second copy in numpy, with
  capacity doubling: about 2.5 times the raw vectors (docs/benchmarks.md).
* **Inner product as L2 on IVF.** For dot product, an IVF index holds each
  item with one extra coordinate ``sqrt(M² - ‖x‖²)`` (queries get 0): every
  item then has norm ``M`` and L2 order equals inner-product order exactly,
  so k-means cells (which are L2 cells) suit the search. Returned scores are
  recomputed as true inner products from the stored vectors. ``M`` is set
  with headroom when the index is trained; an upsert of a longer vector
  retrains with a new bound. See :mod:`two_stage_rec.stores._faiss_space`.
* **Overwrite and delete.** Flat and IVF indexes remove vectors for real
  (``remove_ids``) and an overwritten id keeps its slot. HNSW graphs cannot
  remove nodes, so a deleted or overwritten vector becomes a *tombstone*: it
  stays in the graph but an ID selector hides it from every search. When
  tombstones outnumber live vectors the graph is rebuilt from the vectors it
  holds (amortised O(1) rebuild work per write, at the cost of one slow write
  now and then). Flat and IVF leave empty slots, compacted by the same rule.
* **Filters.** The filter (Pinecone filter language, see
  :mod:`two_stage_rec.filters`) is evaluated on a columnar copy of the
  metadata (:mod:`two_stage_rec.stores._faiss_columns`, kept in step with
  every write) into a bitmap of allowed slots, and FAISS searches with that
  bitmap as an ID selector, so a filtered query is not a post-filter. If an
  approximate index still finds fewer than ``min(top_k, matches)`` for a
  query (a selective filter on HNSW, or IVF lists too few to probe), that
  query is answered by exact search over the matching vectors instead.
  ``describe()`` counts these fallbacks. On HNSW and IVF, a filter selective
  enough that exact search over its matches costs fewer distance
  computations than the index would (a simple cost model, see
  ``_exact_is_cheaper``) skips the index altogether: faster, and exact.
* **IVF training, and ``"auto"``.** An IVF index must be trained before it can
  hold vectors. Until the store holds ``IvfParams.min_train_size`` vectors it
  keeps them in a flat (exact) FAISS index, and ``is_exact`` is True. The
  first write that reaches that size trains the coarse quantizer on (a
  sample of at most ``max_train_size`` of) the stored vectors and the batch,
  and puts them all into the IVF index, once (a failure writes nothing).
  Later writes never retrain on their own
  (except to raise the norm bound); call :meth:`FaissVectorStore.train` after
  the data has drifted. ``index="auto"`` (the default) is this with the
  measured :data:`AUTO_IVF`: exact up to 100,000 vectors, then IVF with 1024
  cells and 32 probes (at 1M clustered items: recall@50 0.98 at 0.35 ms
  p50 per query, docs/benchmarks.md). A store never goes back to flat.

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
from two_stage_rec.scoring import exact_scores, top_k_rows
from two_stage_rec.stores._faiss_columns import MetadataColumns
from two_stage_rec.stores._faiss_space import NORM_HEADROOM, IndexSpace, row_norms
from two_stage_rec.stores.memory import ReadWriteLock, check_store_config
from two_stage_rec.types import FetchResult, FloatMatrix, Metadata, MetadataValue, Metric, QueryResult, StoreStats
from two_stage_rec.validation import as_query_matrix, check_ids, check_metadata, check_top_k, check_upsert

__all__ = ["AUTO_IVF", "FaissVectorStore", "HnswParams", "IndexKind", "IvfParams"]

IndexKind: TypeAlias = Literal["auto", "flat", "hnsw", "ivf"]
"""``"auto"``: flat (exact) while small, IVF past a size threshold (:data:`AUTO_IVF`).
``"flat"``: exact brute force. ``"hnsw"``: graph, approximate, fast. ``"ivf"``:
inverted lists over k-means cells, approximate, needs training (exact until then)."""

_Layout: TypeAlias = Literal["flat", "hnsw", "ivf"]

_INDEX_KINDS: Final[tuple[IndexKind, ...]] = ("auto", "flat", "hnsw", "ivf")
_FORMAT: Final = "two_stage_rec.FaissVectorStore"
_FORMAT_VERSION: Final = 2
_READABLE_VERSIONS: Final = (1, 2)
_POINTER: Final = "CURRENT"
_SNAPSHOT_PREFIX: Final = "snapshot-"
_TEMP_PREFIX: Final = ".tmp-"
# Compact (and, for HNSW, rebuild the graph) once dead slots outnumber live
# ones; below this many dead slots a rebuild is not worth its cost.
_MIN_DEAD_TO_COMPACT: Final = 16
_EMPTY_METADATA: Metadata = {}
# Looking a vector up by label in an IVF index (hash table, then its list) costs
# about this many list entries scanned by a filtered IVF search: measured on 200k
# items, 0.67 µs per looked-up vector against 9 ns per scanned entry.
_IVF_LOOKUP_COST: Final = 64


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
    """Parameters of an IVF index (``index="ivf"`` or ``"auto"``) and its training policy.

    The coarse quantizer is flat (exact over the ``nlist`` centroids): at
    nlist 1024 it costs about 10 µs per query, and an HNSW quantizer measured
    lower recall at the same probes (docs/benchmarks.md).

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


AUTO_IVF: Final = IvfParams(nlist=1024, nprobe=32, min_train_size=100_000, max_train_size=65_536)
"""What ``index="auto"`` uses (measured on the clustered catalogues of
``benchmarks/scale.py``, 32-d, dot product, one query, one thread; docs/benchmarks.md):

* exact flat search until the store holds 100,000 vectors: a flat query
  costs about 0.4 ms there and grows linearly (0.84 ms at 200k, 10-18 ms at
  1M through the store), while IVF answers in about 0.04 ms at recall@50 0.99;
* then IVF with 1024 cells, 32 probed: at 1M items recall@50 0.978 at
  0.35 ms p50 through the store (0.19 ms in FAISS alone); 16 probes gave
  0.959, 64 gave 0.992 at 0.61 ms (``benchmarks/results/scale_million.json``);
* k-means on a sample of 65,536 vectors (64 per cell), which keeps the one
  slow write that trains the index to seconds."""


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
    """A vector store on a FAISS index: ``"auto"`` (default), ``"flat"``, ``"hnsw"`` or ``"ivf"``.

    Example::

        store = FaissVectorStore(dimension=32, metric="dotproduct", index="hnsw",
                                 hnsw=HnswParams(m=32, ef_search=128))
        store.upsert(["1", "2"], vectors, metadata=[{"genre": "comedy"}, {"genre": "drama"}])
        result = store.query(user_vectors, top_k=50, filter={"genre": "comedy"})

    Args:
        dimension: vector length d.
        metric: ``"dotproduct"`` (default), ``"cosine"`` or ``"euclidean"``;
            scores are higher-is-better for all three.
        index: ``"auto"`` (default: exact flat search up to
            ``AUTO_IVF.min_train_size`` = 100,000 vectors, then IVF trained
            once, see :data:`AUTO_IVF`), ``"flat"`` (always exact), ``"hnsw"``
            or ``"ivf"``.
        hnsw: parameters for ``index="hnsw"`` (defaults when None).
        ivf: parameters for ``index="ivf"`` (:class:`IvfParams` defaults when
            None) or ``index="auto"`` (:data:`AUTO_IVF` when None; its
            ``min_train_size`` is the size at which the store turns to IVF).

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
        index: IndexKind = "auto",
        hnsw: HnswParams | None = None,
        ivf: IvfParams | None = None,
    ) -> None:
        check_store_config(dimension, metric)
        if index not in _INDEX_KINDS:
            raise InvalidInputError(f"index must be one of {_INDEX_KINDS}, got {index!r}")
        if hnsw is not None and index != "hnsw":
            raise InvalidInputError(f"hnsw parameters were given but index={index!r}")
        if ivf is not None and index not in ("ivf", "auto"):
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
        self._ivf: IvfParams | None = None
        if index == "ivf":
            self._ivf = ivf or IvfParams()
        elif index == "auto":
            self._ivf = ivf or AUTO_IVF
        # IVF (and auto) stores hold their vectors in a flat index until they are trained.
        self._layout: _Layout = "hnsw" if index == "hnsw" else "flat"
        self._space = IndexSpace(metric, self._dimension)
        self._slot_ids = np.empty(0, dtype=object)
        self._alive = np.zeros(0, dtype=np.bool_)
        # Cosine: FAISS holds unit rows; the norms give back the vectors as given.
        self._norms: npt.NDArray[np.float32] | None = np.zeros(0, np.float32) if metric == "cosine" else None
        self._metadata: list[Metadata] = []
        self._columns = MetadataColumns()
        self._n_slots = 0
        self._slot_of: dict[str, int] = {}
        self._exact_fallbacks = 0
        self._index: Any = self._new_index(self._layout, self._space)
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
        """The index kind asked for: ``"auto"``, ``"flat"``, ``"hnsw"`` or ``"ivf"``."""
        return self._kind

    @property
    def layout(self) -> Literal["flat", "hnsw", "ivf"]:
        """The FAISS index in use now: ``"flat"`` (also for ``"auto"`` and ``"ivf"``
        stores not yet trained), ``"hnsw"`` or ``"ivf"``."""
        return self._layout

    @property
    def is_exact(self) -> bool:
        """True while the store searches a flat index: ``"flat"``, and ``"auto"``/``"ivf"`` until trained."""
        return self._layout == "flat"

    @property
    def is_trained(self) -> bool:
        """False for an ``"ivf"`` or ``"auto"`` store that has not turned to IVF yet."""
        return self._ivf is None or self._layout == "ivf"

    def describe(self) -> StoreStats:
        """Dimension, metric, count, and index details.

        ``details`` holds ``index`` (the kind asked for), ``layout`` (the
        FAISS index in use), ``faiss_index`` (its FAISS class), ``trained``,
        ``tombstones`` (HNSW vectors hidden but not yet removed),
        ``exact_fallbacks`` (queries answered exactly because the index found
        too few matches), ``norm_bound`` (``M`` of an inner-product-as-L2
        IVF index, else None) and the index parameters.
        """
        with self._lock.reading():
            return self._describe()

    def _describe(self) -> StoreStats:
        inner = self._faiss.downcast_index(self._index.index) if self._layout != "ivf" else self._index
        details: dict[str, object] = {
            "index": self._kind,
            "layout": self._layout,
            "faiss_index": type(inner).__name__,
            "trained": self.is_trained,
            "tombstones": int(self._index.ntotal) - len(self._slot_of) if self._layout == "hnsw" else 0,
            "exact_fallbacks": self._exact_fallbacks,
            "norm_bound": self._space.norm_bound,
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

    def _metric_code(self, space: IndexSpace) -> int:
        """FAISS's metric: L2 for euclidean and augmented spaces; inner product otherwise."""
        return int(self._faiss.METRIC_L2 if space.uses_l2 else self._faiss.METRIC_INNER_PRODUCT)

    def _new_index(self, layout: _Layout, space: IndexSpace) -> Any:
        """An empty FAISS index whose labels are slot numbers and which can reconstruct by label."""
        faiss = self._faiss
        metric = self._metric_code(space)
        d = space.index_dimension
        with _faiss_errors("create an index"):
            if layout == "flat":
                return faiss.IndexIDMap2(faiss.IndexFlat(d, metric))
            if layout == "hnsw":
                assert self._hnsw is not None
                graph = faiss.IndexHNSWFlat(d, self._hnsw.m, metric)
                graph.hnsw.efConstruction = self._hnsw.ef_construction
                graph.hnsw.efSearch = self._hnsw.ef_search
                return faiss.IndexIDMap2(graph)
            assert self._ivf is not None
            # IndexIVFFlat keeps a Python reference to its quantizer.
            return self._ivf_index(faiss.IndexFlat(d, metric), space)

    def _ivf_index(self, quantizer: Any, space: IndexSpace) -> Any:
        assert self._ivf is not None
        faiss = self._faiss
        index = faiss.IndexIVFFlat(quantizer, space.index_dimension, self._ivf.nlist, self._metric_code(space))
        # A hash table from label to (list, offset): reconstruct by label, remove_ids still allowed.
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index

    def _empty_index(self) -> Any:
        """An empty index of the current layout and space; for IVF, with a copy of the trained centroids.

        Building a fresh index (instead of resetting the current one) keeps
        the current index intact until its replacement is complete.
        """
        if self._layout != "ivf":
            return self._new_index(self._layout, self._space)
        with _faiss_errors("copy the IVF centroids"):
            # A trained quantizer holding nlist centroids makes the new IVF index trained.
            return self._ivf_index(self._faiss.clone_index(self._index.quantizer), self._space)

    def _stored(self, slots: npt.NDArray[np.int64]) -> FloatMatrix:
        """float32 (len(slots), index_dimension): the vectors FAISS holds under these labels."""
        if slots.shape[0] == 0:
            return np.empty((0, self._space.index_dimension), dtype=np.float32)
        with _faiss_errors("reconstruct vectors"):
            stored: FloatMatrix = self._index.reconstruct_batch(np.ascontiguousarray(slots, dtype=np.int64))
        return stored

    def _gather(self, slots: npt.NDArray[np.int64]) -> FloatMatrix:
        """float32 (len(slots), d): the vectors of live slots, as they were upserted."""
        norms = self._norms[slots] if self._norms is not None else None
        return self._space.given(self._stored(slots), norms)

    def _search_params(self, selector: Any | None, matching: float = 1.0) -> Any:
        """FAISS search parameters; ``matching`` is the fraction of indexed vectors the selector lets through."""
        faiss = self._faiss
        if self._layout == "hnsw":
            assert self._hnsw is not None
            params = faiss.SearchParametersHNSW(efSearch=self._hnsw.ef_search)
        elif self._layout == "ivf":
            assert self._ivf is not None
            params = faiss.SearchParametersIVF(nprobe=self._ivf_probes(matching))
        elif selector is None:
            return None  # a flat index needs no parameters; skips building a SWIG object per query
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _ivf_probes(self, matching: float) -> int:
        """Cells to probe when a fraction ``matching`` of the vectors passes the filter.

        ``nprobe / sqrt(matching)``, at most every cell. A filter leaves fewer
        matching vectors in each probed cell, so a filtered query needs more
        cells for the same recall; vectors the filter rejects cost one bitmap
        test each, not a distance. Measured on 200k clustered items, a filter
        matching 5% with 1024 cells: 32 probes gave recall@50 0.92 (0.05 ms),
        ``32 / sqrt(0.05)`` = 143 probes 0.995 (0.17 ms), and ``32 / 0.05``
        = 640 probes 1.0 (1.17 ms).
        """
        assert self._ivf is not None
        probes = self._ivf.probes
        if matching >= 1.0:
            return probes
        return min(self._ivf.nlist, int(np.ceil(probes / np.sqrt(max(matching, 1e-12)))))

    # ------------------------------------------------------------------ writes

    def _reserve(self, extra: int) -> None:
        """Grow the slot tables (amortised doubling) to hold ``extra`` more slots."""
        needed = self._n_slots + extra
        capacity = self._alive.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 64)
        slot_ids = np.full(new_capacity, "", dtype=object)
        slot_ids[: self._n_slots] = self._slot_ids[: self._n_slots]
        alive = np.zeros(new_capacity, dtype=np.bool_)
        alive[: self._n_slots] = self._alive[: self._n_slots]
        if self._norms is not None:
            norms = np.zeros(new_capacity, dtype=np.float32)
            norms[: self._n_slots] = self._norms[: self._n_slots]
            self._norms = norms
        self._columns.reserve(new_capacity)
        self._slot_ids, self._alive = slot_ids, alive

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[Metadata] | None = None,
    ) -> int:
        """Insert or overwrite vectors; see :meth:`two_stage_rec.VectorStore.upsert`.

        The whole batch is validated before anything is written. Overwriting
        an id replaces its vector and its metadata (``None`` clears it).
        The write that brings an ``"auto"`` or ``"ivf"`` store to
        ``IvfParams.min_train_size`` vectors trains its IVF index (slow, once),
        and on an IVF index over dot products a vector longer than the norm
        bound retrains it with a new bound (slow, rare); either way within
        this call, and a failure writes nothing.

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
            return self._upsert(id_list, matrix, metadata_copies)

    def _upsert(self, id_list: list[str], matrix: FloatMatrix, metadata_copies: Sequence[Metadata] | None) -> int:
        n = len(id_list)
        old_slots = np.fromiter((self._slot_of.get(i, -1) for i in id_list), dtype=np.int64, count=n)
        existing = old_slots >= 0
        # HNSW cannot remove a node, so an overwritten id moves to a new slot
        # and its old slot becomes a tombstone; flat and IVF reuse the slot.
        fresh = np.ones(n, dtype=np.bool_) if self._layout == "hnsw" else ~existing
        slots = old_slots.copy()
        slots[fresh] = np.arange(self._n_slots, self._n_slots + int(fresh.sum()), dtype=np.int64)
        train_now = (
            self._ivf is not None
            and self._layout == "flat"
            and len(self._slot_of) + int((~existing).sum()) >= self._ivf.train_threshold
        )
        if train_now or not self._space.fits(matrix):
            # Straight into a new IVF index, never through the flat one: a bulk load of
            # 1M vectors would otherwise hold both for a while.
            self._retrain_with(slots, old_slots[existing], matrix)
            self._layout = "ivf"
        else:
            self._write_index(slots, old_slots[existing] if self._layout != "hnsw" else old_slots[:0], matrix)
        self._reserve(int(fresh.sum()))
        if self._layout == "hnsw":
            self._retire(old_slots[existing])
        self._slot_ids[slots] = np.array(id_list, dtype=object)
        self._alive[slots] = True
        if self._norms is not None:
            self._norms[slots] = np.linalg.norm(matrix, axis=1)
        self._metadata.extend(_EMPTY_METADATA for _ in range(int(fresh.sum())))
        for position, slot in enumerate(slots.tolist()):
            self._metadata[slot] = metadata_copies[position] if metadata_copies is not None else _EMPTY_METADATA
        self._columns.set(slots.tolist(), metadata_copies)
        self._n_slots += int(fresh.sum())
        self._slot_of.update(zip(id_list, slots.tolist(), strict=True))
        self._maybe_compact()
        return n

    def _write_index(self, slots: npt.NDArray[np.int64], replaced: npt.NDArray[np.int64], matrix: FloatMatrix) -> None:
        """Add ``matrix`` under ``slots`` after removing the ``replaced`` labels; all or nothing."""
        backup = self._gather(replaced)  # the index is the only copy: keep what remove_ids drops
        try:
            with _faiss_errors("write vectors"):
                if replaced.shape[0]:
                    self._index.remove_ids(replaced)
                self._index.add_with_ids(self._space.items(matrix), slots)
        except StoreError:
            self._restore_index(replaced, backup)  # undo a half-applied remove/add
            raise

    def _restore_index(self, replaced: npt.NDArray[np.int64], backup: FloatMatrix) -> None:
        """Rebuild the index with exactly the live slots, from the index and the backup of ``replaced``."""
        live = self._live_slots()
        intact = live[~np.isin(live, replaced)]
        index = self._empty_index()
        with _faiss_errors("restore the index"):
            index.add_with_ids(
                np.vstack([self._stored(intact), self._space.items(backup)]), np.concatenate([intact, replaced])
            )
        self._index = index

    def _retrain_with(self, slots: npt.NDArray[np.int64], replaced: npt.NDArray[np.int64], matrix: FloatMatrix) -> None:
        """Train a new IVF index over the live vectors and the batch (written under ``slots``, replacing ``replaced``).

        For the write that brings an untrained store to ``min_train_size``, and
        for a batch that does not fit the norm bound. Nothing changes if FAISS fails.
        """
        live = self._live_slots()
        keep = live[~np.isin(live, replaced)]
        index, space = self._build_ivf(np.concatenate([keep, slots]), np.vstack([self._gather(keep), matrix]))
        self._index, self._space = index, space

    def _retire(self, slots: npt.NDArray[np.int64]) -> None:
        """Mark slots dead (their vectors are already out of FAISS, or tombstoned)."""
        self._alive[slots] = False
        self._slot_ids[slots] = ""
        self._columns.clear(slots)
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
        if self._layout != "hnsw":
            with _faiss_errors("delete vectors"):
                self._index.remove_ids(slots)
        for item_id in self._slot_ids[slots].tolist():
            del self._slot_of[item_id]
        self._retire(slots)
        self._maybe_compact()

    def _live_slots(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self._alive[: self._n_slots]).astype(np.int64)

    def train(self) -> None:
        """Train (or retrain) the IVF quantizer on the stored vectors and re-index them all.

        Done automatically by the write that brings the store to
        ``IvfParams.min_train_size`` vectors; call it yourself after
        the data has drifted. Uses a seeded sample of at most
        ``IvfParams.max_train_size`` vectors. For dot product, also sets the
        norm bound to :data:`~two_stage_rec.stores._faiss_space.NORM_HEADROOM`
        times the longest stored vector.

        Raises:
            InvalidInputError: the index is not IVF (or ``"auto"``), or the
                store holds fewer vectors than ``nlist``.
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
        self._index, self._space = self._build_ivf(live, self._gather(live))
        self._layout = "ivf"

    def _build_ivf(self, slots: npt.NDArray[np.int64], vectors: FloatMatrix) -> tuple[Any, IndexSpace]:
        """A trained IVF index holding ``vectors`` (as given, (n, d)) under ``slots``, and its space."""
        assert self._ivf is not None
        bound = None
        if self._metric == "dotproduct":
            longest = float(row_norms(vectors).max()) if vectors.shape[0] else 0.0
            bound = NORM_HEADROOM * longest
        space = IndexSpace(self._metric, self._dimension, bound)
        items = space.items(vectors)
        sample = items
        if items.shape[0] > self._ivf.train_sample_cap:
            chosen = np.random.default_rng(0).choice(items.shape[0], self._ivf.train_sample_cap, replace=False)
            sample = items[np.sort(chosen)]
        index = self._new_index("ivf", space)
        with _faiss_errors("train the IVF index"):
            index.train(sample)
            index.add_with_ids(items, slots)
        return index, space

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
        """Drop dead slots and re-add the live vectors under new labels.

        The new index is complete before anything is swapped, so a FAISS
        failure leaves the store as it was.
        """
        live = self._live_slots()
        index = self._indexed(live, labels=np.arange(live.shape[0], dtype=np.int64))
        self._slot_ids = self._slot_ids[live]
        self._alive = np.ones(live.shape[0], dtype=np.bool_)
        if self._norms is not None:
            self._norms = self._norms[live]
        self._metadata = [self._metadata[s] for s in live.tolist()]
        self._columns.compact(live, self._metadata)
        self._n_slots = int(live.shape[0])
        self._slot_of = {item_id: slot for slot, item_id in enumerate(self._slot_ids.tolist())}
        self._index = index

    def _indexed(self, slots: npt.NDArray[np.int64], *, labels: npt.NDArray[np.int64]) -> Any:
        """A new index of the current layout holding the vectors of ``slots`` under ``labels``."""
        stored = self._stored(slots)
        index = self._empty_index()
        if slots.shape[0]:
            with _faiss_errors("rebuild the index"):
                index.add_with_ids(stored, labels)
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
            allowed = allowed & self._columns.mask(filter, self._n_slots)
            n_allowed = int(np.count_nonzero(allowed))
        else:
            n_allowed = len(self._slot_of)  # = allowed.sum(), without an O(slots) pass per query
        width = min(k, n_allowed)
        n = queries.shape[0]
        if width == 0:
            labels = np.full((n, 0), -1, dtype=np.int64)
            return self._result(labels, np.empty((n, 0), np.float32), include_values, include_metadata)
        restricted = n_allowed < int(self._index.ntotal)
        values = None
        if restricted and self._exact_is_cheaper(n_allowed, width):
            labels, scores = self._exact(queries, allowed, width)
        else:
            labels, scores, values = self._search(queries, allowed, n_allowed, width)
        return self._result(labels, scores, include_values, include_metadata, values if include_values else None)

    def _exact_is_cheaper(self, n_allowed: int, k: int) -> bool:
        """Whether exact search over the ``n_allowed`` matching vectors beats the approximate index.

        For IVF, counted in list entries scanned per query: IVF scans the
        entries of :meth:`_ivf_probes` cells, matching or not; exact search
        must first look each matching vector up by label in the IVF lists,
        which costs about ``_IVF_LOOKUP_COST`` scanned entries each. For
        HNSW, counted in distance computations: exact search costs
        ``n_allowed``, and HNSW must expand
        about ``ef / s`` nodes of ``m`` neighbours each to collect ``ef``
        matches when a fraction ``s`` of the vectors match, so exact wins
        when ``n_allowed * s <= ef * m``. A selective filter is
        then both faster and exact. (Flat indexes always use FAISS.)
        """
        total = max(int(self._index.ntotal), 1)
        if self._layout == "ivf":
            assert self._ivf is not None
            scanned = total * self._ivf_probes(n_allowed / total) / self._ivf.nlist
            return n_allowed * _IVF_LOOKUP_COST <= scanned
        if self._layout == "hnsw":
            assert self._hnsw is not None
            ef = max(self._hnsw.ef_search, k)
            return n_allowed * (n_allowed / total) <= ef * self._hnsw.m
        return False

    def _search(
        self,
        queries: FloatMatrix,
        allowed: npt.NDArray[np.bool_],
        n_allowed: int,
        width: int,
    ) -> tuple[npt.NDArray[np.int64], FloatMatrix, FloatMatrix | None]:
        """FAISS search restricted to allowed slots, exact fallback for short rows.

        Returns labels (n, width), scores (n, width) and, when the search
        produced them on the way, the matches' vectors as given (n, width, d).
        """
        selector = None
        if n_allowed < int(self._index.ntotal):
            # A bitmap over labels (= slots): O(1) membership, built in numpy.
            selector = self._faiss.IDSelectorBitmap(np.packbits(allowed, bitorder="little"))
        params = self._search_params(selector, n_allowed / max(int(self._index.ntotal), 1))
        values = None
        # Unfiltered on augmented IVF, the vectors are read from the lists during the search:
        # cheaper than looking each result up again for its true score. (FAISS cannot
        # combine that with an ID selector; then the results are looked up by label.)
        read_vectors = self._space.augmented and selector is None
        with _faiss_errors("search"), _single_thread_if(self._faiss, queries.shape[0] == 1):
            if read_vectors:
                _, labels, stored = self._index.search_and_reconstruct(
                    self._space.queries(queries), width, params=params
                )
            else:
                distances, labels = self._index.search(self._space.queries(queries), width, params=params)
        labels = labels.astype(np.int64, copy=False)
        if self._space.augmented:
            if read_vectors:
                vectors = stored[:, :, : self._dimension]
            else:
                vectors = np.full((*labels.shape, self._dimension), np.nan, dtype=np.float32)
                vectors[labels >= 0] = self._gather(labels[labels >= 0])
            labels, scores, values = self._true_inner_products(queries, labels, vectors)
        else:
            scores = (-distances if self._metric == "euclidean" else distances).astype(np.float32, copy=False)
        found = labels >= 0
        if found.all():  # the usual case: every row full, nothing to pad or fall back on
            return labels, scores, values
        scores = np.where(found, scores, -np.inf).astype(np.float32, copy=False)
        short = np.flatnonzero(found.sum(axis=1) < width)
        if short.size:
            self._exact_fallbacks += int(short.size)
            labels[short], scores[short] = self._exact(queries[short], allowed, width)
            values = None  # gathered again for the rows answered exactly
        return labels, scores, values

    def _true_inner_products(
        self, queries: FloatMatrix, labels: npt.NDArray[np.int64], vectors: FloatMatrix
    ) -> tuple[npt.NDArray[np.int64], FloatMatrix, FloatMatrix]:
        """Inner products of the matches of an augmented search, rows re-sorted by them.

        FAISS's L2 distances give the inner product only as
        ``(‖q‖² + M² - distance) / 2``, which loses precision when ``M`` is
        large against the scores; recomputing ``width`` dot products from the
        vectors the search read is cheap and exact to float32 rounding.

        Args:
            queries: float32 (n, d).
            labels: int64 (n, width), -1 pads.
            vectors: float32 (n, width, d), the matches as given (pads undefined).

        Returns:
            Labels, scores (pads -inf) and vectors, best first.
        """
        scores = np.einsum("nd,nkd->nk", queries, vectors).astype(np.float32, copy=False)
        scores[labels < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        return (
            np.take_along_axis(labels, order, axis=1),
            np.take_along_axis(scores, order, axis=1),
            np.take_along_axis(vectors, order[:, :, None], axis=1),
        )

    def _exact(
        self, queries: FloatMatrix, allowed: npt.NDArray[np.bool_], width: int
    ) -> tuple[npt.NDArray[np.int64], FloatMatrix]:
        """Exact top-``width`` over the allowed slots, in numpy."""
        candidates = np.flatnonzero(allowed).astype(np.int64)
        scores = exact_scores(queries, self._gather(candidates), self._metric)
        columns, top, _ = top_k_rows(scores, width)
        labels = np.where(columns >= 0, candidates[np.maximum(columns, 0)], -1).astype(np.int64)
        return labels, top

    def _result(
        self,
        labels: npt.NDArray[np.int64],
        scores: FloatMatrix,
        include_values: bool,
        include_metadata: bool,
        values: FloatMatrix | None = None,
    ) -> QueryResult:
        """The padded result of slot labels (n, width); ``values`` (n, width, d) when already read."""
        if not include_values:
            # Labels are slots, so ids and metadata are gathered from the slot tables.
            return QueryResult.from_positions(
                labels, scores, ids=self._slot_ids, metadata=self._metadata if include_metadata else None
            )
        found = labels >= 0
        if values is not None:  # one table row per result position
            positions = np.where(found, np.arange(labels.size, dtype=np.int64).reshape(labels.shape), -1)
            slots = np.where(found, labels, 0).ravel()
            table = values.reshape(-1, self._dimension)
        else:  # reconstruct each distinct result once, into a small table
            slots, inverse = np.unique(labels[found], return_inverse=True)
            positions = np.full(labels.shape, -1, dtype=np.int64)
            positions[found] = inverse
            table = self._gather(slots)
        return QueryResult.from_positions(
            positions,
            scores,
            ids=self._slot_ids[slots],
            vectors=table,
            metadata=[self._metadata[s] for s in slots.tolist()] if include_metadata else None,
        )

    def fetch(self, ids: Sequence[str]) -> FetchResult:
        """Stored vectors (as given, float32 (found, d)) and metadata; unknown ids go to ``missing``.

        Vectors are reconstructed from the index: exact for dot product and
        euclidean, within two float32 roundings for cosine.
        """
        id_list = check_ids(ids, allow_empty_batch=True, require_unique=False)
        with self._lock.reading():
            found = [i for i in id_list if i in self._slot_of]
            slots = np.array([self._slot_of[i] for i in found], dtype=np.int64)
            return FetchResult(
                ids=found,
                vectors=self._gather(slots),
                metadata=[dict(self._metadata[s]) for s in slots.tolist()],
                missing=[i for i in id_list if i not in self._slot_of],
            )

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to a directory, atomically; no pickle.

        Layout: ``path/CURRENT`` (JSON naming the live snapshot) and
        ``path/snapshot-<hex>/`` holding ``index.faiss`` (``faiss.write_index``:
        the vectors), ``slots.npz`` (ids, live mask and, for cosine, norms)
        and ``store.json`` (config and metadata). A snapshot is written into
        a temporary directory inside ``path``, fsynced and renamed; then
        ``CURRENT`` is replaced atomically (``two_stage_rec._atomic``). No
        rename atomically replaces a non-empty directory, hence versions side
        by side and a pointer file rather than a directory swap: a crash at
        any moment leaves ``CURRENT`` naming a complete snapshot, the old one
        or the new one, and a reader never finds the store missing. Older
        snapshots are removed after the switch.

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
        arrays: dict[str, npt.NDArray[Any]] = {
            "ids": np.array(self._slot_ids[: self._n_slots].tolist(), dtype=np.str_),
            "alive": live,
        }
        if self._norms is not None:
            arrays["norms"] = self._norms[: self._n_slots]
        with open(directory / "slots.npz", "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds poorly
        config = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "dimension": self._dimension,
            "metric": self._metric,
            "index": self._kind,
            "layout": self._layout,
            "norm_bound": self._space.norm_bound,
            "hnsw": asdict(self._hnsw) if self._hnsw is not None else None,
            "ivf": asdict(self._ivf) if self._ivf is not None else None,
            "count": len(self._slot_of),
            "metadata": [dict(m) for m in self._metadata[: self._n_slots]],
        }
        (directory / "store.json").write_bytes(json.dumps(config).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaissVectorStore:
        """Load a store written by :meth:`save`.

        Saves of format version 1 (which held a copy of the vectors beside
        the index) are read by re-adding their vectors to a new store of the
        same configuration: an IVF index is trained afresh.

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
        version = config.get("version")
        if config.get("format") != _FORMAT or version not in _READABLE_VERSIONS:
            raise PersistenceError(f"{snapshot} has format {config.get('format')!r} v{version!r}")
        store = cls(
            dimension=config["dimension"],
            metric=config["metric"],
            index=config["index"],
            hnsw=HnswParams(**config["hnsw"]) if config["hnsw"] is not None else None,
            ivf=IvfParams(**config["ivf"]) if config["ivf"] is not None else None,
        )
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        table = "vectors.npz" if version == 1 else "slots.npz"
        with open(snapshot / table, "rb") as handle, np.load(handle, allow_pickle=False) as arrays:
            ids = arrays["ids"]
            alive = arrays["alive"].astype(np.bool_)
            vectors = np.ascontiguousarray(arrays["vectors"], dtype=np.float32) if version == 1 else None
            norms = arrays["norms"].astype(np.float32) if "norms" in arrays.files else None
        metadata = config["metadata"]
        n_slots = ids.shape[0]
        if alive.shape != (n_slots,) or len(metadata) != n_slots:
            raise PersistenceError(f"{snapshot}: ids, live mask and metadata disagree in length")
        if (store.metric == "cosine" and version == 2) and (norms is None or norms.shape != (n_slots,)):
            raise PersistenceError(f"{snapshot}: the norms of the cosine vectors are missing")
        live_ids = ids[alive].tolist()
        if int(alive.sum()) != config["count"] or len(set(live_ids)) != len(live_ids) or "" in live_ids:
            raise PersistenceError(f"{snapshot}: the stored ids are inconsistent")
        live_metadata = check_metadata(live_ids, [metadata[i] for i in np.flatnonzero(alive).tolist()])
        if vectors is not None:  # version 1
            if vectors.shape != (n_slots, store.dimension):
                raise PersistenceError(f"{snapshot}: ids and vectors disagree in length")
            if live_ids:
                store.upsert(live_ids, vectors[alive], live_metadata)
            return store
        layout = config["layout"]
        bound = config["norm_bound"]
        space = IndexSpace(store.metric, store.dimension, None if bound is None else float(bound))
        with _faiss_errors("read the index"):
            index = store._faiss.read_index(str(snapshot / "index.faiss"))
        if _index_layout(store._faiss, index) != (layout, store._metric_code(space), space.index_dimension):
            raise PersistenceError(f"{snapshot}: index.faiss is not a {layout!r} {store._metric!r} index")
        # HNSW may also hold tombstones, at most one per dead slot.
        total, count = int(index.ntotal), int(alive.sum())
        consistent = count <= total <= n_slots if layout == "hnsw" else total == count
        allowed_layouts = ("flat", "ivf") if store._ivf is not None else (store._kind,)
        augmented = layout == "ivf" and store.metric == "dotproduct"
        if not consistent or layout not in allowed_layouts or (bound is not None) != augmented:
            raise PersistenceError(f"{snapshot}: index.faiss does not match the stored vectors")
        store._restore(index, layout, space, ids, alive, norms, live_metadata or [])
        return store

    def _restore(
        self,
        index: Any,
        layout: _Layout,
        space: IndexSpace,
        ids: npt.NDArray[np.str_],
        alive: npt.NDArray[np.bool_],
        norms: npt.NDArray[np.float32] | None,
        live_metadata: list[dict[str, MetadataValue]],
    ) -> None:
        self._index = index
        self._layout = layout
        self._space = space
        self._n_slots = int(ids.shape[0])
        self._slot_ids = np.array(ids.tolist(), dtype=object)
        self._slot_ids[~alive] = ""
        self._alive = alive
        if self._norms is not None:
            assert norms is not None
            self._norms = norms
        live = np.flatnonzero(alive).tolist()
        self._metadata = [_EMPTY_METADATA] * self._n_slots
        for slot, entry in zip(live, live_metadata, strict=True):
            self._metadata[slot] = entry
        self._columns.reserve(self._n_slots)
        self._columns.set(live, live_metadata)
        self._slot_of = {str(self._slot_ids[slot]): slot for slot in live}


def _index_layout(faiss: Any, index: Any) -> tuple[str, int, int] | None:
    """(layout, metric code, dimension) of a FAISS index as this module builds them, else None."""
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf", int(index.metric_type), int(index.d)
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw", int(inner.metric_type), int(index.d)
        if isinstance(inner, faiss.IndexFlat):
            return "flat", int(inner.metric_type), int(index.d)
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
