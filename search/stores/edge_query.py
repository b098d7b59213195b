"""How the edge store speaks to ``qdrant-edge``: collection config, filters, search params, grouping.

Pure translation from the neutral types of :mod:`search.stores.base` into the engine's objects, and the
grouping by a payload field that the engine lacks (done as the Qdrant server does it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import qdrant_edge as qe

from search.stores.base import DEFAULT_OVERSAMPLING, CollectionParams, Filter, ScoredPoint, neutral_vectors
from search.stores.edge_fusion import GroupValues, fill_group_values, named_vector_config

__all__ = [
    "DEFAULT_FULL_SCAN_THRESHOLD", "DEFAULT_ACORN_MAX_SELECTIVITY", "DEFAULT_HNSW_EF", "DEFAULT_OVERSAMPLING",
    "edge_filter", "edge_config", "search_params", "scored", "grouped", "group_keys",
]

# Filtered searches whose filter matches fewer points than this (per segment, by the payload index's
# estimate) score every matching point instead of walking the HNSW graph: exact, and on 768-d vectors
# faster than the graph up to about this many points. See docs/edge-store.md for the measurements.
DEFAULT_FULL_SCAN_THRESHOLD = 20_000
# Filtered searches on the graph (more matches than the threshold) use ACORN (two-hop exploration) while
# the filter passes fewer than this fraction of the points: plain filtered HNSW loses recall from 50%
# selectivity down (0.96 at ef 128 on real ESCO embeddings). Near-total filters (grouping's "has the
# field") stay on the plain graph.
DEFAULT_ACORN_MAX_SELECTIVITY = 0.9
# ef of HNSW searches when the caller gives none (the engine's default is the collection's ef_construct):
# recall@10 0.998 unfiltered on real ESCO embeddings with m=16, ef_construct=100.
DEFAULT_HNSW_EF = 256


def edge_filter(flt: Filter | None, extra: Sequence[Any] = ()) -> Any:
    """The engine's filter for a neutral :class:`Filter` plus extra engine conditions (None when empty)."""
    conds: list[Any] = []
    if flt:
        for c in flt.must:
            if not c.values:
                raise ValueError(f"filter condition on {c.field!r} has no values")
            conds.append(qe.FieldCondition(key=c.field, match=qe.MatchAny(any=[str(v) for v in c.values])))
    conds.extend(extra)
    return qe.Filter(must=conds) if conds else None


def edge_config(params: CollectionParams) -> Any:
    """The engine's shard config for a collection's parameters (thresholds turned from points into KB)."""
    dim = params.vector_size
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"vector_size must be a positive integer, got {dim!r}")
    if params.quantization not in ("none", "int8"):
        raise ValueError(f"quantization must be 'none' or 'int8', got {params.quantization!r}")
    full_scan = int(params.extra.get("full_scan_threshold", DEFAULT_FULL_SCAN_THRESHOLD))
    quant = None
    if params.quantization == "int8":
        quant = qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8, quantile=float(params.extra.get("quantile", 0.99)), always_ram=True
        )
    hnsw = qe.HnswIndexConfig(
        m=params.graph_m(),
        ef_construct=params.hnsw_ef_construct,
        full_scan_threshold=params.kb_of(full_scan),
        payload_m=params.extra.get("payload_m"),
    )
    memory = qe.Memory.Cold if params.on_disk_vectors else None
    vectors: Any = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, memory=memory)
    sparse = None
    if params.vectors:
        vectors, sparse = named_vector_config(params, hnsw, memory)
    return qe.EdgeConfig(
        vectors=vectors or None,
        sparse_vectors=sparse or None,
        hnsw_config=hnsw,
        quantization_config=quant,
        optimizers=qe.EdgeOptimizersConfig(
            # Both thresholds are in KB of vectors for the engine, in points in CollectionParams.
            indexing_threshold=params.indexing_threshold_kb(),
        ),
        wal_enabled=False,
    )


