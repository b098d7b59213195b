"""Run every benchmark, one process each (memory is returned between them; one failing does not stop the rest).

    python -m benchmarks.run_all            # the defaults of each benchmark (about an hour on 2 busy cores)
    python -m benchmarks.run_all --quick    # small samples, results/<name>_quick.json: a smoke run (minutes)
    python -m benchmarks.run_all --only bench_encoders,bench_query

Each benchmark prints its table and writes ``benchmarks/results/<name>.json``. Backends whose packages are
missing in this environment are skipped with the reason (see docs/benchmarks.md for the environments).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS: dict[str, dict[str, list[str]]] = {
    # name: {"full": args, "quick": args}
    "bench_encoders": {"full": [], "quick": ["--n", "32", "--rounds", "1", "--models", "e5-small", "--variants",
                                             "torch:fp32:32:unsorted,auto:auto:16,torch:fp32:16,openvino:fp32:16,"
                                             "openvino:int8:16"]},
    "bench_quality": {"full": [], "quick": ["--queries", "50", "--corpus", "300"]},
    "bench_query": {"full": [], "quick": ["--sizes", "14k", "--queries", "64", "--model", "e5-small",
                                          "--encoders", "torch:fp32"]},
    "bench_ingest": {"full": ["--encode-alone"], "quick": ["--limit", "300"]},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small samples (smoke run)")
    ap.add_argument("--only", default="", help="comma list of benchmarks to run")
    args = ap.parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *BENCHMARKS[name]["quick" if args.quick else "full"]]
        if args.quick:  # never over the results of a full run
            cmd += ["--out", f"{name}_quick"]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
