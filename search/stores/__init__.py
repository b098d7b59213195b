"""One small interface over the Qdrant stores, shared by ``ingest`` and ``search``.

Three implementations, chosen by :func:`open_store` from the settings:

* ``server``: a Qdrant server (or cluster) through ``qdrant-client`` (:mod:`search.stores.qdrant`);
* ``edge``: Qdrant's own engine in-process through ``qdrant-edge-py`` (:mod:`search.stores.edge`), the
  embedded default;
* ``local``: qdrant-client's local mode (:mod:`search.stores.qdrant`), pure Python, exact search.

Neither the worker nor the searcher cares which one it talks to. The protocol and its neutral types live
in :mod:`search.stores.base` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

from search.stores.base import (
    PASSAGE_VECTOR,
    Boost,
    CollectionParams,
    Condition,
    Filter,
    Nearest,
    Prefetch,
    Query,
    Rrf,
    ScoredPoint,
    SparseVector,
    Store,
    StoredPoint,
    VectorSpec,
)

__all__ = [
    "Condition",
    "Filter",
    "SparseVector",
    "VectorSpec",
    "StoredPoint",
    "ScoredPoint",
    "CollectionParams",
    "Nearest",
    "Rrf",
    "Boost",
    "Prefetch",
    "Query",
    "PASSAGE_VECTOR",
    "Store",
    "open_store",
]


def open_store(settings: Any) -> Store:
    """Open the store the settings name (a :class:`search.settings.SearchSettings`).

    The implementations are imported here, on first use, so that ``import search`` stays cheap (no
    qdrant-client or qdrant-edge at import time); they import only :mod:`search.stores.base`.

    Raises:
        QdrantUnavailable: the server cannot be reached.
        StoreLocked: the embedded store is opened by another process.
    """
    kind = settings.store_kind
    if kind == "server":
        from search.stores.qdrant import QdrantClientStore

        return QdrantClientStore.connect(settings)
    if kind == "local":
        from search.stores.qdrant import QdrantClientStore

        return QdrantClientStore.local(settings.store_path)
    from search.stores.edge import EdgeStore

    return EdgeStore(settings.store_path)