def search_params(params: CollectionParams, *, filtered: bool, exact: bool, hnsw_ef: int | None,
                  limit: int) -> Any:
    """The engine's search params: ef, exactness, int8 rescoring and ACORN for filtered graph searches."""
    quant = None
    if params.quantization == "int8":
        # exact=True means exact: the original vectors, not the int8 copies
        quant = qe.QuantizationSearchParams(
            ignore=exact, rescore=True,
            oversampling=float(params.extra.get("oversampling", DEFAULT_OVERSAMPLING)),
        )
    ef = hnsw_ef if hnsw_ef is not None else max(int(params.extra.get("hnsw_ef", DEFAULT_HNSW_EF)), limit)
    acorn = None
    acorn_max = float(params.extra.get("acorn_max_selectivity", DEFAULT_ACORN_MAX_SELECTIVITY))
    if filtered and not exact and acorn_max > 0:
        acorn = qe.AcornSearchParams(enable=True, max_selectivity=acorn_max)
    return qe.SearchParams(hnsw_ef=ef, exact=exact, quantization=quant, acorn=acorn)


def scored(p: Any, with_vectors: Any) -> ScoredPoint:
    """A neutral :class:`ScoredPoint` of an engine hit."""
    vec, vecs = neutral_vectors(p.vector if with_vectors else None)
    return ScoredPoint(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}), vector=vec, vectors=vecs)


def group_keys(value: Any) -> list[str | int]:
    """The groups a payload value puts a point in: each keyword or integer (as Qdrant groups)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, (str, int)) and not isinstance(v, bool)]


Runner = Callable[[list[Any], int, list[Sequence[Any]], Any, bool], list[list[Any]]]
Fetch = Callable[[list[str]], dict[str, Any]]


def grouped(queries: list[Any], run: Runner, fetch: Fetch, group_by: str, limit: int,
            with_vectors: Any, cached: GroupValues | None = None) -> list[list[ScoredPoint]]:
    """The best hit of each distinct ``group_by`` value, ``limit`` groups ordered by best score.

    ``run(queries, limit, extra_conditions, with_payload, with_vectors)`` runs one batch; ``fetch(ids)`` reads the
    records (payload and the vectors asked for) of the kept hits. The engine has no grouping, so this does
    what the Qdrant server does: search, keep the first (best) hit of each new value, then search again
    excluding the values found (MatchExcept: a point with a list of values stays eligible while one of its
    values is not found yet), until ``limit`` groups or no more hits. The pages carry only the group field
    (converting every candidate's whole payload was most of the cost of a grouped batch); the kept hits'
    payloads come in one read at the end. With exact search the result is the exact grouping.

    ``cached``: (a cache of each point's ``group_by`` value by id, ``fetch`` of the points not in it). With it the
    pages carry ids and scores only: reading even one payload field of every candidate was most of the engine's
    time of a grouped page (a collection nobody writes while it is open for reading keeps its values).
    """
    groups: list[dict[Any, tuple[str, float]]] = [{} for _ in queries]
    page = [max(2 * limit, 16)] * len(queries)
    pending = list(range(len(queries)))
    while pending:
        lim = max(page[i] for i in pending)
        extra: list[Sequence[Any]] = []
        for i in pending:
            # Points without the field are in no group: leave them out of every page. Found keyword
            # groups are excluded from the next pages (integer groups are only skipped).
            keys = [k for k in groups[i] if isinstance(k, str)]
            if keys:
                extra.append([qe.FieldCondition(key=group_by, match=qe.MatchExcept(keys))])
            else:
                extra.append([qe.FieldCondition(key=group_by, is_empty=False)])
        results = run([queries[i] for i in pending], lim, extra, False if cached else [group_by], False)
        pages = [[(str(p.id), p) for p in hits] for hits in results]
        if cached is None:
            values = {pid: p.payload.get(group_by) if p.payload else None for found in pages for pid, p in found}
        else:  # the pages came without payload: their group values from the cache
            values = fill_group_values(cached, group_by, [[pid for pid, _p in found] for found in pages])
        still = []
        for i, found in zip(pending, pages):
            g = groups[i]
            before = len(g)
            for pid, p in found:
                for key in group_keys(values[pid]):
                    if key not in g and len(g) < limit:
                        g[key] = (pid, float(p.score))
            if len(g) < limit and len(found) == lim:
                # More candidates remain; if this page found no new group, look deeper.
                page[i] = max(2 * (limit - len(g)), 16) if len(g) > before else 2 * lim
                still.append(i)
        pending = still
    records = fetch(list(dict.fromkeys(pid for g in groups for pid, _ in g.values())))
    out = []
    for g in groups:
        hits = []
        for pid, score in g.values():
            rec = records[pid]
            vec, vecs = neutral_vectors(rec.vector if with_vectors else None)
            hits.append(ScoredPoint(pid, score, dict(rec.payload or {}), vec, vecs))
        out.append(hits)
    return out
