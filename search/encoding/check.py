"""The quality check of ``ESCO_BACKEND=auto``: how far a faster backend's retrieval is from torch fp32's.

Both encoders embed the held-out check set (:func:`search.encoding.data.check_set`: ESCO alternative labels
and sentence-like queries, over ESCO skill passages); the candidate passes when

* the mean cosine of its embeddings to fp32's is at least :data:`MIN_MEAN_COSINE` and the lowest at least
  :data:`MIN_COSINE` (no text is embedded badly),
* its nDCG@10 and MRR@10 over all queries are at most :data:`MAX_METRIC_DROP` below fp32's, and
* on each kind of query (``label``, ``sentence``) its MRR@10 is at most :data:`MAX_KIND_MRR_DROP` below, with a
  margin for the check's own noise: the loss plus one standard error of the per-query differences of
  reciprocal rank (:func:`kind_loss`). A candidate whose loss is only probably under the bar on these few
  queries fails; one that moves no rank (a lossless backend) has no margin to pay.

Speed is measured against torch fp32 in the same moments (:func:`relative_speed`: batch by batch, the two
encoders alternating), so that a busy machine slows both alike; :mod:`search.encoding.choice` takes the
fastest candidate that passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.encoding.data import CheckSet, check_set
from search.metrics import ir_metrics

__all__ = [
    "MAX_KIND_MRR_DROP",
    "MAX_METRIC_DROP",
    "MIN_COSINE",
    "MIN_MEAN_COSINE",
    "Embedded",
    "QualityCheck",
    "check_quality",
    "compare",
    "embed",
    "kind_loss",
    "reciprocal_ranks",
    "relative_speed",
]

MIN_MEAN_COSINE = 0.995  # the bar for a >= 5x backend
MIN_COSINE = 0.98
MAX_METRIC_DROP = 0.01  # over all queries
MAX_KIND_MRR_DROP = 0.005  # per kind of query: a loss of 0.01 MRR@10 on sentence-like queries must not pass


@dataclass(frozen=True)
class Embedded:
    """One encoder's embeddings of a check set, and how long the passages took."""

    queries: np.ndarray
    passages: np.ndarray
    passage_seconds: float
    query_seconds: float

    @property
    def passages_per_s(self) -> float:
        return len(self.passages) / self.passage_seconds if self.passage_seconds > 0 else 0.0


@dataclass(frozen=True)
class QualityCheck:
    """How a backend/precision compares with torch fp32 on the held-out check set, and its speed there."""

    backend: str
    precision: str
    passed: bool
    mean_cosine: float
    min_cosine: float
    ndcg_at_10: float
    ndcg_at_10_fp32: float
    mrr_at_10: float
    mrr_at_10_fp32: float
    seconds: float
    reasons: tuple[str, ...] = ()
    passages_per_s: float = 0.0  # encoding the check passages, batch 16
    speedup: float = 0.0  # passages per second over torch fp32's, measured alternating (relative_speed)
    mrr_by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind: [mrr@10, fp32's, s.e. of the loss]

    @property
    def ndcg_drop(self) -> float:
        return self.ndcg_at_10_fp32 - self.ndcg_at_10

    @property
    def mrr_drop(self) -> float:
        return self.mrr_at_10_fp32 - self.mrr_at_10

    def summary(self) -> str:
        """One line: the figures, and why it failed when it did."""
        kinds = "".join(f", {k} MRR@10 {v[0]:.4f} (fp32 {v[1]:.4f}" + (f", s.e. {v[2]:.4f})" if len(v) > 2 else ")")
                        for k, v in sorted(self.mrr_by_kind.items()))
        line = (f"{self.backend} {self.precision}: cosine to fp32 {self.mean_cosine:.5f} mean, "
                f"{self.min_cosine:.5f} min; nDCG@10 {self.ndcg_at_10:.4f} (fp32 {self.ndcg_at_10_fp32:.4f}), "
                f"MRR@10 {self.mrr_at_10:.4f} (fp32 {self.mrr_at_10_fp32:.4f}){kinds}"
                + (f"; {self.speedup:.2f}x torch fp32" if self.speedup else ""))
        return line + (f"; fails: {'; '.join(self.reasons)}" if self.reasons else "")


def embed(encoder: Any, check: CheckSet, batch_size: int = 16) -> Embedded:
    """Embed the check set's passages (timed) and queries with ``encoder``."""
    encoder.encode_passages(list(check.passages[:batch_size]), batch_size=batch_size)  # warm-up: compile, allocate
    t = time.perf_counter()
    p = encoder.encode_passages(list(check.passages), batch_size=batch_size)
    p_s = time.perf_counter() - t
    t = time.perf_counter()
    q = encoder.encode_queries(list(check.queries))
    return Embedded(np.asarray(q, dtype=np.float32), np.asarray(p, dtype=np.float32), p_s, time.perf_counter() - t)


def relative_speed(candidate: Any, reference: Any, passages: Sequence[str], batch_size: int = 16,
                   rounds: int = 2) -> float:
    """How many times faster ``candidate`` encodes ``passages`` than ``reference``, timed batch by batch.

    The two encoders take turns on each batch (who goes first alternates), and each batch counts its fastest
    round: a busy spell slows both, not one of them.
    """
    texts = list(passages)
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    for enc in (candidate, reference):
        enc.encode_passages(batches[0], batch_size=batch_size)  # warm-up
    best = {"c": [float("inf")] * len(batches), "r": [float("inf")] * len(batches)}
    for r in range(rounds):
        for b, batch in enumerate(batches):
            order = (("c", candidate), ("r", reference)) if (b + r) % 2 == 0 else (("r", reference), ("c", candidate))
            for name, enc in order:
                t = time.perf_counter()
                enc.encode_passages(batch, batch_size=batch_size)
                best[name][b] = min(best[name][b], time.perf_counter() - t)
    cand, ref = sum(best["c"]), sum(best["r"])
    return ref / cand if cand > 0 else 0.0


def _top(emb: Embedded, rows: Sequence[int], k: int = 10) -> np.ndarray:
    """The best ``k`` passages (indices, best first; ties by index) of each query of ``rows``."""
    scores = emb.queries[list(rows)] @ emb.passages.T
    return np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]


