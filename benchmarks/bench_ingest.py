"""A full ingest of a real release into a temporary embedded store: read / encode / write seconds, peak memory.

Runs the worker's own pipeline (:func:`ingest.build.run`) on the real ESCO release (default v1.1.1,
English) and reports the split the pipeline measures itself (``summary.seconds``: read, load_model,
tokenize, encode, write, verify_switch; encoding overlaps the writes, so the parts add up to more than the
wall time), texts/s of the encoding, and the process's peak resident memory (``ru_maxrss``).

"Outside the encoder" is the wall time less the encoding (``outside_encoder_share``). The writes run in a
background thread beside the encoding and take CPU from it, which that share does not show; so
``--encode-alone`` then encodes the same passages again, in the same batches, with nothing else running:
``pipeline_overhead_share`` = (wall − model load − encoding alone) / wall is all the ingest costs beyond
the encoder.

Run: ``python -m benchmarks.bench_ingest [--model e5-small] [--backend torch --precision fp32]
[--batch-size 16] [--upsert-batch-size 256] [--encode-alone] [--limit N]``. The full release is 13,896 English skills: with the torch fp32 e5-small
on 2 shared cores that takes most of an hour; ``--limit`` ingests the first N skills only (said in the
results).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import DEFAULT_RELEASE, quiet_logging, resolve_model, table, write_result

NAME = "bench_ingest"


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def encode_alone(settings, args) -> float:
    """Seconds to encode the ingest's passages, in its order and batches, with nothing else running."""
    from ingest.esco import read_release
    from ingest.points import build_points, model_key
    from search.encoding import load_encoder

    enc = load_encoder(settings)
    release = read_release([args.release], [args.language], limit=args.limit)
    points = build_points(release, model_key(enc), enc.passage_prompt)
    texts = sorted((p.text for p in points), key=len)  # the pipeline's order (length, then id)
    t = time.perf_counter()
    for i in range(0, len(texts), settings.batch_size):
        enc.encode_passages(texts[i:i + settings.batch_size], batch_size=settings.batch_size)
    return time.perf_counter() - t


def one_run(args, model: str, reps: str, run, settings_cls) -> dict:
    """One ingest into a temporary store with ``ESCO_REPRESENTATIONS=reps``: its row."""
    folder = Path(tempfile.mkdtemp(prefix="esco-bench-ingest-"))
    rss_before = peak_rss_mb()
    try:
        settings = settings_cls(
            _env_file=None, qdrant_path=folder / "store", embedded_engine=args.engine, collection="esco_skills",
            lock_dir=folder / "locks", model=model, backend=args.backend, precision=args.precision,
            batch_size=args.batch_size, representations=reps,
            **({"upsert_batch_size": args.upsert_batch_size} if args.upsert_batch_size else {}),
        )  # type: ignore[call-arg]
        t = time.perf_counter()
        summary = run(settings, [args.release], [args.language], limit=args.limit, progress=False)
        wall = time.perf_counter() - t
        peak = peak_rss_mb()  # of the ingest (the encoding alone below loads a second model)
        alone = encode_alone(settings, args) if args.encode_alone else None
        files = [f for f in (folder / "store").rglob("*") if f.is_file()]
        store_mb = sum(f.stat().st_size for f in files) / 2**20
        disk = sum(f.stat().st_blocks * 512 for f in files)  # allocated, what a full disk runs out of
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    secs = summary.seconds
    skills = summary.encoded + summary.reused
    row = {
        "model": args.model, "representations": reps, "backend": args.backend, "precision": args.precision,
        "batch": args.batch_size, "skills": skills, "limit": args.limit, "wall_s": round(wall, 1),
        **{f"{k}_s": v for k, v in secs.items()},
        "encode_texts_per_s": summary.encoded / secs["encode"] if secs.get("encode") else None,
        "labels_encoded": summary.labels_encoded,
        "truncated_passages": summary.truncated_passages,
        "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1),
        "store_mb": round(store_mb, 1), "disk_bytes_per_skill": round(disk / max(skills, 1)),
        "load_average": os.getloadavg(),
        "encoder": summary.encoder.get("backend", "") + " " + summary.encoder.get("precision", ""),
        "upsert_batch": settings.upsert_batch_size,
        "outside_encoder_share": round((wall - secs["encode"]) / wall, 4),
    }
    if alone is not None:
        row["encode_alone_s"] = round(alone, 3)
        row["pipeline_overhead_share"] = round((wall - secs["load_model"] - alone) / wall, 4)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="e5-small", help="e5-small, xlmr-random or a path/hub id")
    ap.add_argument("--backend", default="auto", help="auto (the default settings' choice), torch, onnx, openvino")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--upsert-batch-size", type=int, default=None, help="points per write (default: the setting's)")
    ap.add_argument("--encode-alone", action="store_true",
                    help="then encode the same passages alone, to measure what the writes cost the encoder")
    ap.add_argument("--engine", default="edge", choices=["edge", "local"])
    ap.add_argument("--limit", type=int, default=None, help="only the first N skills (default: all)")
    ap.add_argument("--release", default=str(DEFAULT_RELEASE))
    ap.add_argument("--language", default="en")
    ap.add_argument("--representations", default="hybrid",
                    help="comma-separated: dense, hybrid; several are ingested one after the other in this run, "
                         "each into a store of its own, and compared (wall and disk per skill)")
    ap.add_argument("--out", default=NAME)
    args = ap.parse_args(argv)
    quiet_logging()

    from ingest.build import run
    from ingest.settings import IngestSettings

    model = resolve_model(args.model)
    rows = []
    for reps in [r.strip() for r in args.representations.split(",") if r.strip()]:
        rows.append(one_run(args, model, reps, run, IngestSettings))
    if len(rows) > 1:
        base = rows[0]
        for row in rows[1:]:
            row["wall_vs_first"] = round(row["wall_s"] / base["wall_s"], 2)
            row["disk_vs_first"] = round(row["disk_bytes_per_skill"] / base["disk_bytes_per_skill"], 2)
    cols = ["model", "representations", "encoder", "batch", "upsert_batch", "skills", "wall_s", "read_s", "load_model_s", "tokenize_s",
            "encode_s", "write_s", "verify_switch_s", "encode_texts_per_s", "outside_encoder_share", "encode_alone_s",
            "pipeline_overhead_share", "peak_rss_mb", "disk_bytes_per_skill", "wall_vs_first", "disk_vs_first"]
    print(table(rows, cols))
    path = write_result(args.out, {"args": vars(args), "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
