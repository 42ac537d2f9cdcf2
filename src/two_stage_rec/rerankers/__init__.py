"""Rerankers that need no model framework. The TensorFlow SavedModel reranker lives in
:mod:`two_stage_rec.adapters.tensorflow`."""

from two_stage_rec.rerankers.mlp import MLPReranker, PairFeatures

__all__ = ["MLPReranker", "PairFeatures"]
