"""Hybrid search on the embedded edge store at 14k skills: search-side latency of each mode, disk per skill, and
the extra ingest cost of the hybrid representations — all in one run, side by side.

The shard holds the real release's skills (v1.1.1 English) with the representations of ``search.hybrid``:
``passage``, ``pref``, ``labels`` (multivector, one row per label), ``bm25`` (sparse, IDF) and ``label_keys``.
Vectors are random unit vectors of the encoder's size (the search cost does not depend on what they mean),
unless ``--encode`` encodes the real texts (slow on a small CPU; also times the ingest's encoding of passages
against labels). Queries: real ESCO descriptions' first words and alt labels (BM25 terms and exact keys are
real), one request at a time, with and without a filter. The request shapes are those the store sends
(``tests/unit/test_hybrid.py::_engine_hybrid``).

Run: ``python -m benchmarks.bench_hybrid [--queries 300] [--encode]``.

``--served`` measures the served path instead, on the collection the ``ESCO_*`` settings name (a real ingest):
``SkillSearch.search(text, mode=...)`` per query with its vector already in the encoder's query cache, so the
time is the search side (BM25 terms of the query, the request, the store, the display scores, the hits),
each mode interleaved with the others, with and without a filter; the first round (store pages and hit cache
cold) is printed apart from the later ones (the steady state).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_RELEASE, esco_passages, esco_records, machine
from search import hybrid as h


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def build(folder: Path, records: list[Any], dim: int, encode: bool) -> tuple[Any, dict[str, Any]]:
    import qdrant_edge as qe

    labels = [h.skill_labels(r.preferred_label, r.alt_labels, r.hidden_labels) for r in records]
    rows = sum(len(x) for x in labels)
    info: dict[str, Any] = {"skills": len(records), "label_rows": rows}
    rng = np.random.default_rng(0)
    if encode:
        from benchmarks.common import e5_small
        from search.encoding.encoder import SentenceTransformerEncoder

        enc = SentenceTransformerEncoder(str(e5_small()), backend="torch", precision="fp32", cache_size=0)
        t = time.perf_counter()
        passage = enc.encode_passages(esco_passages(records), batch_size=64)
        info["encode_passages_s"] = time.perf_counter() - t
        t = time.perf_counter()
        flat = enc._encode([x for ls in labels for x in ls], "query", 128)
        info["encode_labels_s"] = time.perf_counter() - t
        dim = passage.shape[1]
    else:
        passage = _unit(rng.normal(size=(len(records), dim)))
        flat = _unit(rng.normal(size=(rows, dim)))
    starts = np.cumsum([0] + [len(x) for x in labels])
    docs = [h.bm25_document(x) for x in labels]
    probe = h.Bm25Terms("en")
    avg_len = float(np.mean([probe.token_count(d) for d in docs]))
    bm25 = h.Bm25Terms("en", avg_len=avg_len)
    info["bm25_avg_len"] = round(avg_len, 2)
    multi = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
    cfg = qe.EdgeConfig(
        vectors={h.PASSAGE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                 h.PREF: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                 h.LABELS: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, multivector_config=multi)},
        sparse_vectors={h.BM25: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=10**7),  # plain (exact) below 20k points
        wal_enabled=False,
    )
    shard = qe.EdgeShard.create(str(folder), cfg)
    for f in (h.LABEL_KEYS_FIELD, "skill_type"):
        shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Keyword))
    t = time.perf_counter()
    t_bm25 = 0.0
    batch = []
    for i, r in enumerate(records):
        pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r.concept_uri}|en"))
        t0 = time.perf_counter()
        terms = bm25.document(docs[i], pid)
        t_bm25 += time.perf_counter() - t0
        lab = flat[starts[i]:starts[i + 1]]
        batch.append(qe.Point(pid, {h.PASSAGE: passage[i].tolist(), h.PREF: lab[0].tolist(), h.LABELS: lab.tolist(),
                                    h.BM25: qe.SparseVector(list(terms.indices), list(terms.values))},
                              {"concept_uri": r.concept_uri, "skill_type": r.skill_type,
                               h.LABEL_KEYS_FIELD: h.label_keys(labels[i])}))
        if len(batch) == 256:
            shard.update(qe.UpdateOperation.upsert_points(batch))
            batch = []
    shard.update(qe.UpdateOperation.upsert_points(batch))
    shard.flush()
    info["upsert_s"] = time.perf_counter() - t
    info["bm25_terms_s"] = t_bm25
    shard.optimize()
    shard.flush()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    info["disk_mb"] = size / 1e6
    info["disk_kib_per_skill"] = size / len(records) / 1024
    return shard, {"info": info, "bm25": bm25, "passage": passage, "labels": labels}


def requests(q: list[float], text: str, bm25: h.Bm25Terms, fusion: h.FusionParams, flt: Any) -> dict[str, Any]:
    """The request of each mode for one query (the shapes of tests/unit/test_hybrid.py::_engine_hybrid)."""
    import qdrant_edge as qe

    t = bm25.query(text)
    sparse = qe.SparseVector(list(t.indices), list(t.values))
    L = fusion.prefetch_limit
    legs = {h.PASSAGE: qe.Prefetch(limit=L, query=qe.Query.Nearest(q, using=h.PASSAGE)),
            h.PREF: qe.Prefetch(limit=L, query=qe.Query.Nearest(q, using=h.PREF)),
            h.BM25: qe.Prefetch(limit=L, query=qe.Query.Nearest(sparse, using=h.BM25))}
    legs[h.LABELS] = qe.Prefetch(limit=L, query=qe.Query.Nearest([q], using=h.LABELS),
                                 prefetches=[legs[r] for r in fusion.labels_candidates] or None)
    rrf = qe.Prefetch(limit=L * len(fusion.representations), query=qe.Fusion.Rrf(k=fusion.k, weights=list(fusion.weights)),
                      prefetches=[legs[r] for r in fusion.representations])
    cond = qe.FieldCondition(key=h.LABEL_KEYS_FIELD, match=qe.MatchAny(any=[h.label_key(text)]))
    exact = qe.Prefetch(limit=10, query=qe.Query.Nearest(q, using=h.PASSAGE), filter=qe.Filter(must=[cond]))
    E = qe.Expression
    formula = qe.Formula(E.Sum([E.Variable("$score[0]"), E.Mult([E.Constant(h.PROMOTION_BOOST), E.Condition(cond)])]),
                         defaults={"$score[0]": 0.0})
    full_scan = h.FusionParams(representations=fusion.representations, labels_candidates=(), k=fusion.k,
                               weights=fusion.weights, prefetch_limit=L)
    scan_legs = dict(legs)
    scan_legs[h.LABELS] = qe.Prefetch(limit=L, query=qe.Query.Nearest([q], using=h.LABELS))
    rrf_scan = qe.Prefetch(limit=L * len(full_scan.representations), query=qe.Fusion.Rrf(k=fusion.k, weights=list(fusion.weights)),
                           prefetches=[scan_legs[r] for r in full_scan.representations])
    common = {"limit": 10, "filter": flt, "with_payload": True}
    return {
        "dense (today)": qe.QueryRequest(query=qe.Query.Nearest(q, using=h.PASSAGE), **common),
        "hybrid (default)": qe.QueryRequest(query=formula, prefetches=[rrf, exact], **common),
        "hybrid, labels full scan": qe.QueryRequest(query=formula, prefetches=[rrf_scan, exact], **common),
    }


def served(n: int, rounds: int = 3) -> int:
    """Search-side latency of each mode through ``SkillSearch`` on the configured collection (``--served``)."""
    from search import SearchSettings, SkillSearch
    from search.schema import Field

    with SkillSearch(SearchSettings(query_cache_size=max(4 * n, 1024))) as s:
        target = s.store.resolve_alias(s.collection) or s.collection
        records = [p.payload for p in s.store.scroll(target, with_payload=[Field.PREFERRED_LABEL, Field.ALT_LABELS,
                                                                           Field.DESCRIPTION])]
        rng = np.random.default_rng(1)
        texts = []
        for j, i in enumerate(rng.choice(len(records), n, replace=False)):
            r = records[int(i)]
            alts = r.get(Field.ALT_LABELS) or []
            texts.append(alts[0] if j % 3 == 0 and alts else " ".join(str(r[Field.DESCRIPTION]).split()[:12]))
        s.encoder.encode_queries(texts)  # cached: what follows is the search side
        cases = [(m, f) for m in ("dense", "hybrid") for f in ({}, {"skill_type": "knowledge"})]
        for m, f in cases:  # warm every path once
            s.search(texts[0], mode=m, threshold=-1.0, **f)
        # Round 0 meets the store's pages and the hit cache cold (as a fresh process does); the later rounds
        # are the steady state of a service that has seen these skills.
        times: dict[str, list[float]] = {}
        cold: dict[str, list[float]] = {}
        for r in range(rounds + 1):
            for text in texts:
                for m, f in cases:
                    t0 = time.perf_counter()
                    s.search(text, mode=m, limit=10, threshold=-1.0, **f)
                    name = m + (" filtered" if f else "")
                    (cold if r == 0 else times).setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        print(f"machine: {machine()}")
        print(f"collection {target}: {len(records)} points; {n} queries x {rounds} rounds after a cold one, "
              f"modes interleaved; hit cache {s.settings.hit_cache_size}")
        print(f"\n{'SkillSearch.search, vector cached':38s} {'p50 ms':>8s} {'p90 ms':>8s} {'p50 / dense':>12s}"
              f" {'cold p50':>9s}")
        for name, ts in times.items():
            b = np.median(times["dense filtered" if name.endswith("filtered") else "dense"])
            print(f"{name:38s} {np.median(ts):8.2f} {np.percentile(ts, 90):8.2f} {np.median(ts) / b:11.2f}x"
                  f" {np.median(cold[name]):9.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", default=str(DEFAULT_RELEASE))
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--dim", type=int, default=384, help="vector size without --encode (384: e5-small, 768: e5-base)")
    ap.add_argument("--encode", action="store_true", help="encode the real texts with e5-small (torch fp32)")
    ap.add_argument("--served", action="store_true",
                    help="time SkillSearch.search per mode on the collection of the ESCO_* settings (a real ingest)")
    args = ap.parse_args(argv)
    if args.served:
        return served(args.queries)
    import qdrant_edge as qe

    records = esco_records(args.release)
    tmp = Path(tempfile.mkdtemp(prefix="bench_hybrid_"))
    try:
        shard, built = build(tmp / "shard", records, args.dim, args.encode)
        info = built["info"]
        print(f"machine: {machine()}")
        print("build: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
        if "encode_labels_s" in info:
            print(f"ingest encoding, labels / passages: {info['encode_labels_s'] / info['encode_passages_s']:.2f}x "
                  f"(hybrid ingest encodes both: {1 + info['encode_labels_s'] / info['encode_passages_s']:.2f}x today's)")
        rng = np.random.default_rng(1)
        pick = rng.choice(len(records), args.queries, replace=False)
        texts = []
        for j, i in enumerate(pick):
            r = records[i]
            texts.append(r.alt_labels[0] if j % 3 == 0 and r.alt_labels else " ".join(r.description.split()[:12]))
        qv = _unit(built["passage"][pick] + rng.normal(scale=0.05, size=(len(pick), built["passage"].shape[1])))
        flt = qe.Filter(must=[qe.FieldCondition(key="skill_type", match=qe.MatchAny(any=["knowledge"]))])
        times: dict[str, list[float]] = {}
        for rnd in range(2):  # two interleaved passes: every mode sees the same machine state
            for q, text in zip(qv, texts):
                for fname, f in (("", None), (" filtered", flt)):
                    for mode, req in requests(q.tolist(), text, built["bm25"], h.HYBRID_FUSION, f).items():
                        t0 = time.perf_counter()
                        shard.query(req)
                        if rnd:
                            times.setdefault(mode + fname, []).append((time.perf_counter() - t0) * 1000)
        base = {"": np.median(times["dense (today)"]), " filtered": np.median(times["dense (today) filtered"])}
        print(f"\n{'request':38s} {'p50 ms':>8s} {'p90 ms':>8s} {'p50 / dense':>12s}")
        for name, ts in times.items():
            b = base[" filtered" if name.endswith(" filtered") else ""]
            print(f"{name:38s} {np.median(ts):8.2f} {np.percentile(ts, 90):8.2f} {np.median(ts) / b:11.2f}x")
        shard.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
