"""Benchmark of the embedded stores against numpy brute force (run on demand; not a test).

    python benchmarks/bench_stores.py                       # 14,000 points of 768 dims
    python benchmarks/bench_stores.py --points 14000 400000 # also the 400k of a large multilingual store

For each size: edge with exact search and with its HNSW index, qdrant-client's local mode (skipped above
``--local-max-points``: it pickles every point into SQLite and scans in Python), and numpy brute force
over an in-memory matrix (with an inverted index for the filters, the best a hand-made search could do).
Queries: plain, a skill_type filter (about a quarter of the points) and an occupation MatchAny filter
(ESCO has about 3,000 occupations and a skill about 10 of them, so one occupation holds about 0.3% of
the skills), one at a time and in batches of 32; p50/p95 in ms, upsert points/s, HNSW build time, and
recall@10 of HNSW against exact search. Prints a table and writes ``benchmarks/results/stores.json``.

The vectors are synthetic but shaped like sentence embeddings: low intrinsic dimension (a 64-d latent
space of topic clusters mapped into 768 dims, plus noise), unit length, queries near the data.
"""

from __future__ import annotations

import os

# numpy's baseline runs on one BLAS thread: on a busy 2-core machine multi-threaded OpenBLAS was 10-20x
# slower (threads spinning against the load), and a service worker has a core, not the machine.
# Set OPENBLAS_NUM_THREADS yourself to compare otherwise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from search.schema import KEYWORD_FIELDS  # noqa: E402
from search.stores import CollectionParams, Condition, Filter, StoredPoint  # noqa: E402

OCCUPATIONS = 3000
OCC = "http://data.europa.eu/esco/occupation/{}"