def reciprocal_ranks(emb: Embedded, check: CheckSet, rows: Sequence[int], k: int = 10) -> np.ndarray:
    """Reciprocal rank of the first relevant passage within the top ``k`` (0 beyond), per query of ``rows``."""
    top = _top(emb, rows, k)
    out = np.zeros(len(rows))
    for n, (i, row) in enumerate(zip(rows, top)):
        hits = [r for r, j in enumerate(row) if j in check.relevant[i]]
        out[n] = 1.0 / (hits[0] + 1) if hits else 0.0
    return out


def kind_loss(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(MRR loss, its standard error) from per-query reciprocal ranks of the same queries: the mean of
    ``reference - candidate`` and the standard error of that mean (0 with fewer than two queries)."""
    d = np.asarray(reference, dtype=np.float64) - np.asarray(candidate, dtype=np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, 0.0
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def _metrics(emb: Embedded, check: CheckSet, rows: Sequence[int] | None = None) -> tuple[float, float]:
    """nDCG@10 and MRR@10 of the queries ``rows`` (default all)."""
    idx = list(range(len(check.queries))) if rows is None else list(rows)
    top = _top(emb, idx)
    m = ir_metrics([[str(j) for j in row] for row in top], [{str(j) for j in check.relevant[i]} for i in idx],
                   accuracy_at=(1,), precision_recall_at=(10,), mrr_at=(10,), ndcg_at=(10,), map_at=(10,))
    return m["ndcg@10"], m["mrr@10"]


def compare(candidate: Embedded, reference: Embedded, check: CheckSet, backend: str, precision: str,
            seconds: float = 0.0, speedup: float = 0.0) -> QualityCheck:
    """The verdict on ``candidate``'s embeddings against ``reference``'s (torch fp32) on ``check``."""
    cos = np.concatenate([np.sum(reference.queries * candidate.queries, axis=1),
                          np.sum(reference.passages * candidate.passages, axis=1)])
    ndcg_ref, mrr_ref = _metrics(reference, check)
    ndcg, mrr = _metrics(candidate, check)
    reasons = []
    if cos.mean() < MIN_MEAN_COSINE:
        reasons.append(f"mean cosine {cos.mean():.5f} < {MIN_MEAN_COSINE}")
    if cos.min() < MIN_COSINE:
        reasons.append(f"lowest cosine {cos.min():.5f} < {MIN_COSINE}")
    if ndcg_ref - ndcg > MAX_METRIC_DROP:
        reasons.append(f"nDCG@10 drop {ndcg_ref - ndcg:.4f} > {MAX_METRIC_DROP}")
    if mrr_ref - mrr > MAX_METRIC_DROP:
        reasons.append(f"MRR@10 drop {mrr_ref - mrr:.4f} > {MAX_METRIC_DROP}")
    by_kind: dict[str, list[float]] = {}
    for kind in sorted(set(check.kinds)):
        rows = check.of_kind(kind)
        rr, rr_ref = reciprocal_ranks(candidate, check, rows), reciprocal_ranks(reference, check, rows)
        loss, se = kind_loss(rr, rr_ref)
        by_kind[kind] = [round(float(rr.mean()), 6), round(float(rr_ref.mean()), 6), round(se, 6)]
        if loss + se > MAX_KIND_MRR_DROP:
            reasons.append(f"{kind} MRR@10 drop {loss:.4f} + its standard error {se:.4f} > {MAX_KIND_MRR_DROP}")
    return QualityCheck(
        backend=backend, precision=precision, passed=not reasons,
        mean_cosine=round(float(cos.mean()), 6), min_cosine=round(float(cos.min()), 6),
        ndcg_at_10=round(ndcg, 6), ndcg_at_10_fp32=round(ndcg_ref, 6), mrr_at_10=round(mrr, 6),
        mrr_at_10_fp32=round(mrr_ref, 6), seconds=round(seconds, 2), reasons=tuple(reasons),
        passages_per_s=round(candidate.passages_per_s, 2), speedup=round(speedup, 3), mrr_by_kind=by_kind,
    )


def check_quality(
    candidate: Any,
    reference: Any,
    *,
    queries: Sequence[str] | None = None,
    passages: Sequence[str] | None = None,
    batch_size: int = 16,
) -> QualityCheck:
    """Compare ``candidate`` with ``reference`` (torch fp32) on a retrieval task.

    Both are :class:`search.encoding.Encoder` objects with ``backend`` and ``precision`` attributes. Default
    task: :func:`search.encoding.data.check_set`; with ``queries`` and ``passages``, query i -> passage i (the
    passages after the queries' are distractors).
    """
    check = check_set()
    if queries is not None or passages is not None:
        qs = list(queries if queries is not None else check.queries)
        ps = list(passages if passages is not None else check.passages)
        check = CheckSet(queries=tuple(qs), relevant=tuple((i,) for i in range(len(qs))),
                         kinds=("label",) * len(qs), passages=tuple(ps))
    t = time.perf_counter()
    ref = embed(reference, check, batch_size)
    got = embed(candidate, check, batch_size)
    return compare(got, ref, check, str(candidate.backend), str(candidate.precision), time.perf_counter() - t)
