"""Markdown tables of the results in benchmarks/results/*.json (what docs/benchmarks.md quotes).

    python -m benchmarks.report                 # every result file
    python -m benchmarks.report bench_encoders_openvino bench_quality
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS


def md(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    """``cols``: (key, header, format) triples."""
    out = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("" if v is None else (format(v, fmt) if fmt and isinstance(v, (int, float)) else str(v)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def encoders(d: dict[str, Any]) -> str:
    bf16 = max((c["gflops"] for c in d["ceiling"] if c["dtype"] == "bf16"), default=None)
    parts = [(f"`{d['command']}` ({d['n_passages']} passages, {d['rounds']} rounds, {d['finished_at']}; "
              f"load average before/after {d.get('load_average_before_after')})"), "",
             md(d["ceiling"], [("dtype", "dtype", ""), ("lib", "library", ""), ("shape", "matmul", ""),
                               ("gflops", "GFLOP/s", ".0f")]), ""]
    for model in dict.fromkeys(r["model"] for r in d["rows"]):
        rows = [dict(r) for r in d["rows"] if r["model"] == model]
        for r in rows:
            if bf16 and r.get("useful_gflops"):
                r["share_bf16"] = r["useful_gflops"] / bf16
        parts += [f"**{model}**", "", md(rows, [
            ("variant", "backend:precision:batch", ""), ("texts_per_s", "texts/s", ".1f"),
            ("tokens_per_s", "tokens/s", ".0f"), ("speedup", "× baseline", ".2f"), ("cos_mean", "cos mean", ".5f"),
            ("cos_min", "cos min", ".5f"), ("useful_gflops", "useful GFLOP/s", ".0f"),
            ("share_of_fp32_ceiling", "of fp32 ceiling", ".0%"), ("share_bf16", "of bf16 ceiling", ".0%"),
            ("skipped", "skipped", ""),
        ]), ""]
    return "\n".join(parts)


def quality(d: dict[str, Any]) -> str:
    return "\n".join([
        f"`{d['command']}` ({d['n_queries']} queries, corpus of {d['n_corpus']} passages, {d['finished_at']})", "",
        md(d["rows"], [("variant", "backend:precision", ""), ("ndcg@10", "ndcg@10", ".4f"),
                       ("drop_ndcg@10", "drop", "+.4f"), ("drop_ndcg@10_se", "± se", ".4f"),
                       ("queries_changed_ndcg@10", "queries changed", ""), ("mrr@10", "mrr@10", ".4f"),
                       ("drop_mrr@10", "drop", "+.4f"),
                       ("accuracy@1", "acc@1", ".4f"), ("drop_accuracy@1", "drop", "+.4f"),
                       ("recall@10", "recall@10", ".4f"), ("map@100", "map@100", ".4f"),
                       ("cos_mean", "cos mean", ".5f"), ("cos_min", "cos min", ".5f"), ("skipped", "skipped", "")]),
    ])


def query(d: dict[str, Any]) -> str:
    return "\n".join([
        f"`{d['command']}` ({d['finished_at']})", "",
        md(d["rows"], [("points", "points", ""), ("dim", "dim", ""), ("encoder", "encoder", ""), ("case", "case", ""),
                       ("p50_ms", "p50 ms", ".2f"),
                       ("p95_ms", "p95 ms", ".2f"), ("per_query_p50_ms", "p50 ms per query", ".2f"),
                       ("calls", "calls", "")]),
    ])


def ingest(d: dict[str, Any]) -> str:
    return "\n".join([
        f"`{d['command']}` ({d['finished_at']})", "",
        md(d["rows"], [("model", "model", ""), ("backend", "backend", ""), ("precision", "precision", ""),
                       ("batch", "batch", ""), ("skills", "skills", ""), ("wall_s", "wall s", ".1f"),
                       ("read_s", "read s", ".1f"), ("load_model_s", "load s", ".1f"),
                       ("tokenize_s", "tokenize s", ".1f"),
                       ("encode_s", "encode s", ".1f"), ("write_s", "write s", ".1f"),
                       ("verify_switch_s", "verify s", ".1f"), ("encode_texts_per_s", "encode texts/s", ".1f"),
                       ("peak_rss_mb", "peak RSS MB", ".0f")]),
    ])


def render(path: Path) -> str:
    d = json.loads(path.read_text())
    kind = d.get("benchmark", path.stem)
    fn = {"bench_encoders": encoders, "bench_quality": quality, "bench_query": query, "bench_ingest": ingest}
    for prefix, f in fn.items():
        if kind.startswith(prefix) or path.stem.startswith(prefix):
            return f"### {path.stem}\n\n{f(d)}\n"
    return ""


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or sorted(p.stem for p in RESULTS.glob("bench_*.json"))
    for name in names:
        print(render(RESULTS / f"{name}.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
