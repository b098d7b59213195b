"""Extraction from whole texts: the splitter's choice, quality on documents against per-sentence search,
boilerplate, the calibrated threshold, speed of a 2,000-word text, memory in the batch size.

    python -m benchmarks.bench_extract segmenters             # sentence splitters compared (no model)
    python -m benchmarks.bench_extract quality --store PATH   # document sets (scripts/make_document_sets.py)
    python -m benchmarks.bench_extract speed --store PATH     # a 2,000-word text end to end
    python -m benchmarks.bench_extract memory --store PATH    # peak memory against the number of texts
    python -m benchmarks.bench_extract all --store PATH

``--store`` is an embedded store holding ESCO v1.1.0 (English) ingested with ``--model`` (default
multilingual-e5-small, .models/): ``ESCO_QDRANT_PATH=PATH ESCO_MODEL=.models/multilingual-e5-small esco-ingest
--release ../shared/esco/v1.1.0``. Results go to ``benchmarks/results/bench_extract_<part>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.common import E5_SMALL, ROOT, machine, quiet_logging, table, write_result

DOCS = ROOT / "benchmarks" / "results" / "documents"
SETS = ("jobads-docs", "jobads-docs-boilerplate", "esco-docs", "esco-docs-boilerplate")


def _searcher(args: argparse.Namespace, **overrides: Any):
    from search import SearchSettings, SkillSearch

    kw: dict[str, Any] = dict(qdrant_path=Path(args.store), model=str(args.model), collection=args.collection,
                              exact=True, backend=args.backend, precision=args.precision)
    kw.update(overrides)
    return SkillSearch(SearchSettings(_env_file=None, **kw))  # type: ignore[call-arg]


def segmenters(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.extract_segmenters import compare

    rows = compare(args.rounds)
    print(table(rows))
    return {"rows": rows}


def _ensure_docs() -> None:
    if not all((DOCS / f"{s}.jsonl").exists() for s in SETS):
        sys.path.insert(0, str(ROOT / "scripts"))
        import make_document_sets

        make_document_sets.main(["--out", str(DOCS)])


def quality(args: argparse.Namespace) -> dict[str, Any]:
    from search.extraction.evaluate import evaluate_documents, read_documents, summary_rows

    _ensure_docs()
    out: dict[str, Any] = {}
    variants = (("max", True), ("max", False), ("support", True), ("support", False))
    with _searcher(args) as s:
        # one threshold for extraction: calibrated on the ESCO documents (the larger set), F1 at it everywhere
        reports = {"esco-docs": evaluate_documents(s, read_documents(DOCS / "esco-docs.jsonl"), variants=variants)}
        thr = reports["esco-docs"][args.variant]["calibrated_threshold"]
        for m in reports["esco-docs"].values():
            if isinstance(m, dict) and "f1@calibrated" in m:
                m["f1@threshold"] = None  # each variant at its own calibrated threshold here
        for name in [x for x in SETS if x in args.sets.split(",")]:
            if name != "esco-docs":
                reports[name] = evaluate_documents(s, read_documents(DOCS / f"{name}.jsonl"), variants=variants,
                                                   threshold=thr)
            print(f"\n== {name}: {reports[name]['documents']} documents, {reports[name]['relevant']} relevant, "
                  f"{reports[name]['segments']} segments; f1@threshold: at {thr} (calibrated on esco-docs, {args.variant})")
            print(table(summary_rows(reports[name])))
        out = {"threshold": thr, "reports": reports}
        if args.store_threshold:
            from search.extraction.evaluate import store_threshold

            store_threshold(s, thr)
            print(f"extract_threshold {thr} recorded in the collection's metadata (the default of extract)")
    return out


def _text_of_words(n_words: int) -> str:
    """A job-ad-like text of about ``n_words`` words: documents of the dev sets with boilerplate, in turn."""
    _ensure_docs()
    rows = []
    for name in ("jobads-docs-boilerplate", "esco-docs-boilerplate"):
        rows += [json.loads(x)["text"] for x in (DOCS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    parts, words = [], 0
    for i in range(len(rows)):
        t = rows[(i * 7) % len(rows)]
        parts.append(t)
        words += len(t.split())
        if words >= n_words:
            break
    return "\n\n".join(parts)


def speed(args: argparse.Namespace) -> dict[str, Any]:
    from search.extraction import extract, segments_for

    text = _text_of_words(args.words)
    rows = []
    for variant in args.backends.split(","):
        backend, _, precision = variant.partition(":")
        with _searcher(args, backend=backend, precision=precision or "auto", query_cache_size=0) as s:
            segs = segments_for(s, text)
            extract(s, text, threshold=-1.0)  # warm up (first call loads lazy parts)
            times, seg_t, enc_t = [], [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                extract(s, text, threshold=-1.0)
                times.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                segments_for(s, text)
                seg_t.append(time.perf_counter() - t1)
                t2 = time.perf_counter()
                s.encoder.encode_queries([x.text for x in segs])
                enc_t.append(time.perf_counter() - t2)
            enc = s.encoder.describe() if hasattr(s.encoder, "describe") else {}
            rows.append({"backend": f"{enc.get('backend', backend)} {enc.get('precision', '')}".strip(),
                         "words": len(text.split()), "segments": len(segs),
                         "end_to_end_s median": statistics.median(times), "min": min(times),
                         "segmentation_s": statistics.median(seg_t), "encode_s": statistics.median(enc_t)})
    print(table(rows))
    return {"rows": rows, "load_average": os.getloadavg()}


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def memory(args: argparse.Namespace) -> dict[str, Any]:
    from search.extraction import extract_batch

    _ensure_docs()
    texts = [json.loads(x)["text"] for x in (DOCS / "esco-docs-boilerplate.jsonl").read_text().splitlines()]
    rows = []
    with _searcher(args, query_cache_size=0) as s:
        extract_batch(s, texts[:20], threshold=-1.0)
        for n in (int(x) for x in args.sizes.split(",")):
            batch = (texts * (n // len(texts) + 1))[:n]
            batch = [f"{t}\n(copy {i})" for i, t in enumerate(batch)]  # distinct texts
            gc.collect()
            _reset_peak()
            base = _peak_kib()
            tracemalloc.start()
            t = time.perf_counter()
            res = extract_batch(s, batch, threshold=-1.0)
            secs = time.perf_counter() - t
            kept, py_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append({"texts": n, "skills_returned": sum(len(x) for x in res), "seconds": secs,
                         "peak_rss_MiB": round(_peak_kib() / 1024, 1), "peak_over_start_MiB": round((_peak_kib() - base) / 1024, 1),
                         "python_peak_MiB": round(py_peak / 2**20, 1), "python_kept_MiB": round(kept / 2**20, 1)})
            del res
    print(table(rows))
    return {"rows": rows}


PARTS = {"segmenters": segmenters, "quality": quality, "speed": speed, "memory": memory}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=[*PARTS, "all"])
    p.add_argument("--store", default=os.environ.get("ESCO_QDRANT_PATH"), help="embedded store with ESCO v1.1.0")
    p.add_argument("--model", default=str(E5_SMALL))
    p.add_argument("--collection", default="esco_skills")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sizes", default="10,100", help="numbers of texts per batch (memory)")
    p.add_argument("--words", type=int, default=2000)
    p.add_argument("--variant", default="extract:max", help="the variant whose calibrated threshold is applied (quality)")
    p.add_argument("--sets", default=",".join(SETS), help="document sets evaluated (quality; esco-docs always, for the threshold)")
    p.add_argument("--store-threshold", action="store_true",
                   help="record the calibrated threshold in the collection (quality): extract's default from then on")
    p.add_argument("--backend", default="openvino", help="encoder backend (default openvino: int8 is what ESCO_BACKEND=auto "
                   "picks on this CPU; auto would measure the backends first)")
    p.add_argument("--precision", default="int8")
    p.add_argument("--backends", default="openvino:int8,torch:fp32", help="encoder backends timed side by side (speed)")
    a = p.parse_args(argv)
    quiet_logging()
    parts = list(PARTS) if a.part == "all" else [a.part]
    if any(x != "segmenters" for x in parts) and not a.store:
        p.error("--store (or ESCO_QDRANT_PATH) is needed: an embedded store with ESCO v1.1.0")
    print(f"machine: {machine().get('cpu')}, load average {os.getloadavg()}")
    for part in parts:
        res = PARTS[part](a)
        print(f"-> {write_result(f'bench_extract_{part}', res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
