"""Vector store backends. Import each by its full path, e.g.
``from two_stage_rec.stores.faiss import FaissVectorStore``; only the numpy
in-memory store is free of optional dependencies."""
