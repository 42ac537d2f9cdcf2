"""Test helpers shipped with the package, so third-party backends can use them.

Contract suites, as pytest test classes to subclass (they need the
``testing`` extra: pytest and hypothesis), one per protocol:

* :class:`VectorStoreContract` — every :class:`~two_stage_rec.VectorStore`::

      from two_stage_rec.testing import VectorStoreContract

      class TestMyStore(VectorStoreContract):
          def make_store(self, dimension, metric):
              return MyStore(dimension=dimension, metric=metric)

* :class:`EmbedderContract` — every :class:`~two_stage_rec.Embedder`
  (``make_embedder()`` and ``known_keys()``);
* :class:`RerankerContract` — every :class:`~two_stage_rec.Reranker`
  (``make_reranker()``, ``user_dimension`` and ``item_dimension``).

And :mod:`two_stage_rec.testing.pinecone_server`, a Pinecone-compatible HTTP
server on loopback for offline tests.

The suites are imported on first use, so ``import two_stage_rec.testing``
(and the Pinecone test server) works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["EmbedderContract", "RerankerContract", "VectorStoreContract"]

if TYPE_CHECKING:
    from two_stage_rec.testing.contract import VectorStoreContract
    from two_stage_rec.testing.embedder_contract import EmbedderContract
    from two_stage_rec.testing.reranker_contract import RerankerContract


def __getattr__(name: str) -> object:
    if name == "VectorStoreContract":
        from two_stage_rec.testing.contract import VectorStoreContract

        return VectorStoreContract
    if name == "EmbedderContract":
        from two_stage_rec.testing.embedder_contract import EmbedderContract

        return EmbedderContract
    if name == "RerankerContract":
        from two_stage_rec.testing.reranker_contract import RerankerContract

        return RerankerContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
