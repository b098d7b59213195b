"""Named vectors and the Query API on ``qdrant-edge``: the neutral types of :mod:`search.stores.base` in
the engine's terms (vector config, point vectors, prefetch trees, RRF, boosts), and grouping over a fused
list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import qdrant_edge as qe

from search.stores.base import (
    PASSAGE_VECTOR,
    Boost,
    CollectionParams,
    Filter,
    Nearest,
    Prefetch,
    Query,
    Rrf,
    ScoredPoint,
    float_list,
    neutral_vectors,
    payload_selection,
)

__all__ = [
    "run_queries", "named_vector_config", "point_vectors", "engine_query", "candidate_pool",
    "group_first", "vector_names", "fill_group_values", "GroupValues", "GROUP_VALUES_MAX",
]


def named_vector_config(params: CollectionParams, hnsw: Any, memory: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dense and multivector params, sparse params) by name, for ``qe.EdgeConfig``."""
    dense: dict[str, Any] = {}
    sparse: dict[str, Any] = {}
    for name, spec in params.vectors.items():
        if spec.kind == "sparse":
            sparse[name] = qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if spec.idf else None)
            continue
        if spec.kind not in ("dense", "multivector"):
            raise ValueError(f"vector {name!r}: kind must be dense, multivector or sparse, got {spec.kind!r}")
        multi = spec.kind == "multivector"
        own_hnsw = None
        if not spec.index:  # never an HNSW graph: scanned, or a rescoring stage
            own_hnsw = qe.HnswIndexConfig(m=0, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_threshold)
        dense[name] = qe.EdgeVectorParams(
            size=params.size_of(name),
            distance=qe.Distance.Cosine,
            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if multi else None,
            hnsw_config=own_hnsw,
            memory=memory,
        )
    return dense, sparse


def vector_names(params: CollectionParams) -> list[str]:
    """The named vectors of a collection (empty for an unnamed one)."""
    return list(params.vectors)


def _engine_vector(params: CollectionParams, name: str, value: Any, what: str) -> Any:
    spec = params.vectors.get(name)
    if spec is None:
        raise ValueError(f"{what}: the collection has no vector {name!r} (it has {', '.join(params.vectors) or 'one unnamed'})")
    if spec.kind == "sparse":
        return qe.SparseVector([int(i) for i in value.indices], [float(v) for v in value.values])
    dim = params.size_of(name)
    if spec.kind == "multivector":
        rows = [[float(x) for x in row] for row in value]
        if not rows or any(len(r) != dim for r in rows):
            raise ValueError(f"{what}: vector {name!r} needs rows of size {dim}")
        return rows
    vec = float_list(value)
    if len(vec) != dim:
        raise ValueError(f"{what}: vector {name!r} has size {len(vec)}; the collection's is {dim}")
    return vec


def point_vectors(params: CollectionParams, pid: str, vectors: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's vector dict of one point with named vectors (every name of the collection, checked)."""
    missing = [n for n in params.vectors if n not in vectors]
    if missing:
        raise ValueError(f"point {pid} lacks the vector(s) {', '.join(missing)} of the collection")
    return {n: _engine_vector(params, n, v, f"point {pid}") for n, v in vectors.items()}


def _stage_query(params: CollectionParams, q: Nearest | Rrf) -> Any:
    if isinstance(q, Rrf):
        return qe.Fusion.Rrf(k=int(q.k), weights=[float(w) for w in q.weights] if q.weights else None)
    if isinstance(q, Nearest):
        return qe.Query.Nearest(_engine_vector(params, q.using, q.vector, "query"), using=q.using)
    raise TypeError(f"unknown query stage {q!r}")


def _multi_query_rows(params: CollectionParams, q: Nearest) -> Nearest:
    """A multivector leg queried with one vector: one row."""
    spec = params.vectors.get(q.using)
    if spec is not None and spec.kind == "multivector" and q.vector and not isinstance(q.vector[0], (list, tuple)):
        return Nearest(q.using, [list(q.vector)])
    return q


def engine_query(
    params: CollectionParams, request: Query, *, to_filter: Callable[[Filter | None, Sequence[Any]], Any],
    search_params: Callable[[bool], Any], limit: int, offset: int = 0, with_payload: Any = True,
    with_vector: Any = False,
) -> Any:
    """The engine's ``QueryRequest`` of a neutral :class:`Query` (``limit``/``offset`` as given).

    The request's filter goes on the request and on every prefetch stage (the engine does not carry it
    down by itself in every version); each stage's own filter is ANDed with it.
    """
    base = request.filter

    def both(extra: Filter | None) -> Filter | None:
        if not extra:
            return base
        if not base:
            return extra
        return Filter(base.must + extra.must)

    def stage(p: Prefetch) -> Any:
        q = _multi_query_rows(params, p.query) if isinstance(p.query, Nearest) else p.query
        flt = both(p.filter)
        return qe.Prefetch(
            limit=int(p.limit), query=_stage_query(params, q),
            prefetches=[stage(c) for c in p.prefetch] or None,
            params=search_params(bool(flt)) if isinstance(q, Nearest) else None,
            filter=to_filter(flt, ()),
        )

    top = request.query
    if isinstance(top, Boost):
        cond = qe.FieldCondition(key=top.field, match=qe.MatchAny(any=[str(v) for v in top.values]))
        E = qe.Expression
        query: Any = qe.Formula(
            E.Sum([E.Variable("$score[0]"), E.Mult([E.Constant(float(top.boost)), E.Condition(cond)])]),
            defaults={"$score[0]": 0.0},
        )
        params_top = None
    else:
        q = _multi_query_rows(params, top) if isinstance(top, Nearest) else top
        query = _stage_query(params, q)
        params_top = search_params(bool(base)) if isinstance(q, Nearest) else None
    return qe.QueryRequest(
        limit=int(limit), offset=int(offset) or None, query=query,
        prefetches=[stage(p) for p in request.prefetch] or None,
        filter=to_filter(base, ()), params=params_top, with_payload=with_payload, with_vector=with_vector,
    )


def candidate_pool(request: Query) -> int:
    """How many points the last stage can rank at most: the sum of its prefetches' limits (or its limit)."""
    if not request.prefetch:
        return request.limit
    return max(request.limit, sum(p.limit for p in request.prefetch))


def group_first(hits: Sequence[ScoredPoint], group_by: str, limit: int, keys_of: Callable[[Any], list[Any]]
                ) -> list[ScoredPoint]:
    """The first (best) hit of each distinct ``group_by`` value, in order, ``limit`` groups.

    A point counts for a group while one of its values is new (exact for single-valued fields such as
    the concept URI, which is what the searcher groups by).
    """
    seen: set[Any] = set()
    out: list[ScoredPoint] = []
    for p in hits:
        keys = [k for k in keys_of((p.payload or {}).get(group_by)) if k not in seen]
        if not keys:
            continue
        seen.update(keys_of((p.payload or {}).get(group_by)))
        out.append(p)
        if len(out) == limit:
            break
    return out


def _with_vector(with_vectors: bool | Sequence[str]) -> Any:
    return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)


