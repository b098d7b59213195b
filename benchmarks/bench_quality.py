"""Retrieval quality per backend/precision against torch fp32: ESCO alternative labels -> their skill.

A labelled set is made from the real release (as :func:`search.evaluation.build_labelled_set` makes one from a
collection): for ``--queries`` skills sampled among those with a usable alternative label (different from the
preferred label, naming no other skill), that label is the query and the skill the one relevant answer. The
corpus is ``--corpus`` passages ``passage: <preferredLabel>: <description>``: every labelled skill plus random
others (``--corpus 0``: the whole release, 13,896 passages). Each variant encodes queries and corpus with its
backend; ranking is exact (brute-force cosine); metrics are :func:`search.evaluation.ir_metrics` (the model
card's definitions). Reported: the metrics, their drop against torch fp32, and the mean/min cosine of the
corpus embeddings to torch fp32. With ``--jobads`` (default ``../shared/eval/jobads-validation`` when present) the
labelled job-ad sentences are measured too (MRR@10 and its drop per file; their skills join the corpus): text
like the users', where int8 losses show that alt labels hide.

Run: ``python -m benchmarks.bench_quality [--model e5-small] [--corpus 3000] [--queries 1000]``. torch fp32
corpus embeddings of every variant are cached in ``benchmarks/results/cache/`` (``--no-cache`` to encode
again): another run, with more queries or in another environment, compares against the very same reference.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    quiet_logging,
    DEFAULT_RELEASE,
    RESULTS,
    SHARED,
    esco_records,
    resolve_model,
    table,
    write_result,
)

NAME = "bench_quality"
DEFAULT_VARIANTS = "torch:fp32,torch:bf16,onnx:fp32,onnx:int8,openvino:fp32,openvino:bf16,openvino:int8,openvino:int8w"
SHOW = ["ndcg@10", "mrr@10", "accuracy@1", "recall@10", "map@100"]


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def labelled_set(records: Sequence[Any], n: int, seed: int) -> list[tuple[str, str]]:
    """(alternative label, concept URI) pairs, the rules of ``search.evaluation.build_labelled_set``."""
    names: dict[str, set[str]] = {}
    for r in records:
        for lab in (r.preferred_label, *r.alt_labels):
            if lab.strip():
                names.setdefault(_fold(lab), set()).add(r.concept_uri)
    candidates = []
    for r in sorted(records, key=lambda r: r.concept_uri):
        usable = sorted(
            a for a in dict.fromkeys(a.strip() for a in r.alt_labels if a.strip())
            if _fold(a) != _fold(r.preferred_label) and names.get(_fold(a)) == {r.concept_uri}
        )
        if usable:
            candidates.append((r.concept_uri, usable))
    rng = random.Random(seed)
    chosen = rng.sample(candidates, min(n, len(candidates)))
    return [(rng.choice(usable), uri) for uri, usable in chosen]


def corpus_of(records: Sequence[Any], labelled: Sequence[tuple[str, str]], size: int, seed: int) -> list[Any]:
    if size <= 0 or size >= len(records):
        return list(records)
    wanted = {uri for _, uri in labelled}
    keep = [r for r in records if r.concept_uri in wanted]
    rest = [r for r in records if r.concept_uri not in wanted]
    keep += random.Random(seed + 1).sample(rest, max(0, size - len(keep)))
    return sorted(keep, key=lambda r: r.concept_uri)


def jobads_sets(folder: Path, records: Sequence[Any]) -> dict[str, tuple[list[str], list[set[str]]]]:
    """Labelled job-ad sentences (``../shared/eval/jobads-validation``): per file, each sentence with an ESCO
    label and the concept URIs of its labels (ESCO v1.1.0 preferred labels, matched in ``records``)."""
    by_label: dict[str, str] = {}
    for r in records:
        by_label.setdefault(_fold(r.preferred_label), r.concept_uri)
    out: dict[str, tuple[list[str], list[set[str]]]] = {}
    for path in sorted(folder.glob("*_validation_annotations.csv")):
        rel: dict[str, set[str]] = {}
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                uri = by_label.get(_fold(row.get("label") or ""))
                if uri and (row.get("sentence") or "").strip():
                    rel.setdefault(row["sentence"].strip(), set()).add(uri)
        if rel:
            out["jobads_" + path.name.split("_")[0]] = (list(rel), list(rel.values()))
    return out


def encode_corpus(enc: Any, passages: list[str]) -> tuple[np.ndarray, float]:
    enc.encode_passages(passages[:16], batch_size=16)  # warm-up
    t = time.perf_counter()
    p = enc.encode_passages(passages, batch_size=16)  # sentence-transformers sorts by length inside the call
    return p, time.perf_counter() - t


def rank(q: np.ndarray, p: np.ndarray, ids: list[str], k: int = 100) -> list[list[str]]:
    scores = q @ p.T
    top = np.argsort(-scores, axis=1)[:, :k]
    return [[ids[j] for j in row] for row in top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma list of backend:precision")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--corpus", type=int, default=3000, help="passages ranked (0: the whole release)")
    ap.add_argument("--release", default=str(DEFAULT_RELEASE))
    ap.add_argument("--out", default=NAME)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true", help="encode the corpus again even when cached")
    ap.add_argument("--jobads", default=str(SHARED / "eval" / "jobads-validation"),
                    help="folder of labelled job-ad sentences also measured (their skills join the corpus); '' for none")
    args = ap.parse_args(argv)
    quiet_logging()

    from search.encoding import SentenceTransformerEncoder
    from search.metrics import ir_metrics
    from search.schema import passage_text

    records = esco_records(args.release)
    labelled = labelled_set(records, args.queries, args.seed)
    extra_sets = jobads_sets(Path(args.jobads), records) if args.jobads and Path(args.jobads).is_dir() else {}
    wanted = labelled + [("", uri) for _, rels in extra_sets.values() for rel in rels for uri in rel]
    corpus = corpus_of(records, wanted, args.corpus, args.seed)
    ids = [r.concept_uri for r in corpus]
    passages = [passage_text(r.preferred_label, r.description) for r in corpus]
    queries = [q for q, _ in labelled]
    relevant = [{uri} for _, uri in labelled]
    model = resolve_model(args.model)
    key = hashlib.sha256("\n".join([model, *passages]).encode()).hexdigest()[:16]
    print(f"{len(queries)} queries, corpus of {len(passages)} passages, model {args.model}; "
          + ", ".join(f"{name} {len(qs)} sentences" for name, (qs, _) in extra_sets.items()), flush=True)
    ref_extra: dict[str, float] = {}

    rows: list[dict[str, Any]] = []
    ref_q = ref_p = None
    ref_metrics: dict[str, float] | None = None
    ref_per_query = np.zeros(0)
    for spec in ["torch:fp32"] + [v for v in args.variants.split(",") if v and v != "torch:fp32"]:
        backend, precision = spec.split(":")
        row: dict[str, Any] = {"variant": spec}
        # corpus embeddings are cached per variant (another run, or another environment, reuses them)
        cache = RESULTS / "cache" / f"quality-{backend}-{precision}-{os.path.basename(model)}-{key}.npz"
        try:
            enc = SentenceTransformerEncoder(model, device="cpu", backend=backend, precision=precision,
                                             cache_size=0)
        except Exception as exc:  # noqa: BLE001 - a missing backend is reported, not fatal
            rows.append({**row, "skipped": f"{type(exc).__name__}: {str(exc)[:300]}"})
            print(f"  skip {spec}: {exc}", flush=True)
            continue
        if cache.exists() and not args.no_cache:
            data = np.load(cache)
            p, secs = data["p"], float(data["seconds"])
            row["corpus_from_cache"] = cache.name
        else:
            p, secs = encode_corpus(enc, passages)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, p=p, seconds=secs)
        q = enc.encode_queries(queries)
        for name, (qs, rels) in extra_sets.items():  # sentence-like queries of real job ads
            m = ir_metrics(rank(enc.encode_queries(qs), p, ids), rels)["mrr@10"]
            ref_extra.setdefault(name, m)
            row[f"{name}_mrr@10"] = m
            row[f"drop_{name}_mrr@10"] = ref_extra[name] - m
        del enc
        rankings = rank(q, p, ids)
        metrics = ir_metrics(rankings, relevant)
        per_query = np.array([ir_metrics([r], [rel], accuracy_at=[1], precision_recall_at=[1], mrr_at=[10],
                                         ndcg_at=[10], map_at=[10])["ndcg@10"] for r, rel in zip(rankings, relevant)])
        if ref_q is None:
            ref_q, ref_p, ref_metrics, ref_per_query = q, p, metrics, per_query
        diff = ref_per_query - per_query
        row["drop_ndcg@10_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))  # paired standard error
        row["queries_changed_ndcg@10"] = int(np.sum(np.abs(diff) > 1e-9))
        # divided by the norms: bf16 embeddings are normalized in bf16 and come back with norms up to ~1.002
        cos = np.sum(p * ref_p, axis=1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(ref_p, axis=1))
        row.update({k: metrics[k] for k in SHOW})
        row.update({f"drop_{k}": ref_metrics[k] - metrics[k] for k in SHOW})  # type: ignore[index]
        row.update({"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "corpus_encode_s": round(secs, 1),
                    "metrics": metrics})
        rows.append(row)
        print(f"  {spec:16s} ndcg@10 {metrics['ndcg@10']:.4f} (drop {row['drop_ndcg@10']:+.4f})  "
              f"mrr@10 {metrics['mrr@10']:.4f}  cos mean {row['cos_mean']:.5f} min {row['cos_min']:.5f}",
              flush=True)
    cols = ["variant", *SHOW, "drop_ndcg@10", "drop_ndcg@10_se", "queries_changed_ndcg@10", "drop_mrr@10",
            "drop_accuracy@1", *[f"{c}{n}_mrr@10" for n in extra_sets for c in ("", "drop_")], "cos_mean", "cos_min",
            "corpus_encode_s", "skipped"]
    print("\n" + table([{c: r.get(c) for c in cols} for r in rows], cols))
    path = write_result(args.out, {"args": vars(args), "n_queries": len(queries), "n_corpus": len(passages),
                                   "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