# --- data --------------------------------------------------------------------------------------------


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    latent = 64
    centers = rng.standard_normal((max(8, n // 40), latent)) * 1.5
    W = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    X = np.empty((n, dim), dtype=np.float32)
    step = 20_000
    for s in range(0, n, step):
        m = min(step, n - s)
        z = centers[rng.integers(len(centers), size=m)] + rng.standard_normal((m, latent))
        x = z.astype(np.float32) @ W + 0.25 * rng.standard_normal((m, dim)).astype(np.float32)
        X[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    # occupation popularity: Zipf-like, about 10 occupations per skill on average
    pop = 1.0 / np.arange(1, OCCUPATIONS + 1) ** 0.8
    pop /= pop.sum()
    payloads = []
    for i in range(n):
        k = int(rng.poisson(10))
        occs = sorted({OCC.format(int(o)) for o in rng.choice(OCCUPATIONS, size=k, p=pop)})
        payloads.append(
            {
                "concept_uri": f"http://data.europa.eu/esco/skill/{i:07d}",
                "language": "en",
                "skill_type": "knowledge" if rng.random() < 0.25 else "skill/competence",
                "reuse_level": "sector-specific",
                "occupations": occs,
                "preferred_label": f"skill {i}",
            }
        )
    return X, payloads


def make_queries(X: np.ndarray, nq: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = X[rng.integers(len(X), size=nq)] + 0.05 * rng.standard_normal((nq, X.shape[1])).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def pick_filters(payloads: list[dict[str, Any]], seed: int = 2) -> dict[str, tuple[Filter | None, float]]:
    """The filters and their selectivity (fraction of points that pass)."""
    rng = np.random.default_rng(seed)
    n = len(payloads)
    counts: dict[str, int] = {}
    for p in payloads:
        for o in p["occupations"]:
            counts[o] = counts.get(o, 0) + 1
    # a typical occupation: the median-popular one among those with skills
    ranked = sorted(counts, key=counts.get)  # type: ignore[arg-type]
    occ = ranked[len(ranked) // 2]
    knowledge = sum(p["skill_type"] == "knowledge" for p in payloads)
    del rng
    return {
        "plain": (None, 1.0),
        "skill_type": (Filter((Condition("skill_type", ("knowledge",)),)), knowledge / n),
        "occupation": (Filter((Condition("occupations", (occ,)),)), counts[occ] / n),
    }


# --- stores ------------------------------------------------------------------------------------------


class Numpy:
    name = "numpy"

    def __init__(self, X: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        self.X = X
        self.inv: dict[tuple[str, str], np.ndarray] = {}
        tmp: dict[tuple[str, str], list[int]] = {}
        for i, p in enumerate(payloads):
            for f in ("skill_type", "occupations"):
                v = p[f]
                for x in v if isinstance(v, list) else [v]:
                    tmp.setdefault((f, x), []).append(i)
        self.inv = {k: np.asarray(v) for k, v in tmp.items()}

        self._cache: dict[Filter, tuple[np.ndarray, np.ndarray]] = {}

    def _rows(self, flt: Filter) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and boolean mask of the points that pass ``flt`` (from the inverted index, cached)."""
        if flt not in self._cache:
            rows: np.ndarray | None = None
            for c in flt.must:
                r = np.unique(np.concatenate([self.inv.get((c.field, v), np.empty(0, int)) for v in c.values]))
                rows = r if rows is None else np.intersect1d(rows, r)
            assert rows is not None
            mask = np.zeros(len(self.X), dtype=bool)
            mask[rows] = True
            self._cache[flt] = (rows, mask)
        return self._cache[flt]

    def search(self, qs: np.ndarray, flt: Filter | None, limit: int = 10) -> list[list[int]]:
        rows: np.ndarray | None = None
        if not flt:
            S = qs @ self.X.T
        else:
            rows, mask = self._rows(flt)
            if len(rows) > 0.05 * len(self.X):  # cheaper to score everything and mask than to gather
                S = np.where(mask, qs @ self.X.T, -np.inf)
                rows = None
            else:
                S = qs @ self.X[rows].T
        k = min(limit, S.shape[1])
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        out = []
        for i in range(len(qs)):
            t = top[i][np.argsort(-S[i, top[i]])]
            t = t[np.isfinite(S[i, t])]
            out.append((t if rows is None else rows[t]).tolist())
        return out


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return ts


def pct(ts: Sequence[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ts, 50)), "p95": float(np.percentile(ts, 95))}


def upsert_all(store: Any, name: str, X: np.ndarray, payloads: list[dict[str, Any]], ids: list[str],
               batch: int = 256) -> float:
    t = time.perf_counter()
    for s in range(0, len(X), batch):
        store.upsert(
            name,
            [StoredPoint(ids[i], payloads[i], X[i].tolist()) for i in range(s, min(len(X), s + batch))],
        )
    return len(X) / (time.perf_counter() - t)


def run_size(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from search.stores.edge import EdgeStore

    print(f"\n== {n:,} points of {args.dim} dims", flush=True)
    X, payloads = make_data(n, args.dim)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, p["concept_uri"])) for p in payloads]
    index_of = {pid: i for i, pid in enumerate(ids)}
    filters = pick_filters(payloads)
    nq = args.queries if n <= 50_000 else max(20, args.queries // 4)
    Q = make_queries(X, nq + args.batch)
    singles, batch = Q[:nq], Q[nq : nq + args.batch]
    res: dict[str, Any] = {
        "points": n, "dim": args.dim, "queries": nq, "batch": args.batch,
        "filters": {k: round(sel, 5) for k, (_, sel) in filters.items()}, "stores": {},
    }

    def bench(label: str, search: Callable[[np.ndarray, Filter | None], Any], extra: dict[str, Any] | None = None,
              reps_single: int = nq, reps_batch: int = 10) -> None:
        entry: dict[str, Any] = dict(extra or {})
        for fname, (flt, _) in filters.items():
            search(singles[:2], flt)  # warm up
            it = iter(singles)
            s = timed(lambda: search(next(it)[None, :], flt), min(reps_single, nq))
            b = timed(lambda: search(batch, flt), reps_batch)
            entry[fname] = {"single": pct(s), "batch": pct(b)}
        res["stores"][label] = entry
        print(f"  {label:<12} " + "  ".join(
            f"{f}: {entry[f]['single']['p50']:.2f}/{entry[f]['single']['p95']:.2f} ms, "
            f"batch {entry[f]['batch']['p50']:.1f} ms" for f in filters), flush=True)

    # numpy
    t = time.perf_counter()
    npy = Numpy(X, payloads)
    bench("numpy", npy.search, {"build_s": time.perf_counter() - t})
    truth = {f: npy.search(singles, flt) for f, (flt, _) in filters.items()}

    # edge: exact, then HNSW
    root = work / f"edge-{n}"
    edge = EdgeStore(root)
    params = CollectionParams(vector_size=args.dim, indexing_threshold=1_000, hnsw_m=16, hnsw_ef_construct=100)
    edge.create_collection("bench", params, {}, KEYWORD_FIELDS)
    ups = upsert_all(edge, "bench", X, payloads, ids)
    print(f"  edge upsert: {ups:,.0f} points/s", flush=True)

    def edge_search(exact: bool, ef: int | None = None) -> Callable[[np.ndarray, Filter | None], Any]:
        def go(qs: np.ndarray, flt: Filter | None) -> Any:
            return edge.search("bench", qs.tolist(), filter=flt, limit=10, exact=exact, hnsw_ef=ef)
        return go

    bench("edge-exact", edge_search(True), {"upsert_points_per_s": ups})
    if args.hnsw_max_points is not None and n > args.hnsw_max_points:
        res["stores"]["edge-hnsw"] = {"skipped": f"above --hnsw-max-points {args.hnsw_max_points}"}
        print(f"  edge-hnsw: skipped above {args.hnsw_max_points:,} points", flush=True)
        edge.close()
        shutil.rmtree(root, ignore_errors=True)
        return finish_local(n, args, work, params, X, payloads, ids, res, bench)
    t = time.perf_counter()
    edge.optimize("bench")
    build = time.perf_counter() - t
    print(f"  edge HNSW build: {build:.1f} s {edge.index_info('bench')}", flush=True)
    recall: dict[str, Any] = {}
    for ef in args.ef:
        recall[str(ef)] = {}
        for f, (flt, _) in filters.items():
            got = edge_search(False, ef)(singles, flt)
            hits = sum(len({index_of[h.id] for h in g} & set(t)) for g, t in zip(got, truth[f]))
            recall[str(ef)][f] = hits / max(1, sum(len(t) for t in truth[f]))
    print(f"  edge HNSW recall@10 by ef: {recall}", flush=True)
    bench("edge-hnsw", edge_search(False), {"upsert_points_per_s": ups, "hnsw_build_s": build,
                                           "recall_at_10": recall})
    edge.close()
    shutil.rmtree(root, ignore_errors=True)
    return finish_local(n, args, work, params, X, payloads, ids, res, bench)


def finish_local(n: int, args: argparse.Namespace, work: Path, params: CollectionParams, X: np.ndarray,
                 payloads: list[dict[str, Any]], ids: list[str], res: dict[str, Any],
                 bench: Callable[..., None]) -> dict[str, Any]:
    """qdrant-client's local mode, where the size allows it."""
    nq = res["queries"]
    if n <= args.local_max_points:
        from search.stores.qdrant import QdrantClientStore

        root = work / f"local-{n}"
        local = QdrantClientStore.local(root)
        local.create_collection("bench", params, {}, KEYWORD_FIELDS)
        ups_l = upsert_all(local, "bench", X, payloads, ids)
        print(f"  local upsert: {ups_l:,.0f} points/s", flush=True)

        def local_search(qs: np.ndarray, flt: Filter | None) -> Any:
            return local.search("bench", qs.tolist(), filter=flt, limit=10)

        bench("local", local_search, {"upsert_points_per_s": ups_l}, reps_single=min(nq, 50), reps_batch=3)
        local.close()
        shutil.rmtree(root, ignore_errors=True)
    else:
        res["stores"]["local"] = {"skipped": f"above --local-max-points {args.local_max_points}"}
        print(f"  local: skipped above {args.local_max_points:,} points", flush=True)
    return res


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        lines.append(f"\n{r['points']:,} points x {r['dim']} dims; filter selectivity {r['filters']}")
        lines.append(f"{'store':<12} {'filter':<11} {'single p50':>10} {'p95':>8} {'batch32 p50':>12} {'p95':>8} {'x numpy':>8}")
        base = r["stores"]["numpy"]
        for label, e in r["stores"].items():
            if "skipped" in e:
                lines.append(f"{label:<12} {e['skipped']}")
                continue
            for f in r["filters"]:
                s, b = e[f]["single"], e[f]["batch"]
                ratio = s["p50"] / base[f]["single"]["p50"]
                lines.append(f"{label:<12} {f:<11} {s['p50']:>10.2f} {s['p95']:>8.2f} {b['p50']:>12.2f} {b['p95']:>8.2f} {ratio:>8.2f}")
            if "hnsw_build_s" in e:
                lines.append(f"{'':<12} HNSW build {e['hnsw_build_s']:.1f} s; recall@10 by hnsw_ef {e['recall_at_10']}")
            elif "upsert_points_per_s" in e:
                lines.append(f"{'':<12} upsert {e['upsert_points_per_s']:,.0f} points/s (batches of 256)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, nargs="+", default=[14_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=200, help="single queries per filter (a quarter above 50k points)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256], help="hnsw_ef values for the recall table")
    ap.add_argument("--local-max-points", type=int, default=20_000)
    ap.add_argument("--hnsw-max-points", type=int, default=None,
                    help="skip building HNSW above this many points (its build dominates the run time)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stores.json")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-stores-"))
    results = []
    try:
        for n in args.points:
            results.append(run_size(n, args, work))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    out = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                    "load_average": os.getloadavg(),
                    "platform": platform.platform(), "qdrant_client": version("qdrant-client"),
                    "qdrant_edge": version("qdrant-edge-py")},
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
