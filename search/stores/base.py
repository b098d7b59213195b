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
    "DEFAULT_OVERSAMPLING",
    "neutral_vectors",
    "float_list",
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


#: Oversampling of int8-quantized searches before rescoring with the original vectors: 2x the limit (Qdrant's
#: default). On the full release with e5-small, the passage leg's top 100 equals the exact top 100 for all 178
#: job-ad sentences at 2x (1 differs at 1.5x, all at 1x); 4x costs ~0.17 ms more per hybrid request for nothing.
DEFAULT_OVERSAMPLING = 2.0

#: The dense vector that ``vector`` means in a collection of named vectors, and the one plain
#: :meth:`Store.search` searches there.
PASSAGE_VECTOR = "passage"


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: term ids and weights (anything with ``.indices`` and ``.values`` is accepted too)."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class VectorSpec:
    """One named vector of a collection.

    ``dense``: one vector per point (cosine); ``multivector``: several rows per point, scored by MaxSim of
    cosines; ``sparse``: term weights, multiplied by the engine's IDF when ``idf``. ``size`` 0 means the
    collection's ``vector_size``. ``index``: an HNSW graph above the indexing threshold (a multivector
    without one is scanned, or used to rescore the candidates of other prefetches).
    """

    kind: Literal["dense", "multivector", "sparse"] = "dense"
    size: int = 0
    index: bool = True
    idf: bool = True


Vector = Any  # list[float] (dense) | list[list[float]] (multivector) | SparseVector


@dataclass(frozen=True)
class StoredPoint:
    """A point as written to or read from a store. ``id`` is a UUID string.

    ``vector`` is the one vector of a collection without named vectors; a collection with named vectors
    takes ``vectors`` (name -> vector) and, read back, also gives the passage one as ``vector``.
    """

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None
    vectors: dict[str, Vector] | None = None


@dataclass(frozen=True)
class ScoredPoint:
    """A search hit as a store returns it: cosine similarity (or the query's fused score) as ``score``."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: list[float] | None = None
    vectors: dict[str, Vector] | None = None


def float_list(vector: Sequence[float]) -> list[float]:
    """``vector`` as a list of Python floats, what the engines take: a list of floats (what the searchers build)
    as it is, anything else (a numpy row, a tuple) converted."""
    if type(vector) is list and (not vector or type(vector[0]) is float):
        return vector
    return [float(x) for x in vector]


def neutral_vectors(v: Any) -> tuple[list[float] | None, dict[str, Any] | None]:
    """(``vector``, ``vectors``) of the vector(s) a store returns for a record: the passage (or the one unnamed)
    vector, and every named one (dense as a list, multivector as a list of rows, sparse as :class:`SparseVector`)."""
    if v is None:
        return None, None
    if not isinstance(v, dict):
        return list(v), None
    out: dict[str, Any] = {}
    for name, x in v.items():
        if hasattr(x, "indices"):
            out[name] = SparseVector(tuple(int(i) for i in x.indices), tuple(float(y) for y in x.values))
        else:
            out[name] = [list(r) for r in x] if x and isinstance(x[0], (list, tuple)) else list(x)
    if "" in out and len(out) == 1:  # the one unnamed vector, given by name ""
        return out[""], None
    main = out.get(PASSAGE_VECTOR)
    return (main if isinstance(main, list) and (not main or not isinstance(main[0], list)) else None), out


# --- the Query API, neutral ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Nearest:
    """Score points by one named vector: cosine (dense), MaxSim (multivector query rows) or dot (sparse)."""

    using: str
    vector: Vector


@dataclass(frozen=True)
class Rrf:
    """Fuse the prefetches by Qdrant's (weighted) reciprocal rank fusion with constant ``k``."""

    k: int = 2
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Boost:
    """``$score[0] + boost`` where ``payload[field]`` matches any of ``values``, else ``$score[0]`` (0 if absent)."""

    field: str
    values: tuple[str, ...]
    boost: float


@dataclass(frozen=True)
class Prefetch:
    """A stage of candidates; ``filter`` is ANDed with the request's filter, which reaches every stage."""

    query: Nearest | Rrf
    limit: int
    prefetch: tuple[Prefetch, ...] = ()
    filter: Filter | None = None


