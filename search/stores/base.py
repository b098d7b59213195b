"""The neutral types of the store interface: what ``ingest`` and ``search`` say to any Qdrant store.

:class:`Store` is the protocol each implementation in :mod:`search.stores` follows; :class:`Filter`
(an AND of "field matches any of these values") is turned by each store into its own filter conditions,
so filtering always happens inside the vector search, never afterwards in Python. This module imports
nothing of the project: every other module of ``search.stores`` builds on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Condition",
    "Filter",
    "StoredPoint",
    "ScoredPoint",
    "CollectionParams",
    "Store",
]


@dataclass(frozen=True)
class Condition:
    """``payload[field]`` (a keyword or a list of keywords) matches any of ``values``."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Filter:
    """All conditions must hold (AND); each condition is a match-any (OR within one field)."""

    must: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must)

    def matches(self, payload: Mapping[str, Any]) -> bool:
        """Evaluate the filter on a payload in Python: for tests and brute-force references only."""
        for cond in self.must:
            value = payload.get(cond.field)
            have = set(value) if isinstance(value, list) else {value}
            if not have.intersection(cond.values):
                return False
        return True


@dataclass(frozen=True)
class StoredPoint:
    """A point as written to or read from a store. ``id`` is a UUID string."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class ScoredPoint:
    """A search hit as a store returns it (cosine similarity as ``score``)."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class CollectionParams:
    """How a collection is laid out. Cluster fields are ignored by the embedded stores."""

    vector_size: int
    on_disk_vectors: bool = False
    quantization: Literal["none", "int8"] = "none"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    # Below this many points the server keeps exact (plain) search: HNSW only pays off above it.
    indexing_threshold: int = 20_000
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """What the worker and the searcher need of a Qdrant store.

    Names passed to read methods may be aliases; write methods take real collection names.
    """

    kind: str  # "server", "edge" or "local"

    def describe(self) -> str:
        """Where this store is, for messages (never includes secrets)."""
        ...

    # --- collections -----------------------------------------------------------------------------
    def list_collections(self) -> list[str]: ...

    def collection_exists(self, name: str) -> bool:
        """True when ``name`` is a collection or an alias of one."""
        ...

    def create_collection(
        self, name: str, params: CollectionParams, metadata: Mapping[str, Any], keyword_fields: Sequence[str]
    ) -> None:
        """Create an empty collection with cosine distance and a keyword index on each field."""
        ...

    def delete_collection(self, name: str) -> None: ...

    def get_metadata(self, name: str) -> dict[str, Any]:
        """The metadata recorded with the collection (or alias); raises CollectionNotFound."""
        ...

    def update_metadata(self, name: str, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into the collection's metadata."""
        ...

    def payload_indexes(self, name: str) -> dict[str, str]:
        """Indexed payload fields and their types (``keyword``, ...)."""
        ...

    def optimize(self, name: str) -> None:
        """Build indexes after a bulk load (a no-op where the store does it by itself)."""
        ...

    # --- aliases ---------------------------------------------------------------------------------
    def resolve_alias(self, alias: str) -> str | None:
        """The collection the alias points to, or None."""
        ...

    def list_aliases(self) -> dict[str, str]: ...

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one atomic step: readers see the old or the new one."""
        ...

    def delete_alias(self, alias: str) -> None: ...

    # --- points ----------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None: ...

    def count(self, name: str, filter: Filter | None = None) -> int: ...

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]: ...

    def scroll(
        self, name: str, with_vectors: bool = False, with_payload: bool | Sequence[str] = True, batch_size: int = 1000
    ) -> Iterator[StoredPoint]:
        """Every point of the collection, in id order."""
        ...

    def search(
        self,
        name: str,
        vectors: Sequence[Sequence[float]],
        *,
        filter: Filter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
        group_by: str | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_vectors: bool = False,
    ) -> list[list[ScoredPoint]]:
        """One batch request: the hits of each query vector, best first.

        With ``group_by``, at most one hit (the best) per distinct value of that payload field and
        ``limit`` groups.
        """
        ...

    def close(self) -> None: ...
