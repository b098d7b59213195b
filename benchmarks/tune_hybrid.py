"""Fusion variants of the hybrid mode compared on several labelled sets at once, over a real collection.

Every stored representation of the served collection is read once (``search.evaluation.fused``), each set's
queries are encoded once with the searcher's encoder, and every variant is ranked by the exact reference
(:class:`search.hybrid_reference.ExactIndex`, what the engine computes; ``esco-search eval`` shows the
index/exact ratio is 1.000). One table: MRR@10 (and recall@10) per set and variant, with the ratio to dense.

Sets (each skipped when absent): the shared job-ad validation sentences (TECH, HOUSE), the project's course
texts (``benchmarks/data/courses_en.csv``) and ESCO alternative labels **held out**: the queried label is
taken out of its skill's label rows, BM25 document and exact-match keys, so that exact-label promotion
cannot answer it and the set measures paraphrase retrieval. Decide on all of them together: the job-ad
sets are small (61-75 queries; differences below ~0.02 are noise) and must not be the only evidence.

    python -m benchmarks.tune_hybrid                       # the served collection of ESCO_* settings
    python -m benchmarks.tune_hybrid --variants default,k5,k20,no-bm25 --alt 500
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import quiet_logging, table, write_result
from search import hybrid
from search.hybrid import FusionParams
from search.metrics import ir_metrics

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
JOBADS = SHARED / "eval" / "jobads-validation"
COURSES = ROOT / "benchmarks" / "data" / "courses_en.csv"

D = hybrid.HYBRID_FUSION
P, L, B, R = hybrid.PASSAGE, hybrid.LABELS, hybrid.BM25, hybrid.PREF
VARIANTS: dict[str, FusionParams | None] = {
    "dense": None,
    "default": D,
    "k5": replace(D, k=5),
    "k20": replace(D, k=20),
    "k60": replace(D, k=60),
    "no-bm25": replace(D, representations=(P, L), weights=(1.0, 0.999)),
    "bm25-half": replace(D, weights=(1.0, 0.999, 0.5)),
    "passage-2": replace(D, weights=(2.0, 0.999, 0.998)),
    "labels-2": replace(D, weights=(1.0, 2.0, 0.998)),
    "4-legs": replace(D, representations=(P, L, R, B), weights=(1.0, 0.999, 0.9985, 0.998)),
    "pref-for-labels": replace(D, representations=(P, R, B)),
    "prefetch-50": replace(D, prefetch_limit=50),
    "prefetch-200": replace(D, prefetch_limit=200),
    "labels-cand-passage-bm25": replace(D, labels_candidates=(P, B)),
    "labels-cand-passage-bm25-p50": replace(D, labels_candidates=(P, B), prefetch_limit=50),
}


def _labelled(path: Path, query_col: str, label_col: str, uri_of: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    """(query, relevant URIs) with repeated queries merged; labels resolved by folded preferred label."""
    merged: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            q = row[query_col].strip()
            rel = merged.setdefault(q, set())
            for label in row[label_col].replace(";", "|").split("|"):
                rel |= uri_of.get(" ".join(label.split()).casefold(), set())
    return [(q, r) for q, r in merged.items() if r]


def _held_out_alt(points: list[tuple[str, dict[str, Any], dict[str, Any]]], n: int, seed: int,
                  terms: hybrid.Bm25Terms) -> tuple[list[tuple[str, set[str]]], list[tuple[str, dict[str, Any], dict[str, Any]]]]:
    """``n`` alternative labels naming one skill each, and the points with each queried label taken out."""
    from search.schema import Field

    owners: dict[str, set[str]] = {}
    for _, _, pl in points:
        for lab in hybrid.skill_labels(pl[Field.PREFERRED_LABEL], pl.get(Field.ALT_LABELS) or (),
                                       pl.get(Field.HIDDEN_LABELS) or ()):
            owners.setdefault(hybrid.label_key(lab), set()).add(pl[Field.CONCEPT_URI])
    rng = random.Random(seed)
    order = list(range(len(points)))
    rng.shuffle(order)
    queries, out = [], list(points)
    for i in order:
        if len(queries) >= n:
            break
        pid, vecs, pl = points[i]
        labels = hybrid.skill_labels(pl[Field.PREFERRED_LABEL], pl.get(Field.ALT_LABELS) or (),
                                     pl.get(Field.HIDDEN_LABELS) or ())
        alts = [j for j, lab in enumerate(labels) if j > 0 and len(owners[hybrid.label_key(lab)]) == 1
                and hybrid.label_key(lab) != hybrid.label_key(labels[0])]
        if not alts or len(vecs[L]) != len(hybrid.label_rows(labels)):
            continue
        j = rng.choice(alts)
        kept = labels[:j] + labels[j + 1:]
        # the stored rows are the first labels (hybrid.label_rows): the held-out one goes if it is among them
        rows = [r for k, r in enumerate(vecs[L]) if k != j]
        sparse = terms.document(hybrid.bm25_document(kept), tie_break=pid)
        out[i] = (pid, {**vecs, L: rows, B: (sparse.indices, sparse.values)},
                  {**pl, hybrid.LABEL_KEYS_FIELD: hybrid.label_keys(kept)})
        queries.append((labels[j], {pl[Field.CONCEPT_URI]}))
    return queries, out


def _rank(index: Any, concepts: list[str], bm25: hybrid.Bm25Terms, fusion: FusionParams | None,
          vecs: np.ndarray, texts: Sequence[str], limit: int = 10) -> list[list[str]]:
    out = []
    for q, t in zip(vecs, texts):
        hits = index.search(hybrid.DENSE if fusion is None else hybrid.HYBRID, q, t, bm25=bm25, limit=limit * 4,
                            fusion=fusion or D)
        seen: list[str] = []
        for h in hits:
            c = concepts[_pos(index, h.id)]
            if c not in seen:
                seen.append(c)
            if len(seen) == limit:
                break
        out.append(seen)
    return out


_POS: dict[int, dict[str, int]] = {}


def _pos(index: Any, pid: str) -> int:
    m = _POS.get(id(index))
    if m is None:
        m = _POS[id(index)] = {p: i for i, p in enumerate(index.ids)}
    return m[pid]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--alt", type=int, default=500, help="held-out alternative-label queries (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label-caps", default="",
                    help="also the default fusion with at most N label rows per skill (the first N: preferred, then "
                         "alternatives), comma list, e.g. 3,4,5: what encoding fewer labels at ingest would cost")
    ap.add_argument("--out", default="tune_hybrid")
    args = ap.parse_args(argv)
    quiet_logging()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: use {', '.join(VARIANTS)}")

    from search import SearchSettings, SkillSearch
    from search.evaluation.fused import FusedReference, query_bm25
    from search.hybrid_reference import ExactIndex
    from search.schema import Field

    t0 = time.perf_counter()
    with SkillSearch(SearchSettings()) as s:
        target, meta = s._current()  # noqa: SLF001 - the benchmark reads the collection the searcher serves
        fields = [Field.CONCEPT_URI, Field.PREFERRED_LABEL, Field.ALT_LABELS, Field.HIDDEN_LABELS,
                  hybrid.LABEL_KEYS_FIELD]
        points = []
        for p in s.store.scroll(target, with_vectors=True, with_payload=fields):
            vecs = dict(p.vectors)
            sp = vecs[B]
            vecs[B] = (tuple(sp.indices), tuple(sp.values))
            points.append((p.id, vecs, p.payload))
        bm25 = query_bm25(meta)
        uri_of: dict[str, set[str]] = {}
        for _, _, pl in points:
            uri_of.setdefault(" ".join(pl[Field.PREFERRED_LABEL].split()).casefold(), set()).add(pl[Field.CONCEPT_URI])
        sets: dict[str, tuple[list[tuple[str, set[str]]], Any]] = {}
        full = ExactIndex.from_points(points)
        alt_points: list[Any] = []
        for name, path in (("TECH", JOBADS / "tech_validation_annotations.csv"),
                           ("HOUSE", JOBADS / "house_validation_annotations.csv")):
            if path.is_file():
                sets[name] = (_labelled(path, "sentence", "label", uri_of), full)
        if COURSES.is_file():
            sets["courses"] = (_labelled(COURSES, "query", "relevant", uri_of), full)
        if args.alt:
            alt_q, alt_points = _held_out_alt(points, args.alt, args.seed, bm25)
            sets["alt held out"] = (alt_q, ExactIndex.from_points(alt_points))
        concepts = [pl[Field.CONCEPT_URI] for _, _, pl in points]
        print(f"collection {target}: {len(points)} points read in {time.perf_counter() - t0:.1f} s; sets: "
              + ", ".join(f"{k} {len(v[0])}" for k, v in sets.items()))
        encoded = {k: s.encoder.encode_queries([q for q, _ in qs]) for k, (qs, _) in sets.items()}

    def capped(pts: list[Any], cap: int) -> Any:
        return ExactIndex.from_points((pid, {**vecs, L: list(vecs[L])[:cap]}, pl) for pid, vecs, pl in pts)

    runs: list[tuple[str, FusionParams | None, dict[str, Any]]] = [(v, VARIANTS[v], {k: ix for k, (_, ix) in sets.items()})
                                                                  for v in names]
    for cap in (int(c) for c in args.label_caps.split(",") if c.strip()):
        idx = {k: (capped(alt_points, cap) if k == "alt held out" else None) for k in sets}
        shared = capped(points, cap)
        runs.append((f"labels cap {cap}", D, {k: v or shared for k, v in idx.items()}))
        names.append(f"labels cap {cap}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for v, fusion, indexes in runs:
        results[v] = {}
        for k, (qs, _) in sets.items():
            ranked = _rank(indexes[k], concepts, bm25, fusion, encoded[k], [q for q, _ in qs])
            m = ir_metrics(ranked, [r for _, r in qs], accuracy_at=(1,), precision_recall_at=(10,), mrr_at=(10,),
                           ndcg_at=(10,), map_at=(10,))
            results[v][k] = {"mrr@10": m["mrr@10"], "recall@10": m["recall@10"]}
    base = results.get("dense")
    rows = []
    for v in names:
        row: dict[str, Any] = {"variant": v}
        for k in sets:
            m = results[v][k]["mrr@10"]
            ratio = f" ({m / base[k]['mrr@10']:.2f}x)" if base and base[k]["mrr@10"] else ""
            row[f"{k} MRR@10 / R@10"] = f"{m:.3f}{ratio} / {results[v][k]['recall@10']:.3f}"
        rows.append(row)
    print(table(rows))
    write_result(args.out, {"sets": {k: len(v[0]) for k, v in sets.items()}, "collection": target,
                            "variants": {v: (f.as_dict() if f else "dense") for v, f, _ in runs},
                            "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
