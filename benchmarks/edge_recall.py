"""Recall@10 of the edge store's HNSW index against exact search, over index settings (run on demand).

    python benchmarks/edge_recall.py                          # synthetic 14,000 x 768 (bench_stores data)
    python benchmarks/edge_recall.py --vectors X.npy --meta meta.json --queries Q.npy   # real embeddings

Sweeps ``full_scan_threshold`` (points; filtered searches whose filter matches fewer points score every
matching point), ACORN's ``max_selectivity`` and ``hnsw_ef``, over plain and filtered queries of several
selectivities. The figures
chosen from it are in docs/edge-store.md. ``--meta`` is a JSON list of payloads with ``skill_type`` and
``occupations``, in the order of the vectors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_stores import make_data, make_queries  # noqa: E402

from search.stores import CollectionParams, Condition, Filter, StoredPoint  # noqa: E402
from search.stores.edge import EdgeStore  # noqa: E402


def filters_for(payloads: list[dict[str, Any]]) -> dict[str, Filter | None]:
    counts: dict[str, int] = {}
    for p in payloads:
        for o in p["occupations"]:
            counts[o] = counts.get(o, 0) + 1
    ranked = sorted(counts, key=counts.get)  # type: ignore[arg-type]
    n = len(payloads)

    def occ_near(frac: float) -> str:
        return min(ranked, key=lambda o: abs(counts[o] / n - frac))

    return {
        "plain": None,
        "half(50%)": Filter((Condition("half", ("a",)),)),
        "skill_type(25%)": Filter((Condition("skill_type", ("knowledge",)),)),
        "occ(~5%)": Filter((Condition("occupations", (occ_near(0.05),)),)),
        "occ(~1%)": Filter((Condition("occupations", (occ_near(0.01),)),)),
        "occ(~0.5%)": Filter((Condition("occupations", (occ_near(0.005),)),)),
        "occ(median)": Filter((Condition("occupations", (ranked[len(ranked) // 2],)),)),
        "3 occ + knowledge": Filter(
            (Condition("occupations", tuple(ranked[-40:-37])), Condition("skill_type", ("knowledge",)))
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=14_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--vectors", type=Path)
    ap.add_argument("--meta", type=Path)
    ap.add_argument("--queries", type=Path)
    ap.add_argument("--nq", type=int, default=200)
    ap.add_argument("--full-scan", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--payload-m", type=int, default=None, help="extra HNSW links per indexed payload value")
    ap.add_argument("--acorn", type=float, nargs="+", default=[0.9],
                    help="ACORN max_selectivity values to sweep (0: off)")
    ap.add_argument("--ef-construct", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    if args.vectors:
        X = np.load(args.vectors).astype(np.float32)
        payloads = json.loads(args.meta.read_text())
        Q = np.load(args.queries).astype(np.float32) if args.queries else make_queries(X, args.nq)
    else:
        X, payloads = make_data(args.points, args.dim)
        Q = make_queries(X, args.nq)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = Q[: args.nq]
    ids = [str(uuid.uuid4()) for _ in range(len(X))]
    filters = filters_for(payloads)
    sel = {k: (1.0 if f is None else float(np.mean([f.matches({**p, "half": "a" if i % 2 else "b"})
                                                     for i, p in enumerate(payloads)])))
           for k, f in filters.items()}
    print(f"{len(X):,} points x {X.shape[1]}, {len(Q)} queries; selectivity " +
          ", ".join(f"{k} {v:.4f}" for k, v in sel.items()), flush=True)

    results: dict[str, Any] = {"points": len(X), "dim": int(X.shape[1]), "selectivity": sel, "runs": []}
    work = Path(tempfile.mkdtemp(prefix="edge-recall-"))
    try:
        for fs in args.full_scan:
            store = EdgeStore(work / f"fs{fs}")
            params = CollectionParams(
                vector_size=int(X.shape[1]), indexing_threshold=1_000, hnsw_m=args.m,
                hnsw_ef_construct=args.ef_construct, extra={"full_scan_threshold": fs, "payload_m": args.payload_m},
            )
            store.create_collection("r", params, {}, ["skill_type", "occupations", "half"])
            for s in range(0, len(X), 512):
                store.upsert("r", [StoredPoint(ids[i], {"skill_type": payloads[i]["skill_type"],
                                                        "occupations": payloads[i]["occupations"],
                                                        "half": "a" if i % 2 else "b"}, X[i].tolist())
                                   for i in range(s, min(len(X), s + 512))])
            t = time.perf_counter()
            store.optimize("r")
            build = time.perf_counter() - t
            truth = {}
            exact_ms = {}
            for k, f in filters.items():
                t = time.perf_counter()
                truth[k] = store.search("r", Q.tolist(), filter=f, limit=10, exact=True)
                exact_ms[k] = (time.perf_counter() - t) * 1000 / len(Q)
            print(f"exact search ms/query: " + "  ".join(f"{k} {v:.2f}" for k, v in exact_ms.items()), flush=True)
            results["exact_ms"] = exact_ms
            for acorn in args.acorn:
                # The store reads ACORN's selectivity limit from the collection's params at each search.
                store._pool.handles["r"].params.extra["acorn_max_selectivity"] = acorn
                for ef in args.ef:
                    row: dict[str, Any] = {"full_scan_threshold": fs, "hnsw_ef": ef, "payload_m": args.payload_m,
                                           "acorn_max_selectivity": acorn, "build_s": round(build, 1)}
                    for k, f in filters.items():
                        t = time.perf_counter()
                        got = store.search("r", Q.tolist(), filter=f, limit=10, hnsw_ef=ef)
                        ms = (time.perf_counter() - t) * 1000 / len(Q)
                        found = sum(len({h.id for h in g} & {h.id for h in e}) for g, e in zip(got, truth[k]))
                        total = sum(len(e) for e in truth[k])
                        row[k] = {"recall": round(found / max(1, total), 4), "ms": round(ms, 3)}
                    results["runs"].append(row)
                    print(f"full_scan {fs:>6} acorn {acorn} ef {ef:>4} (build {build:.0f} s): " + "  ".join(
                        f"{k} {row[k]['recall']:.4f} ({row[k]['ms']:.2f} ms)" for k in filters), flush=True)
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
