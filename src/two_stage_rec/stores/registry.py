"""Vector stores by name: the built-in ones and any a third party registers.

The one place store names live. The CLI's ``--store`` choices, the service,
the demo and :func:`~two_stage_rec.assembly.assemble` all ask this module, so
a package that declares an entry point in the ``two_stage_rec.stores`` group
is usable everywhere without changes here::

    # the third party's pyproject.toml
    [project.entry-points."two_stage_rec.stores"]
    mystore = "my_package.store:MyVectorStore"

The entry point names a callable taking keyword arguments ``dimension``,
``metric`` and the store's own settings, and returning a
:class:`~two_stage_rec.protocols.VectorStore`. Names are resolved and modules
imported only when a store is opened: importing this module is light.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from two_stage_rec.errors import InvalidInputError
from two_stage_rec.protocols import VectorStore
from two_stage_rec.types import Metric

__all__ = ["BUILTIN_STORES", "ENTRY_POINT_GROUP", "open_store", "store_names"]

ENTRY_POINT_GROUP = "two_stage_rec.stores"

BUILTIN_STORES: dict[str, str] = {
    "faiss": "two_stage_rec.stores.faiss:FaissVectorStore",
    "memory": "two_stage_rec.stores.memory:InMemoryVectorStore",
    "pgvector": "two_stage_rec.stores.pgvector:PgvectorVectorStore",
    "pinecone": "two_stage_rec.stores.pinecone:PineconeVectorStore",
}
"""Name -> ``module:attribute`` of the stores this package ships (also declared as entry points)."""

_ENVIRONMENT: dict[str, dict[str, str]] = {
    # Settings a store reads from the environment when not passed, so a
    # service can be configured without flags (the API key is read by the store itself).
    "pinecone": {"index_name": "PINECONE_INDEX", "host": "PINECONE_HOST"},
}


def _registered() -> dict[str, str]:
    found = dict(BUILTIN_STORES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def store_names() -> list[str]:
    """Every store name that :func:`open_store` accepts, sorted: built-in first-class and registered ones."""
    return sorted(_registered())


def _resolve(target: str) -> Callable[..., Any]:
    # An entry point's value is "module:attribute", optionally followed by "[extras]".
    module_name, _, attribute = target.split("[", 1)[0].strip().partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise InvalidInputError(f"store entry point {target!r} is not callable")
    factory: Callable[..., Any] = found
    return factory


def open_store(
    name: str,
    *,
    dimension: int,
    metric: Metric = "dotproduct",
    settings: Mapping[str, Any] | None = None,
) -> VectorStore:
    """Create (or connect to) a vector store by name.

    Args:
        name: one of :func:`store_names` (``"faiss"``, ``"memory"``,
            ``"pinecone"``, or a registered third-party name).
        dimension: width of the vectors it will hold.
        metric: similarity; the two towers are trained for ``"dotproduct"``.
        settings: the store's own keyword settings (e.g. ``{"index": "hnsw"}``
            for FAISS, ``{"index_name": "movies"}`` for Pinecone). Pinecone's
            ``index_name``/``host`` default to ``$PINECONE_INDEX``/``$PINECONE_HOST``;
            its API key is read by the store from ``$PINECONE_API_KEY``.

    Returns:
        A store satisfying the :class:`~two_stage_rec.protocols.VectorStore` contract.

    Raises:
        InvalidInputError: unknown name (the known names are listed), a setting
            the store does not take, or the store refused its settings.
        MissingDependencyError: the store's extra is not installed.
    """
    registered = _registered()
    if name not in registered:
        raise InvalidInputError(f"unknown store {name!r}; choose one of {', '.join(sorted(registered))}")
    options = dict(settings or {})
    for key, variable in _ENVIRONMENT.get(name, {}).items():
        if options.get(key) is None and os.environ.get(variable):
            options[key] = os.environ[variable]
    options = {key: value for key, value in options.items() if value is not None}
    doubled = sorted({"dimension", "metric"} & set(options))
    if doubled:
        raise InvalidInputError(f"pass {' and '.join(doubled)} as open_store's own argument, not in settings")
    if name == "pinecone" and not (options.get("index_name") or options.get("host")):
        raise InvalidInputError(
            "the pinecone store needs an index: the setting index_name or host (command line: --pinecone-index "
            "NAME or --pinecone-host HOST), or $PINECONE_INDEX / $PINECONE_HOST; the API key comes from "
            "$PINECONE_API_KEY"
        )
    if name == "pinecone" and options.get("index_name") and "create_if_missing" not in options:
        options["create_if_missing"] = True  # a named index that does not exist yet is created, as the notebook did
    factory = _resolve(registered[name])
    try:
        store = factory(dimension=dimension, metric=metric, **options)
    except TypeError as exc:
        raise InvalidInputError(f"store {name!r} does not accept settings {sorted(options)}: {exc}") from exc
    if not isinstance(store, VectorStore):
        raise InvalidInputError(f"store {name!r} ({registered[name]}) did not return a VectorStore")
    return store
