"""Disk use of one collection in the embedded store, per point: what ``ingest.space`` estimates from.

Writes the real release's payloads (default v1.1.1, English) with random unit vectors (the disk use does not
depend on the model, only on the vector size) into a temporary store through the worker's own store API,
in chunks like the ingest, and reports the space allocated on disk (``st_blocks``, what a full disk runs out
of) and the apparent size, during the writes (the peak) and after optimize, per point and per byte of
payload JSON.

    python -m benchmarks.bench_disk [--release ../shared/esco/v1.1.1] [--dims 384 768] [--kind edge]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np



def allocated(path: Path) -> tuple[int, int]:
    """(bytes allocated on disk, apparent bytes) under ``path``."""
    alloc = apparent = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


class _Prompts:
    """What ingest.representations needs of an encoder to annotate points (no model: vectors are random)."""

    query_prompt, passage_prompt = "query: ", "passage: "


def measure(kind: str, release: str, dim: int, chunk: int, limit: int | None, reps_kind: str = "dense") -> dict:
    from ingest.esco import read_release
    from ingest.points import build_points
    from ingest.representations import Representations, stored_vectors
    from ingest.settings import IngestSettings
    from search.stores import CollectionParams, StoredPoint, open_store

    points = build_points(read_release([release], ["en"], limit=limit), "m|torch|fp32|x", "passage: ")
    reps = Representations.for_release(reps_kind, points, "m|torch|fp32|x", _Prompts())  # type: ignore[arg-type]
    payload_bytes = sum(len(json.dumps(p.payload, ensure_ascii=False).encode()) for p in points)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        settings = IngestSettings(_env_file=None, qdrant_path=Path(tmp) / "store", embedded_engine=kind)
        store = open_store(settings)
        try:
            empty = allocated(Path(tmp))[0]
            store.create_collection("c", CollectionParams(vector_size=dim, vectors=reps.vector_specs()), {"k": "v"},
                                    reps.keyword_fields())
            created = allocated(Path(tmp))[0]
            peak = created
            t = time.perf_counter()
            for i in range(0, len(points), chunk):
                part = points[i : i + chunk]
                vecs = rng.standard_normal((len(part), dim)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                for p, v in zip(part, vecs):
                    p.vector = v
                    if reps.hybrid:
                        rows = rng.standard_normal((len(p.labels), dim)).astype(np.float32)
                        p.label_rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
                hyb = reps.hybrid
                store.upsert("c", [StoredPoint(p.id, p.payload, None if hyb else p.vector_list(),
                                               stored_vectors(p, hyb)) for p in part])
                peak = max(peak, allocated(Path(tmp))[0])
            written = allocated(Path(tmp))
            store.optimize("c")
            optimized = allocated(Path(tmp))
            peak = max(peak, optimized[0])
            seconds = time.perf_counter() - t
        finally:
            store.close()
        closed = allocated(Path(tmp))
    n = len(points)
    return {
        "kind": kind, "representations": reps_kind, "dim": dim,
        "label_rows_per_point": round(sum(len(p.labels) for p in points) / n, 2), "points": n, "payload_json_bytes_per_point": round(payload_bytes / n),
        "empty_store": empty, "new_collection": created - empty,
        "after_writes": written[0] - empty, "after_optimize": optimized[0] - empty, "closed": closed[0] - empty,
        "apparent_closed": closed[1], "peak": peak - empty,
        "peak_per_point": round((peak - created) / n), "closed_per_point": round((closed[0] - created) / n),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", default=str(Path(__file__).resolve().parents[2] / "shared" / "esco" / "v1.1.1"))
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    ap.add_argument("--kind", default="edge", choices=["edge", "local"])
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--representations", default="dense", help="comma-separated: dense, hybrid")
    args = ap.parse_args()
    import platform

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores (disk figures do not depend on it)")
    for reps_kind, dim in [(r, d) for r in args.representations.split(",") for d in args.dims]:
        r = measure(args.kind, args.release, dim, args.chunk, args.limit, reps_kind.strip())
        mib = 1024 * 1024
        print(f"{r['kind']} {r['representations']} dim {dim}: {r['points']} points, "
              f"{r['label_rows_per_point']} label rows/point, payload JSON {r['payload_json_bytes_per_point']} B/point; "
              f"new collection {r['new_collection'] / mib:.1f} MiB; after writes {r['after_writes'] / mib:.1f} MiB, "
              f"after optimize {r['after_optimize'] / mib:.1f} MiB, closed {r['closed'] / mib:.1f} MiB "
              f"(apparent {r['apparent_closed'] / mib:.1f} MiB); peak {r['peak'] / mib:.1f} MiB = "
              f"{r['peak_per_point']} B/point beyond the empty collection ({r['seconds']} s)")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
