"""Adapters that wrap models made with a deep-learning framework as library contracts.

Each adapter lives in its own module and imports its framework only when it
is used, so importing this package costs nothing::

    from two_stage_rec.adapters.tensorflow import SavedModelEmbedder, SavedModelReranker  # extra: tensorflow

* :class:`~two_stage_rec.adapters.tensorflow.SavedModelEmbedder` is an
  :class:`~two_stage_rec.protocols.Embedder` over a TensorFlow SavedModel that
  maps a 1-D batch of strings to an (n, d) float tensor (the notebook's
  ``user_model`` / ``movie_model``).
* :class:`~two_stage_rec.adapters.tensorflow.SavedModelReranker` is a
  :class:`~two_stage_rec.protocols.Reranker` over a SavedModel that scores
  ``concat(user_vector, item_vector)`` rows (the notebook's ``scoring_model``).
"""
