"""Evaluation of extraction on labelled documents (JSONL ``{"text": ..., "relevant": [URIs]}``), against the
baseline of searching each sentence alone.

Metrics per document, averaged over documents with a relevant skill:

* ranking: ``rp@5``, ``rp@10`` (R-precision at k: relevant among the first k over ``min(k, |relevant|)``),
  ``mrr@10``, ``ndcg@10`` (:func:`search.metrics.ir_metrics`), ``recall@10``;
* set: precision, recall and F1 of the returned set at a threshold, micro-averaged over all documents (every
  returned skill and every relevant one counts once); :func:`calibrate_threshold` picks the threshold of best F1.

Each segment is searched once; aggregation variants (``max``, ``support``, with or without the whole-text
segment) are computed from the same hits. Baselines, from rows that carry ``sentences`` (``[{"text",
"relevant"}]``, as scripts/make_document_sets.py writes): ``sentences``, each sentence searched alone and
scored against its own labels (the single-query evaluation); ``sentences-merged``, the document ranked by
the best score of each skill over its sentences searched alone (what a service does by hand today, on the
set's own sentence boundaries); ``whole-text``, the document as one query (what ``search`` does, cut at the
model's window).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import InvalidQuery
from search.extraction import PER_SEGMENT, THRESHOLD_KEY, SearcherLike, segments_for
from search.extraction.aggregate import aggregate
from search.extraction.segment import DOCUMENT, Segment
from search.metrics import ir_metrics

__all__ = ["Document", "read_documents", "ranking_metrics", "set_metrics", "calibrate_threshold", "Run",
           "search_segments", "evaluate_documents", "store_threshold", "RANKING"]

RANKING = ("rp@5", "rp@10", "mrr@10", "ndcg@10", "recall@10")


@dataclass(frozen=True)
class Document:
    """A labelled text: its relevant skill URIs and, where known, its sentences with their own labels."""

    text: str
    relevant: frozenset[str]
    sentences: tuple[tuple[str, frozenset[str]], ...] = ()
    id: str = ""


def read_documents(path: str | Path) -> list[Document]:
    """Documents from JSONL rows ``{"text": str, "relevant": [URI, ...]}`` (optional ``sentences``, ``id``).

    Raises:
        InvalidQuery: a missing file, or a row that is not such an object (names the file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidQuery(f"document set {str(p)!r} does not exist: build one with scripts/make_document_sets.py")
    docs = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, rel = row["text"], row["relevant"]
                if not isinstance(text, str) or not text.strip() or not isinstance(rel, list):
                    raise TypeError("text must be a non-blank string and relevant a list of URIs")
                sents = tuple((s["text"], frozenset(s.get("relevant", ()))) for s in row.get("sentences", ()))
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidQuery(f"{p}:{n}: not a document row {{\"text\": ..., \"relevant\": [URIs]}}: {exc}") from exc
            docs.append(Document(text, frozenset(map(str, rel)), sents, str(row.get("id", n))))
    if not docs:
        raise InvalidQuery(f"document set {str(p)!r} holds no rows")
    return docs


def ranking_metrics(rankings: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]]) -> dict[str, float]:
    """rp@5, rp@10, mrr@10, ndcg@10 and recall@10, averaged over the rankings with a relevant id."""
    pairs = [(list(dict.fromkeys(r)), set(rel)) for r, rel in zip(rankings, relevant) if set(rel)]
    if not pairs:
        raise ValueError("no document has a relevant skill")
    ir = ir_metrics([r for r, _ in pairs], [rel for _, rel in pairs], accuracy_at=(), precision_recall_at=(10,),
                    mrr_at=(10,), ndcg_at=(10,), map_at=())
    out = {}
    for k in (5, 10):
        out[f"rp@{k}"] = sum(len(set(r[:k]) & rel) / min(k, len(rel)) for r, rel in pairs) / len(pairs)
    out.update({"mrr@10": ir["mrr@10"], "ndcg@10": ir["ndcg@10"], "recall@10": ir["recall@10"]})
    return out


def set_metrics(returned: Sequence[Iterable[str]], relevant: Sequence[Iterable[str]]) -> dict[str, float]:
    """Micro-averaged precision, recall and F1 of returned sets (every document counts, also one without skills)."""
    tp = fp = fn = 0
    for ret, rel in zip(returned, relevant):
        r, g = set(ret), set(rel)
        tp, fp, fn = tp + len(r & g), fp + len(r - g), fn + len(g - r)
    p = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": rc, "f1": 2 * p * rc / (p + rc) if p + rc else 0.0, "returned": tp + fp}


def calibrate_threshold(scored: Sequence[Sequence[tuple[str, float]]],
                        relevant: Sequence[Iterable[str]]) -> tuple[float, dict[str, float]]:
    """The threshold of best micro F1 over ``scored`` (per document: (uri, score) best first), and its metrics.
    Candidates are the midpoints between neighbouring scores, so no score sits on the edge."""
    rels = [set(r) for r in relevant]
    events = sorted(((s, u in rels[i]) for i, row in enumerate(scored) for u, s in row), reverse=True)
    total = sum(len(r) for r in rels)
    best = (0.0, 1.0, {"precision": 0.0, "recall": 0.0, "f1": 0.0, "returned": 0})
    tp = 0
    for n, (s, hit) in enumerate(events, 1):
        tp += hit
        if n < len(events) and events[n][0] == s:
            continue  # ties go in together
        p, r = tp / n, tp / total if total else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best[0]:
            nxt = events[n][0] if n < len(events) else s - 0.01
            best = (f1, (s + nxt) / 2, {"precision": p, "recall": r, "f1": f1, "returned": n})
    return best[1], best[2]


