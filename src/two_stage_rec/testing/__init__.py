"""Test helpers shipped with the package, so third-party backends can use them.

* :class:`VectorStoreContract` — the behaviour every
  :class:`~two_stage_rec.VectorStore` must show, as a pytest test class to
  subclass (needs the ``testing`` extra: pytest and hypothesis)::

      from two_stage_rec.testing import VectorStoreContract

      class TestMyStore(VectorStoreContract):
          def make_store(self, dimension, metric):
              return MyStore(dimension=dimension, metric=metric)

* :mod:`two_stage_rec.testing.pinecone_server` — a Pinecone-compatible HTTP
  server on loopback for offline tests.

``VectorStoreContract`` is imported on first use, so ``import
two_stage_rec.testing`` (and the Pinecone test server) works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["VectorStoreContract"]

if TYPE_CHECKING:
    from two_stage_rec.testing.contract import VectorStoreContract


def __getattr__(name: str) -> object:
    if name == "VectorStoreContract":
        from two_stage_rec.testing.contract import VectorStoreContract

        return VectorStoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