GroupValues = tuple[dict[str, Any], Callable[[list[str]], dict[str, Any]]]
#: Most group values a reading process keeps per collection and field (241 bytes each, tracemalloc: 24 MB); past it the
#: cache starts again empty. Every point of one ESCO language (13,896) or two fits many times.
GROUP_VALUES_MAX = 100_000
_UNSEEN = object()


def fill_group_values(group_values: GroupValues, group_by: str, ids: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The ``group_by`` value of every point of ``ids`` (lists of point ids; None for a point without the field):
    from the cache of ``group_values``, those it lacks read in one ``fetch`` and kept (the cache is emptied
    first when it would pass :data:`GROUP_VALUES_MAX`). The answer is a dict of its own, so another thread
    emptying the cache meanwhile changes nothing in it."""
    cache, fetch = group_values
    out: dict[str, Any] = {}
    missing = []
    for page in ids:
        for i in page:
            if i not in out:
                v = cache.get(i, _UNSEEN)
                out[i] = None if v is _UNSEEN else v
                if v is _UNSEEN:
                    missing.append(i)
    if missing:
        got = fetch(missing)
        if len(cache) + len(missing) > GROUP_VALUES_MAX:
            cache.clear()
        for i in missing:
            rec = got.get(i)
            out[i] = cache[i] = rec.payload.get(group_by) if rec is not None and rec.payload else None
    return out


def run_queries(
    shard: Any, params: CollectionParams, requests: Sequence[Query], *, group_by: str | None,
    with_vectors: bool | Sequence[str], with_payload: bool | Sequence[str] = True, to_filter: Callable[[Filter | None, Sequence[Any]], Any],
    search_params: Callable[[bool, int], Any], scored: Callable[[Any, Any], ScoredPoint],
    keys_of: Callable[[Any], list[Any]],
    group_values: GroupValues | None = None,
) -> list[list[ScoredPoint]]:
    """One ``query_batch`` of neutral requests on an open shard; with ``group_by`` the first hit per group.

    Grouping asks for the whole candidate pool of each request (all the last stage can rank) with only the
    group field, keeps the first hit per group in the final order, then reads the chosen points' payloads
    (and vectors) in one ``retrieve``: the fused order is never changed by excluding groups. ``group_values``:
    a cache of the group field by point id and the read of the points it lacks (:func:`edge_query.grouped`);
    with it the candidates come as ids and scores only.
    """
    wv = _with_vector(with_vectors)
    sel = payload_selection(with_payload)
    reqs = []
    for r in requests:
        if r.limit < 1:
            raise ValueError(f"limit must be >= 1, got {r.limit}")
        lim = candidate_pool(r) if group_by else r.limit
        reqs.append(engine_query(
            params, r, to_filter=to_filter, search_params=lambda filtered, lim=lim: search_params(filtered, lim),
            limit=lim, with_payload=(False if group_values else [group_by]) if group_by else sel,
            with_vector=False if group_by else wv,
        ))
    results = shard.query_batch(qe.QueryBatchRequest(reqs)) if reqs else []
    if not group_by:
        return [[scored(p, wv) for p in hits] for hits in results]
    pages = [[scored(p, False) for p in hits] for hits in results]
    if group_values is not None:  # the pool came without payload: its group values from the cache
        values = fill_group_values(group_values, group_by, [[p.id for p in page] for page in pages])
        for page in pages:
            for p in page:
                p.payload[group_by] = values[p.id]
    out = []
    for r, points in zip(requests, pages):
        chosen = group_first(points, group_by, r.limit, keys_of)
        recs = {str(x.id): x for x in shard.retrieve([p.id for p in chosen], with_payload=sel, with_vector=wv)} if chosen else {}
        full = []
        for p in chosen:
            rec = recs.get(p.id)
            vec, vecs = neutral_vectors(rec.vector if (rec is not None and wv) else None)
            full.append(ScoredPoint(p.id, p.score, dict(rec.payload or {}) if rec is not None else p.payload, vec, vecs))
        out.append(full)
    return out
