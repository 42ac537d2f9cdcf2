"""What the service answers with, and how one version replaces another while it serves.

A :class:`Pipeline` is one version of everything a request needs: the
recommender (towers, store, reranker, fallback), the item titles and each
user's seen items, all from the same bundle. The service holds the current
one in a :class:`PipelineSlot`:

* every request (and every micro-batch, see
  :meth:`~two_stage_rec.serving.batching.MicroBatcher.per_batch`) takes the
  current pipeline **once**, with :meth:`PipelineSlot.use`, and is answered
  wholly by it, so no answer mixes two bundles;
* a reload builds the new pipeline off to the side, then
  :meth:`PipelineSlot.swap` replaces one reference under a lock: requests
  that start afterwards get the new pipeline, requests already running
  finish on the old one, and nobody waits;
* the old pipeline's store is closed once its last user is done
  (:meth:`Pipeline.close_when_idle`), so a remote store's connections are
  not cut under an in-flight batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from two_stage_rec.assembly import AssembledRecommender
from two_stage_rec.bundle import Bundle
from two_stage_rec.recommender import Recommendation, Recommender
from two_stage_rec.serving.catalogue import CatalogueFallback

__all__ = ["Pipeline", "PipelineSlot"]

logger = logging.getLogger("two_stage_rec.serving")


@dataclass(eq=False)
class Pipeline:
    """One version of what the service answers with.

    Attributes:
        recommender: answers the requests.
        titles: item id -> display title (catalogue updates change it).
        seen: user id -> items left out of their recommendations when a request
            says ``exclude_seen``.
        bundle: the bundle it was assembled from (None when the app was given a
            bare recommender).
        path: where that bundle was read from (None likewise).
        owned: the assembled recommender whose store the service closes when
            this pipeline is replaced or the app stops (None: the caller's).
        fallback: the cold-start fallback catalogue updates keep in step with the
            store (None: no fallback, or one the service cannot update).
    """

    recommender: Recommender
    titles: dict[str, str]
    seen: Mapping[str, frozenset[str]]
    bundle: Bundle | None = None
    path: Path | None = None
    owned: AssembledRecommender | None = None
    fallback: CatalogueFallback | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _users: int = field(default=0, repr=False)
    _idle: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __repr__(self) -> str:
        return f"Pipeline(path={self.path!r}, recommender={self.recommender!r})"

    @classmethod
    def from_recommender(
        cls,
        recommender: Recommender,
        *,
        item_titles: Mapping[str, str] | None = None,
        seen_items: Mapping[str, Collection[str]] | None = None,
    ) -> Pipeline:
        """A pipeline around a caller's recommender (the caller keeps it and closes its store)."""
        fallback = recommender.fallback if isinstance(recommender.fallback, CatalogueFallback) else None
        return cls(
            recommender=recommender,
            titles=dict(item_titles or {}),
            # Frozen once here, not per request: a heavy user has hundreds of rated items.
            seen={str(user): frozenset(items) for user, items in (seen_items or {}).items()},
            fallback=fallback,
        )

    @classmethod
    def from_assembled(
        cls,
        served: AssembledRecommender,
        path: Path | None = None,
        *,
        instrument: Callable[[Recommender], Recommender] | None = None,
    ) -> Pipeline:
        """A pipeline the service owns, from an assembled bundle.

        Its popularity fallback (when it has one) becomes a
        :class:`~two_stage_rec.serving.catalogue.CatalogueFallback` over the same
        ranking, so that catalogue updates reach it too.
        """
        bundle = served.bundle
        catalogue = bundle.catalogue
        base = served.recommender
        fallback = CatalogueFallback.from_bundle(bundle) if base.fallback is not None else None
        recommender = base
        if fallback is not None:
            recommender = Recommender(
                user_embedder=base.user_embedder,
                item_embedder=base.item_embedder,
                store=base.store,
                reranker=base.reranker,
                fallback=fallback,
                candidate_ranker=base.candidate_ranker,
                fold_in=base.fold_in,
                user_items=base.user_items,
            )
        if instrument is not None:
            recommender = instrument(recommender)
        return cls(
            recommender=recommender,
            titles={item: catalogue.label(item) for item in catalogue.item_ids},
            seen=bundle.seen_items,
            bundle=bundle,
            path=path,
            owned=served,
            fallback=fallback,
        )

    # ------------------------------------------------------------ answering

    def excluded_for(self, user_id: str, exclude_seen: bool, extra: Collection[str] = ()) -> frozenset[str]:
        """The items to leave out of one user's recommendations."""
        already_seen = self.seen.get(user_id, frozenset()) if exclude_seen else frozenset()
        return already_seen | frozenset(extra) if extra else already_seen

    def item_title(self, item_id: str) -> str | None:
        """The title table's title of an item (explanations name history items by it), else None."""
        return self.titles.get(item_id) or None

    def title_of(self, recommendation: Recommendation) -> str | None:
        """The title shown with an item: the title table's, else a string ``title`` metadata field."""
        title = self.titles.get(recommendation.item_id)
        if title:
            return title
        value = recommendation.metadata.get("title")
        return value if isinstance(value, str) else None

    # ------------------------------------------------------------ lifetime

    def _enter(self) -> None:
        with self._idle:
            self._users += 1

    def _leave(self) -> None:
        with self._idle:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def close_when_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request uses this pipeline, then close the store it owns (idempotent).

        Returns:
            False if requests still used it after ``timeout`` seconds (nothing closed).
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._users == 0, timeout):
                return False
            if self._closed:
                return True
            self._closed = True
        if self.owned is not None:
            self.owned.close()
        return True


class PipelineSlot:
    """Holds the current :class:`Pipeline`; requests take it, a reload swaps it.

    Thread-safe: :meth:`use` and :meth:`swap` take one lock for a few
    instructions each, so taking the pipeline costs a request nothing measurable.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._current = pipeline
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PipelineSlot({self._current!r})"

    @property
    def current(self) -> Pipeline:
        """The pipeline new requests get (for reading facts; answer requests inside :meth:`use`)."""
        return self._current

    @contextmanager
    def use(self) -> Iterator[Pipeline]:
        """The current pipeline, kept open (its store not closed) until the block ends."""
        with self._lock:
            pipeline = self._current
            pipeline._enter()  # under the slot's lock: a swap cannot retire it between read and count
        try:
            yield pipeline
        finally:
            pipeline._leave()

    def swap(self, pipeline: Pipeline) -> Pipeline:
        """Make ``pipeline`` current; returns the one it replaces (still open: retire it)."""
        with self._lock:
            previous, self._current = self._current, pipeline
        return previous

    def retire(self, previous: Pipeline) -> None:
        """Close ``previous`` once its in-flight requests are done, on a background thread."""

        def close() -> None:
            try:
                previous.close_when_idle()
            except Exception:  # a store that fails to close must not take the service down
                logger.exception("closing the replaced pipeline's store failed")

        threading.Thread(target=close, name="retire-pipeline", daemon=True).start()