@dataclass(frozen=True)
class Query:
    """One request of :meth:`Store.query`: the last stage over the prefetches, the best ``limit`` kept."""

    query: Nearest | Rrf | Boost
    prefetch: tuple[Prefetch, ...] = ()
    limit: int = 10
    filter: Filter | None = None


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
    # Named vectors (hybrid collections); empty: one unnamed dense vector of vector_size.
    vectors: dict[str, VectorSpec] = field(default_factory=dict)
    # The points the collection will hold, where its writer knows (an ingest does): decides graph_m().
    expected_points: int | None = None

    def __post_init__(self) -> None:
        # Read back from JSON, the specs are dicts.
        if any(isinstance(v, Mapping) for v in self.vectors.values()):
            object.__setattr__(self, "vectors", {k: VectorSpec(**v) if isinstance(v, Mapping) else v
                                                 for k, v in self.vectors.items()})

    def graph_m(self) -> int:
        """The HNSW ``m`` of the dense vectors: ``hnsw_m``, or 0 (no graph) for a collection known to stay at or
        below ``indexing_threshold`` points: searches there scan every candidate (the full-scan threshold), so a
        graph would never be walked and only cost its build."""
        if self.expected_points is not None and self.expected_points <= self.indexing_threshold:
            return 0
        return self.hnsw_m

    def indexing_threshold_kb(self) -> int:
        """The engines' indexing threshold, in KB of vectors (``vector_size`` float32 a point): where their
        optimizer turns plain segments into indexed ones, with the HNSW graph and the int8 copies. 1 KB when
        there is no graph and int8 is asked for, so that ``optimize`` builds the int8 copies at any size (an
        int8 scan, rescored, is ~2.5x a float32 scan at ESCO size, docs/edge-store.md); else
        ``indexing_threshold`` points."""
        return 1 if self._copies_without_graph() else self.kb_of(self.indexing_threshold)

    def indexes(self, points: int) -> bool:
        """Whether ``optimize`` turns a collection of ``points`` into indexed segments (written beside the plain
        ones before those go): always under :meth:`indexing_threshold_kb` of 1 KB, else from
        ``indexing_threshold`` points on."""
        return self._copies_without_graph() or points >= self.indexing_threshold

    def kb_of(self, points: int) -> int:
        """``points`` in the unit of the engines' thresholds: KB of their float32 vectors (at least 1)."""
        return max(1, points * self.vector_size * 4 // 1024)

    def _copies_without_graph(self) -> bool:
        # int8 copies asked for and no graph built: optimize indexes at any size, for the copies alone
        return self.quantization == "int8" and self.graph_m() == 0

    def size_of(self, name: str) -> int:
        """The dimension of a dense or multivector named vector."""
        spec = self.vectors[name]
        return spec.size or self.vector_size


def payload_selection(with_payload: bool | Sequence[str]) -> Any:
    """``with_payload`` as both engines take it: True/False as is, payload keys as a list."""
    return with_payload if isinstance(with_payload, bool) else list(with_payload)


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

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """The points of ``ids`` that exist (``with_payload``: True, False or the payload keys to read)."""
        ...

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
        with_payload: bool | Sequence[str] = True,
    ) -> list[list[ScoredPoint]]:
        """One batch request: the hits of each query vector, best first.

        With ``group_by``, at most one hit (the best) per distinct value of that payload field and
        ``limit`` groups. ``with_payload``: True (the whole payload), False (none: an empty dict) or the
        payload keys to return (the others never leave the store; a missing key is simply absent).
        """
        ...

    def query(
        self,
        name: str,
        requests: Sequence[Query],
        *,
        group_by: str | None = None,
        with_vectors: bool | Sequence[str] = False,
        with_payload: bool | Sequence[str] = True,
        exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> list[list[ScoredPoint]]:
        """One batch of Query API requests (prefetches, fusion, boosts), in the engine; hits best first.

        With ``group_by``, the first (best) hit per distinct value of that payload field, in the order of
        the final scores, ``limit`` groups. ``with_vectors``: the named vectors to return with each hit;
        ``with_payload``: True (all), False, or the payload fields to return.
        """
        ...

    def close(self) -> None: ...
