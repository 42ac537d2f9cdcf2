"""Rerankers that need no model framework. The TensorFlow SavedModel reranker lives in
:mod:`two_stage_rec.adapters.tensorflow`.

* :class:`MLPReranker` — the trained scoring model (predicted rating) in numpy.
* :class:`BlendReranker` — a learned blend of retrieval score, rating score and an
  item prior, fitted on implicit feedback; unlike ranking by predicted rating,
  it improves top-k relevance over retrieval alone (see the evaluation guide).
"""

from two_stage_rec.rerankers.blend import BlendReranker, BlendWeights, fit_blend
from two_stage_rec.rerankers.mlp import MLPReranker, PairFeatures

__all__ = ["BlendReranker", "BlendWeights", "MLPReranker", "PairFeatures", "fit_blend"]