@dataclass
class Run:
    """Every segment of every document with its hits (searched once; aggregations are computed from it)."""

    segments: list[list[Segment]]
    hits: list[list[Sequence[Any]]]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def search_segments(searcher: SearcherLike, texts: Sequence[str], *, per_segment: int = PER_SEGMENT,
                    batch: int = 256, **filters: Any) -> Run:
    """Segment every text and search its segments (no threshold), about ``batch`` segments per request."""
    import time

    t = time.perf_counter()
    segs = [segments_for(searcher, x) for x in texts]
    flat = [s.text for ss in segs for s in ss]
    hits: list[Any] = []
    for i in range(0, len(flat), batch):
        hits.extend(searcher.search_batch(flat[i:i + batch], limit=per_segment, threshold=-1.0, **filters))
    out, i = [], 0
    for ss in segs:
        out.append(hits[i:i + len(ss)])
        i += len(ss)
    return Run(segs, out, time.perf_counter() - t)


def _aggregated(run: Run, method: str, whole_text: bool, limit: int) -> list[list[tuple[str, float]]]:
    rows = []
    for segs, hits in zip(run.segments, run.hits):
        pairs = [(s, h) for s, h in zip(segs, hits) if whole_text or s.kind != DOCUMENT]
        rows.append([(x.concept_uri, x.score) for x in aggregate(pairs, method=method, limit=limit)])
    return rows


def _merged_sentences(hits: Sequence[Sequence[Any]], limit: int) -> list[tuple[str, float]]:
    best: dict[str, float] = {}
    for hs in hits:
        for h in hs:
            best[h.concept_uri] = max(best.get(h.concept_uri, -2.0), float(h.score))
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _report(scored: list[list[tuple[str, float]]], rel: list[frozenset[str]],
            threshold: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: round(v, 4) for k, v in ranking_metrics([[u for u, _ in r] for r in scored], rel).items()}
    cal, at_cal = calibrate_threshold(scored, rel)
    out["calibrated_threshold"] = round(cal, 4)
    out.update({f"{k}@calibrated": round(v, 4) for k, v in at_cal.items()})
    if threshold is not None:
        m = set_metrics([[u for u, s in r if s >= threshold] for r in scored], rel)
        out.update({f"{k}@threshold": round(v, 4) for k, v in m.items()})
    return out


def evaluate_documents(searcher: SearcherLike, documents: Sequence[Document], *, threshold: float | None = None,
                       limit: int = 100, per_segment: int = PER_SEGMENT,
                       variants: Sequence[tuple[str, bool]] = (("max", True), ("max", False), ("support", True)),
                       baselines: bool = True, **filters: Any) -> dict[str, Any]:
    """Ranking and set metrics of extraction variants ``(aggregation, whole_text)`` and of the baselines.

    Args:
        threshold: also report P/R/F1 at this threshold (e.g. a calibrated one from another set).
        limit: skills ranked per document.
    Returns:
        ``{"documents": n, "extract:max": {...}, "extract:max-no-whole-text": {...}, "sentences": {...}, ...}``.
    """
    import time

    docs = list(documents)
    rel = [d.relevant for d in docs]
    run = search_segments(searcher, [d.text for d in docs], per_segment=per_segment, **filters)
    out: dict[str, Any] = {"documents": len(docs), "relevant": sum(len(r) for r in rel),
                           "segments": sum(len(s) for s in run.segments), "extract_seconds": round(run.seconds, 2)}
    for method, whole in variants:
        name = f"extract:{method}" + ("" if whole else "-no-whole-text")
        out[name] = _report(_aggregated(run, method, whole, limit), rel, threshold)
    if baselines and all(d.sentences for d in docs):
        t = time.perf_counter()
        sents = [s for d in docs for s in d.sentences]
        hits: list[Any] = []
        texts = [s for s, _ in sents]
        for i in range(0, len(texts), 256):
            hits.extend(searcher.search_batch(texts[i:i + 256], limit=per_segment, threshold=-1.0, **filters))
        secs = time.perf_counter() - t
        out["sentences"] = {k: round(v, 4) for k, v in ranking_metrics(
            [[h.concept_uri for h in hs] for hs in hits], [r for _, r in sents]).items()}
        out["sentences"]["queries"] = sum(1 for _, r in sents if r)
        merged, i = [], 0
        for d in docs:
            merged.append(_merged_sentences(hits[i:i + len(d.sentences)], limit))
            i += len(d.sentences)
        out["sentences-merged"] = _report(merged, rel, threshold)
        out["sentences-merged"]["seconds"] = round(secs, 2)
    if baselines:
        whole = searcher.search_batch([d.text for d in docs], limit=min(limit, 100), threshold=-1.0, **filters)
        out["whole-text"] = _report([[(h.concept_uri, float(h.score)) for h in hs] for hs in whole], rel, threshold)
    return out


def store_threshold(searcher: Any, value: float) -> None:
    """Record ``value`` as the collection's threshold for extraction (metadata ``extract_threshold``), the
    default of ``extract`` from then on."""
    searcher.store.update_metadata(searcher.collection, {THRESHOLD_KEY: float(value)})


def summary_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's variants as table rows (name, ranking metrics, calibrated threshold and its P/R/F1)."""
    rows = []
    for name, m in report.items():
        if isinstance(m, dict):
            rows.append({"variant": name, **{k: m.get(k) for k in (*RANKING, "calibrated_threshold",
                         "precision@calibrated", "recall@calibrated", "f1@calibrated", "f1@threshold")
                         if k in m}})
    return rows
