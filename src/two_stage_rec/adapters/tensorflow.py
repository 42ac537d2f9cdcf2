"""TensorFlow SavedModels of the notebook's shape as an :class:`Embedder` and a :class:`Reranker`.

The notebook loads three premade SavedModels and calls them like functions::

    user_model(np.array(["42"]))               # -> (1, 32) float32
    movie_model(np.array(["Toy Story (1995)"]))  # -> (1, 32) float32
    scoring_model(tf.concat([u, m], axis=1))    # -> (1, 1)  float32

:class:`SavedModelEmbedder` wraps the first kind and :class:`SavedModelReranker`
the second, for models saved by any of the usual routes:

* tf-keras (Keras 2, e.g. TensorFlow Recommenders) ``model.save(path)`` in the
  SavedModel format, or ``tf.saved_model.save(model, path)``;
* ``tf.saved_model.save`` of a ``tf.Module`` whose ``__call__`` is a
  ``tf.function`` with an ``input_signature``;
* Keras 3 ``model.export(path)``, which gives an object that is not callable
  but has a ``serve`` endpoint and ``signatures["serving_default"]``.

Models are loaded with ``tf.saved_model.load``, so no custom Python classes
are needed to load them. TensorFlow is imported when an adapter is built,
not when this module is imported; without it, construction raises
:class:`~two_stage_rec.errors.MissingDependencyError` naming the extra
(``pip install "two-stage-rec[tensorflow]"``).

Which function is called (the *endpoint*), given ``signature``:

* ``None`` (default): the loaded object itself when it is callable (exactly
  the notebook's ``model(x)``), else its ``serve`` function (Keras 3 export),
  else ``signatures["serving_default"]``, else its only signature.
* a name: ``signatures[name]`` when the model has that signature, else a
  callable attribute of that name (e.g. ``"serve"``).

Signatures take keyword inputs and return a dict of outputs; the adapter
feeds the signature's single input and takes its single output, or the
output named by ``output=``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from two_stage_rec._optional import require
from two_stage_rec.errors import DimensionMismatchError, InvalidInputError, ModelError, UnknownKeyError
from two_stage_rec.types import FloatMatrix, FloatVector

__all__ = ["SavedModelEmbedder", "SavedModelReranker", "UnknownKeyMode"]

UnknownKeyMode: TypeAlias = Literal["model", "raise"]
"""What :class:`SavedModelEmbedder` does with a key the model was not trained on:

* ``"model"`` (default): pass it to the model anyway. A model built on a
  ``StringLookup`` layer maps every unknown key to its out-of-vocabulary
  index and silently returns the same OOV vector for all of them; this is
  what the notebook does.
* ``"raise"``: raise :class:`~two_stage_rec.errors.UnknownKeyError` listing
  every key outside ``known_keys`` (or, when none are given, outside the
  vocabulary read from the model), before the model is called. A
  :class:`~two_stage_rec.recommender.Recommender` turns that into its
  cold-start fallback for users.
