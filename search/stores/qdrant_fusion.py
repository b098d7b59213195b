"""Named vectors and the Query API on ``qdrant-client``: the neutral types of :mod:`search.stores.base` as
qdrant-client models (a server, or local mode), the same requests the edge store sends its engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qdrant_client import models

from search.stores.base import (
    PASSAGE_VECTOR,
    Boost,
    CollectionParams,
    Filter,
    Nearest,
    Prefetch,
    Query,
    Rrf,
    VectorSpec,
)

__all__ = ["to_filter", "layout_of", "vectors_config", "point_vector", "query_request", "candidate_pool"]


def vectors_config(params: CollectionParams, on_disk: bool | None) -> tuple[Any, Any]:
    """(``vectors_config``, ``sparse_vectors_config``) of a collection's create request."""
    if not params.vectors:
        return models.VectorParams(size=params.vector_size, distance=models.Distance.COSINE, on_disk=on_disk), None
    dense: dict[str, models.VectorParams] = {}
    sparse: dict[str, models.SparseVectorParams] = {}
    for name, spec in params.vectors.items():
        if spec.kind == "sparse":
            sparse[name] = models.SparseVectorParams(modifier=models.Modifier.IDF if spec.idf else None)
            continue
        multi = spec.kind == "multivector"
        dense[name] = models.VectorParams(
            size=params.size_of(name), distance=models.Distance.COSINE, on_disk=on_disk,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM) if multi else None,
            hnsw_config=None if spec.index else models.HnswConfigDiff(m=0),
        )
    return dense, sparse or None


def _value(params: CollectionParams, name: str, value: Any, what: str) -> Any:
    spec = params.vectors.get(name)
    if spec is None:
        raise ValueError(f"{what}: the collection has no vector {name!r} (it has {', '.join(params.vectors) or 'one unnamed'})")
    if spec.kind == "sparse":
        return models.SparseVector(indices=[int(i) for i in value.indices], values=[float(v) for v in value.values])
    if spec.kind == "multivector":
        if len(value) and not hasattr(value[0], "__len__"):  # one query vector: one row
            return [[float(x) for x in value]]
        return [[float(x) for x in row] for row in value]
    return [float(x) for x in value]


def point_vector(params: CollectionParams, pid: str, vector: Sequence[float] | None,
                 vectors: Mapping[str, Any] | None) -> Any:
    """The ``vector`` of a ``PointStruct``: the one unnamed vector, or every named one."""
    if not params.vectors:
        return [float(x) for x in vector or []]
    given = dict(vectors) if vectors is not None else ({PASSAGE_VECTOR: vector} if vector is not None else {})
    missing = [n for n in params.vectors if n not in given]
    if missing:
        raise ValueError(f"point {pid} lacks the vector(s) {', '.join(missing)} of the collection")
    return {n: _value(params, n, v, f"point {pid}") for n, v in given.items()}


def _stage_query(params: CollectionParams, q: Nearest | Rrf) -> Any:
    if isinstance(q, Rrf):
        return models.RrfQuery(rrf=models.Rrf(k=int(q.k), weights=[float(w) for w in q.weights] if q.weights else None))
    return _value(params, q.using, q.vector, "query")


def candidate_pool(request: Query) -> int:
    """How many points the last stage can rank at most: the sum of its prefetches' limits (or its limit)."""
    if not request.prefetch:
        return request.limit
    return max(request.limit, sum(p.limit for p in request.prefetch))


def query_request(params: CollectionParams, request: Query, *, to_filter: Callable[[Filter | None], Any],
                  search_params: Callable[[bool], Any], limit: int, with_payload: Any, with_vector: Any) -> Any:
    """The ``models.QueryRequest`` of a neutral :class:`Query`; the request's filter reaches every stage."""
    base = request.filter

    def both(extra: Filter | None) -> Filter | None:
        if not extra:
            return base
        return Filter(base.must + extra.must) if base else extra

    def stage(p: Prefetch) -> Any:
        flt = both(p.filter)
        nearest = isinstance(p.query, Nearest)
        return models.Prefetch(
            prefetch=[stage(c) for c in p.prefetch] or None, query=_stage_query(params, p.query),
            using=p.query.using if nearest else None, filter=to_filter(flt), limit=int(p.limit),
            params=search_params(bool(flt)) if nearest else None,
        )

    top = request.query
    using = None
    if isinstance(top, Boost):
        cond = models.FieldCondition(key=top.field, match=models.MatchAny(any=list(top.values)))
        query: Any = models.FormulaQuery(
            formula=models.SumExpression(sum=["$score[0]", models.MultExpression(mult=[float(top.boost), cond])]),
            defaults={"$score[0]": 0.0},
        )
    else:
        query = _stage_query(params, top)
        using = top.using if isinstance(top, Nearest) else None
    return models.QueryRequest(
        prefetch=[stage(p) for p in request.prefetch] or None, query=query, using=using, filter=to_filter(base),
        limit=int(limit), params=search_params(bool(base)) if isinstance(top, Nearest) else None,
        with_payload=with_payload, with_vector=with_vector,
    )


def layout_of(info: Any) -> CollectionParams:
    """The vector layout of a collection from its ``get_collection`` answer (named vectors or one unnamed)."""
    vp = info.config.params.vectors
    sparse = info.config.params.sparse_vectors or {}
    if not isinstance(vp, dict) and not sparse:
        return CollectionParams(vector_size=int(vp.size))
    specs: dict[str, VectorSpec] = {}
    size = 0
    for vname, v in (vp or {}).items():
        size = size or int(v.size)
        multi = v.multivector_config is not None
        specs[vname] = VectorSpec("multivector" if multi else "dense", int(v.size),
                                  index=not (v.hnsw_config is not None and v.hnsw_config.m == 0))
    for vname, sv in sparse.items():
        specs[vname] = VectorSpec("sparse", idf=sv.modifier == models.Modifier.IDF)
    return CollectionParams(vector_size=size, vectors=specs)


def to_filter(flt: Filter | None) -> models.Filter | None:
    """The client's filter of a neutral one (None when empty)."""
    if not flt:
        return None
    return models.Filter(
        must=[
            models.FieldCondition(
                key=c.field,
                match=models.MatchValue(value=c.values[0]) if len(c.values) == 1 else models.MatchAny(any=list(c.values)),
            )
            for c in flt.must
        ]
    )