"""

Shape: TypeAlias = tuple[int | None, ...]

# Probing a model whose output width is not declared needs some key. MovieLens
# ids are numeric strings, so "0" also suits a model that parses ids as numbers.
_DEFAULT_PROBE_KEY = "0"


def _tensorflow() -> ModuleType:
    return require("tensorflow", extra="tensorflow")


# --------------------------------------------------------------------- loading


def _load_saved_model(tf: ModuleType, path: str | os.PathLike[str]) -> tuple[Path, Any]:
    """Load a SavedModel directory, translating every failure into :class:`ModelError`."""
    location = Path(path)
    if not location.exists():
        raise ModelError(f"model path {str(location)!r} does not exist")
    if location.is_file():
        hint = ""
        if location.suffix in (".keras", ".h5"):
            hint = (
                "; this is a Keras model file: load it with keras and write a SavedModel with "
                "model.export(directory) (Keras 3) or model.save(directory) (tf-keras)"
            )
        raise ModelError(f"{str(location)!r} is a file, not a SavedModel directory{hint}")
    if not tf.saved_model.contains_saved_model(str(location)):
        raise ModelError(f"{str(location)!r} is not a SavedModel directory (it holds no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(location))
    except (OSError, ValueError, TypeError, tf.errors.OpError) as exc:
        raise ModelError(f"could not load the SavedModel at {str(location)!r}: {exc}") from exc
    return location, loaded


@dataclass(frozen=True)
class _TensorSpec:
    """What is statically known about one input or output: shape (None = rank unknown) and dtype."""

    shape: Shape | None
    dtype: Any  # a tf.DType, or None when unknown

    def describe(self) -> str:
        shape = "?" if self.shape is None else str(self.shape)
        dtype = "?" if self.dtype is None else self.dtype.name
        return f"{dtype} {shape}"


_UNKNOWN_SPEC = _TensorSpec(None, None)


def _spec_of(tf: ModuleType, value: Any) -> _TensorSpec | None:
    if not isinstance(value, tf.TensorSpec):
        return None
    shape = None if value.shape.rank is None else tuple(value.shape.as_list())
    return _TensorSpec(shape, value.dtype)


def _merge_specs(specs: Sequence[_TensorSpec]) -> _TensorSpec:
    """The most specific spec every traced variant agrees with (a function may hold several traces)."""
    if not specs:
        return _UNKNOWN_SPEC
    dtypes = {spec.dtype for spec in specs}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    ranks = {None if spec.shape is None else len(spec.shape) for spec in specs}
    if len(ranks) != 1 or None in ranks:
        return _TensorSpec(None, dtype)
    shapes = [spec.shape for spec in specs if spec.shape is not None]
    merged = tuple(dims[0] if len(set(dims)) == 1 else None for dims in zip(*shapes, strict=True))
    return _TensorSpec(merged, dtype)


@dataclass(frozen=True)
class _Endpoint:
    """The one function of a loaded SavedModel that an adapter calls, with its static specs."""

    description: str
    function: Any
    input_name: str | None  # keyword of a signature; None for a positional call
    output_name: str | None  # key to pick from a dict result; None when the result is one tensor
    input_spec: _TensorSpec
    output_spec: _TensorSpec


def _positional_endpoint(tf: ModuleType, function: Any, description: str, output: str | None) -> _Endpoint:
    """A restored tf.function called as ``function(x)``; its traces give the static specs."""
    inputs: list[_TensorSpec] = []
    outputs: list[_TensorSpec] = []
    for concrete in getattr(function, "concrete_functions", ()):
        args, _ = concrete.structured_input_signature
        first = _spec_of(tf, args[0]) if args else None
        if first is not None:
            inputs.append(first)
        result = concrete.structured_outputs
        if isinstance(result, Mapping):
            result = result[_choose_output(result, output, description)]
        out = _spec_of(tf, result)
        if out is not None:
            outputs.append(out)
    return _Endpoint(description, function, None, output, _merge_specs(inputs), _merge_specs(outputs))


def _signature_endpoint(tf: ModuleType, signatures: Any, name: str, output: str | None) -> _Endpoint:
    """A serving signature: keyword input, dict output; needs exactly one input and one chosen output."""
    function = signatures[name]
    _, input_specs = function.structured_input_signature
    if len(input_specs) != 1:
        raise ModelError(
            f"signature {name!r} takes {len(input_specs)} inputs ({', '.join(sorted(input_specs))}); "
            "this adapter feeds exactly one tensor"
        )
    input_name, input_spec = next(iter(input_specs.items()))
    outputs = function.structured_outputs
    if not isinstance(outputs, Mapping):
        raise ModelError(f"signature {name!r} does not return a dict of outputs")
    output_name = _choose_output(outputs, output, f"signature {name!r}")
    return _Endpoint(
        f"signature {name!r}",
        function,
        input_name,
        output_name,
        _spec_of(tf, input_spec) or _UNKNOWN_SPEC,
        _spec_of(tf, outputs[output_name]) or _UNKNOWN_SPEC,
    )


def _choose_output(outputs: Mapping[str, Any], output: str | None, where: str) -> str:
    if output is not None:
        if output not in outputs:
            raise ModelError(f"{where} has no output {output!r}; outputs: {', '.join(sorted(outputs))}")
        return output
    if len(outputs) != 1:
        raise ModelError(f"{where} has {len(outputs)} outputs ({', '.join(sorted(outputs))}); choose one with output=")
    return str(next(iter(outputs)))


def _resolve_endpoint(tf: ModuleType, loaded: Any, signature: str | None, output: str | None) -> _Endpoint:
    signatures = getattr(loaded, "signatures", {})
    if signature is not None:
        if signature in signatures:
            return _signature_endpoint(tf, signatures, signature, output)
        attribute = getattr(loaded, signature, None)
        if attribute is not None and callable(attribute):
            return _positional_endpoint(tf, attribute, f"function {signature!r}", output)
        raise ModelError(
            f"the SavedModel has no signature or function {signature!r}; "
            f"signatures: {', '.join(sorted(signatures)) or 'none'}"
        )
    if callable(loaded):
        return _positional_endpoint(tf, loaded.__call__, "__call__", output)
    serve = getattr(loaded, "serve", None)
    if serve is not None and callable(serve):
        return _positional_endpoint(tf, serve, "function 'serve'", output)
    if "serving_default" in signatures:
        return _signature_endpoint(tf, signatures, "serving_default", output)
    if len(signatures) == 1:
        return _signature_endpoint(tf, signatures, next(iter(signatures)), output)
    raise ModelError(
        "the SavedModel is not callable and has no 'serve' function or single serving signature "
        f"(signatures: {', '.join(sorted(signatures)) or 'none'}); name one with signature="
    )


def _call(tf: ModuleType, endpoint: _Endpoint, batch: Any, where: str) -> Any:
    """Run the endpoint on one tensor and return one tensor; TensorFlow errors become ModelError."""
    try:
        if endpoint.input_name is not None:
            result = endpoint.function(**{endpoint.input_name: batch})
        else:
            result = endpoint.function(batch)
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        raise ModelError(
            f"{where}: calling {endpoint.description} on {batch.dtype.name} {tuple(batch.shape)} failed: {exc}"
        ) from exc
    if isinstance(result, Mapping):
        result = result[_choose_output(result, endpoint.output_name, where)]
    if not (hasattr(result, "dtype") and hasattr(result, "shape")):
        raise ModelError(f"{where}: {endpoint.description} returned {type(result).__name__}, not one tensor")
    return result


def _is_float(dtype: Any) -> bool:
    return bool(getattr(dtype, "is_floating", False))


def _to_float32(result: Any, where: str) -> FloatMatrix:
    """A float tensor of any precision as a float32 numpy array (the library's boundary type)."""
    if not _is_float(result.dtype):
        raise ModelError(f"{where} returned {result.dtype.name} values; expected a float tensor")
    return np.asarray(result, dtype=np.float32)


# -------------------------------------------------------------------- embedder


class SavedModelEmbedder:
    """An :class:`~two_stage_rec.protocols.Embedder` over a SavedModel mapping strings to vectors.

    The model must take a 1-D string tensor of n keys and return a float tensor
    of shape (n, d), as the notebook's ``user_model(np.array(["42"]))`` does.
    Outputs of any float precision are returned as float32.

    The dimension d is read from the endpoint's declared output shape; when
    the model does not declare it, the model is called once at load on one
    key (the first of ``known_keys``, else ``"0"``).

    Unknown keys: a model built on a ``StringLookup`` layer returns its
    out-of-vocabulary vector for every key it was not trained on, silently,
    and so does this adapter by default (``unknown="model"``). Pass
    ``unknown="raise"`` to get :class:`~two_stage_rec.errors.UnknownKeyError`
    instead; the known keys are ``known_keys`` when given, else the
    vocabulary read from the model (see :attr:`vocabulary`).

    Args:
        path: the SavedModel directory.
        signature: which function to call; see the module docs. None picks
            the model itself when callable, else ``serve``, else
            ``serving_default``.
        output: the output to use when the endpoint returns several (a dict).
        batch_size: at most this many keys per model call (bounds memory on
            large catalogues); None embeds every batch in one call.
        unknown: ``"model"`` or ``"raise"``; see :data:`UnknownKeyMode`.
        known_keys: the keys the model knows, for ``unknown="raise"``.

    Raises:
        MissingDependencyError: TensorFlow is not installed.
        ModelError: the path does not exist or is not a SavedModel; the
            endpoint does not take one string tensor of shape (n,) or does not
            return one float tensor of shape (n, d); ``unknown="raise"``
            without ``known_keys`` and the model exposes no vocabulary.
        InvalidInputError: an invalid ``batch_size`` or ``unknown``, or
            ``known_keys`` without ``unknown="raise"``.

    Thread safety: ``embed`` only reads the model and may run concurrently.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signature: str | None = None,
        output: str | None = None,
        batch_size: int | None = None,
        unknown: UnknownKeyMode = "model",
        known_keys: Iterable[str] | None = None,
    ) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InvalidInputError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if unknown not in ("model", "raise"):
            raise InvalidInputError(f"unknown must be 'model' or 'raise', got {unknown!r}")
        if known_keys is not None and unknown != "raise":
            raise InvalidInputError("known_keys is only used with unknown='raise'")
        if isinstance(known_keys, str):
            raise InvalidInputError("known_keys must be a collection of strings, not a single string")
        self._tf = _tensorflow()
        self._path, self._model = _load_saved_model(self._tf, path)
        self._endpoint = _resolve_endpoint(self._tf, self._model, signature, output)
        self._batch_size = batch_size
        self._unknown: UnknownKeyMode = unknown
        self._vocabulary: tuple[str, ...] | None = None
        self._vocabulary_read = False
        self._check_input_spec()
        self._known: frozenset[str] | None = None
        if unknown == "raise":
            keys = list(known_keys) if known_keys is not None else self.vocabulary
            if keys is None:
                raise ModelError(
                    f"unknown='raise' needs known_keys: the SavedModel at {str(self._path)!r} exposes no "
                    "single string vocabulary (StringLookup table) to read them from"
                )
            self._known = frozenset(str(k) for k in keys)
        self._dimension = self._infer_dimension()

    def __repr__(self) -> str:
        return (
            f"SavedModelEmbedder(path={str(self._path)!r}, endpoint={self._endpoint.description!r}, "
            f"dimension={self._dimension}, unknown={self._unknown!r})"
        )

    @property
    def dimension(self) -> int:
        """Vector length d."""
        return self._dimension

    @property
    def path(self) -> Path:
        """The SavedModel directory."""
        return self._path

    @property
    def vocabulary(self) -> tuple[str, ...] | None:
        """The model's vocabulary, best effort: None when it cannot be read.

        Read from the model's lookup table when it holds exactly one table
        mapping strings to int64 indices (what a ``StringLookup`` layer saves),
        ordered by index. Out-of-vocabulary and mask tokens that are not table
        keys are not included. A model that hashes keys, or holds several
        string tables (e.g. side features), has no single vocabulary: None.
        """
        if not self._vocabulary_read:
            self._vocabulary = _read_vocabulary(self._tf, self._model)
            self._vocabulary_read = True
        return self._vocabulary

    def embed(self, keys: Sequence[str]) -> FloatMatrix:
        """Embed a batch of keys with the model.

        Args:
            keys: n string keys.

        Returns:
            float32 array (n, dimension); row i for ``keys[i]``. An empty batch
            gives (0, dimension) without calling the model.

        Raises:
            InvalidInputError: ``keys`` is a single string or holds a non-string.
            UnknownKeyError: with ``unknown="raise"``, listing every unknown key.
            ModelError: the model failed or returned a wrong shape or dtype.
        """
        if isinstance(keys, str):
            raise InvalidInputError("keys must be a sequence of strings, not a single string")
        key_list = list(keys)
        for key in key_list:
            if not isinstance(key, str):
                raise InvalidInputError(f"keys must be strings, got {key!r}")
        if self._known is not None:
            missing = [key for key in key_list if key not in self._known]
            if missing:
                raise UnknownKeyError(missing)
        if not key_list:
            return np.empty((0, self._dimension), dtype=np.float32)
        step = self._batch_size or len(key_list)
        parts = [self._embed_batch(key_list[start : start + step]) for start in range(0, len(key_list), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_batch(self, keys: list[str], dimension: int | None = None) -> FloatMatrix:
        tf = self._tf
        expected = self._dimension if dimension is None else dimension
        where = f"embedder {str(self._path)!r}"
        result = _call(tf, self._endpoint, tf.constant(keys, dtype=tf.string), where)
        shape = tuple(result.shape)
        if len(shape) != 2 or shape[0] != len(keys) or (expected > 0 and shape[1] != expected):
            wanted = f"({len(keys)}, {expected if expected > 0 else 'd'})"
            raise ModelError(f"{where} returned shape {shape} for {len(keys)} keys; expected {wanted}")
        return _to_float32(result, where)

    def _check_input_spec(self) -> None:
        spec = self._endpoint.input_spec
        tf = self._tf
        if spec.dtype is not None and spec.dtype != tf.string:
            raise ModelError(
                f"{self._endpoint.description} of {str(self._path)!r} takes {spec.describe()} input; "
                "an embedder takes a 1-D batch of strings (is this a scoring model?)"
            )
        if spec.shape is not None and len(spec.shape) != 1:
            raise ModelError(
                f"{self._endpoint.description} of {str(self._path)!r} takes {spec.describe()} input; "
                "an embedder takes a 1-D batch of strings, shape (n,)"
            )

    def _infer_dimension(self) -> int:
        spec = self._endpoint.output_spec
        where = f"embedder {str(self._path)!r}"
        if spec.dtype is not None and not _is_float(spec.dtype):
            raise ModelError(f"{where} declares {spec.describe()} output; expected float (n, d)")
        if spec.shape is not None:
            if len(spec.shape) != 2:
                raise ModelError(f"{where} declares {spec.describe()} output; expected float (n, d)")
            declared = spec.shape[1]
            if declared is not None:
                return int(declared)
        # The width is not declared: ask the model.
        probe = min(self._known) if self._known else _DEFAULT_PROBE_KEY
        return int(self._embed_batch([probe], dimension=0).shape[1])


def _read_vocabulary(tf: ModuleType, loaded: Any) -> tuple[str, ...] | None:
    """The keys of the model's one string -> int64 lookup table, by index; None when there is not exactly one."""
    tables: list[tuple[Any, Any]] = []
    for trackable in tf.train.TrackableView(loaded).descendants():
        if not isinstance(trackable, tf.saved_model.experimental.TrackableResource):
            continue
        try:
            keys, values = tf.raw_ops.LookupTableExportV2(
                table_handle=trackable.resource_handle, Tkeys=tf.string, Tvalues=tf.int64
            )
        except (tf.errors.OpError, ValueError, TypeError):
            continue  # not a lookup table, or not one keyed by strings
        tables.append((keys, values))
    if len(tables) != 1:
        return None
    keys, values = tables[0]
    order = np.argsort(np.asarray(values), kind="stable")
    return tuple(key.decode("utf-8") for key in np.asarray(keys)[order])


# -------------------------------------------------------------------- reranker


class SavedModelReranker:
    """A :class:`~two_stage_rec.protocols.Reranker` over a SavedModel scoring concatenated pairs.

    The model must take a float tensor of shape (n, d_user + d_item), row i
    being ``concat(user_vectors[i], item_vectors[i])``, and return (n, 1) or
    (n,) scores, higher is better, as the notebook's
    ``scoring_model(tf.concat([u, m], axis=1))`` does. All pairs are scored
    in one model call (the notebook made one call per candidate).

    Args:
        path: the SavedModel directory.
        signature: which function to call; see the module docs.
        output: the output to use when the endpoint returns several (a dict).

    Raises:
        MissingDependencyError: TensorFlow is not installed.
        ModelError: the path does not exist or is not a SavedModel, or the
            endpoint does not take a float (n, width) tensor or does not
            return (n, 1) or (n,) float scores.

    Thread safety: ``score`` only reads the model and may run concurrently.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signature: str | None = None,
        output: str | None = None,
    ) -> None:
        self._tf = _tensorflow()
        self._path, self._model = _load_saved_model(self._tf, path)
        self._endpoint = _resolve_endpoint(self._tf, self._model, signature, output)
        self._input_dtype = np.dtype(np.float32)
        self._input_width = self._check_specs()
        if self._input_width is not None:
            # The model declares its width, so a two-row probe checks the output now
            # rather than at the first request.
            probe = np.zeros((2, self._input_width), dtype=np.float32)
            self._score_pairs(probe)

    def __repr__(self) -> str:
        return (
            f"SavedModelReranker(path={str(self._path)!r}, endpoint={self._endpoint.description!r}, "
            f"input_width={self._input_width})"
        )

    @property
    def input_width(self) -> int | None:
        """d_user + d_item the model expects, or None when it does not declare it."""
        return self._input_width

    @property
    def path(self) -> Path:
        """The SavedModel directory."""
        return self._path

    def score(self, user_vectors: npt.ArrayLike, item_vectors: npt.ArrayLike) -> FloatVector:
        """Score row pairs ``(user_vectors[i], item_vectors[i])`` in one model call.

        Args:
            user_vectors: array-like (n, d_user).
            item_vectors: array-like (n, d_item); d_user + d_item must equal
                :attr:`input_width` when the model declares it.

        Returns:
            float32 array (n,); higher means the item suits the user better.
            An empty batch gives (0,) without calling the model.

        Raises:
            InvalidInputError: the arrays are not numeric 2-D, or n differs.
            DimensionMismatchError: d_user + d_item differs from :attr:`input_width`.
            ModelError: the model failed or returned a wrong shape or dtype.
        """
        users = self._as_matrix(user_vectors, "user vectors")
        items = self._as_matrix(item_vectors, "item vectors")
        if users.shape[0] != items.shape[0]:
            raise InvalidInputError(
                f"got {users.shape[0]} user vectors and {items.shape[0]} item vectors; they are scored in pairs"
            )
        width = users.shape[1] + items.shape[1]
        if self._input_width is not None and width != self._input_width:
            raise DimensionMismatchError(self._input_width, width, "concatenated user and item vectors")
        if users.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        return self._score_pairs(np.concatenate([users, items], axis=1))

    @staticmethod
    def _as_matrix(vectors: npt.ArrayLike, what: str) -> FloatMatrix:
        try:
            matrix = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what} are not a numeric array: {exc}") from exc
        if matrix.ndim != 2:
            raise InvalidInputError(f"{what} must be 2-D (n, d), got shape {matrix.shape}")
        return matrix

    def _score_pairs(self, pairs: FloatMatrix) -> FloatVector:
        tf = self._tf
        where = f"reranker {str(self._path)!r}"
        batch = tf.constant(pairs.astype(self._input_dtype, copy=False))
        result = _call(tf, self._endpoint, batch, where)
        shape = tuple(result.shape)
        n = pairs.shape[0]
        if shape not in ((n,), (n, 1)):
            raise ModelError(f"{where} returned shape {shape} for {n} pairs; expected ({n}, 1) or ({n},)")
        return _to_float32(result, where).reshape(n)

    def _check_specs(self) -> int | None:
        """Check the declared input and output; return the declared input width, if any."""
        where = f"reranker {str(self._path)!r} ({self._endpoint.description})"
        inputs, outputs = self._endpoint.input_spec, self._endpoint.output_spec
        if inputs.dtype is not None:
            if not _is_float(inputs.dtype):
                raise ModelError(
                    f"{where} takes {inputs.describe()} input; a reranker takes float (n, d_user + d_item) "
                    "(is this an embedder?)"
                )
            self._input_dtype = np.dtype(inputs.dtype.as_numpy_dtype)
        if inputs.shape is not None and len(inputs.shape) != 2:
            raise ModelError(f"{where} takes {inputs.describe()} input; expected float (n, d_user + d_item)")
        if inputs.shape is not None and inputs.shape[0] is not None:
            raise ModelError(
                f"{where} accepts only batches of exactly {inputs.shape[0]} rows; "
                "save it with a batch dimension of None to score all candidates in one call"
            )
        if outputs.dtype is not None and not _is_float(outputs.dtype):
            raise ModelError(f"{where} declares {outputs.describe()} output; expected float (n, 1) or (n,)")
        if outputs.shape is not None and not (
            len(outputs.shape) == 1 or (len(outputs.shape) == 2 and outputs.shape[1] in (1, None))
        ):
            raise ModelError(f"{where} declares {outputs.describe()} output; expected float (n, 1) or (n,)")
        width = None if inputs.shape is None else inputs.shape[1]
        return None if width is None else int(width)
