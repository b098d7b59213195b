"""Ranking metrics (accuracy, precision, recall, MRR, nDCG, MAP at k): pure functions over ranked ids.

The bottom layer: imports nothing of the project, so the encoder's quality check and the evaluation both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["METRIC_ORDER", "metric_names", "ir_metrics"]

DEFAULT_ACCURACY_AT: tuple[int, ...] = (1, 3, 5, 10)
DEFAULT_PRECISION_RECALL_AT: tuple[int, ...] = (1, 3, 5, 10)
DEFAULT_MRR_AT: tuple[int, ...] = (10,)
DEFAULT_NDCG_AT: tuple[int, ...] = (5, 10)
DEFAULT_MAP_AT: tuple[int, ...] = (100,)

def metric_names(
    accuracy_at: Sequence[int] = DEFAULT_ACCURACY_AT,
    precision_recall_at: Sequence[int] = DEFAULT_PRECISION_RECALL_AT,
    mrr_at: Sequence[int] = DEFAULT_MRR_AT,
    ndcg_at: Sequence[int] = DEFAULT_NDCG_AT,
    map_at: Sequence[int] = DEFAULT_MAP_AT,
) -> list[str]:
    """The metric keys :func:`ir_metrics` returns, in the model card's order."""
    return (
        [f"accuracy@{k}" for k in accuracy_at]
        + [f"precision@{k}" for k in precision_recall_at]
        + [f"recall@{k}" for k in precision_recall_at]
        + [f"ndcg@{k}" for k in ndcg_at]
        + [f"mrr@{k}" for k in mrr_at]
        + [f"map@{k}" for k in map_at]
    )


METRIC_ORDER: list[str] = metric_names()


def _dcg(relevances: Sequence[int], k: int) -> float:
    """Discounted cumulative gain of binary relevances: ``sum rel_i / log2(i + 2)`` over the first k."""
    return float(sum(relevances[i] / np.log2(i + 2) for i in range(min(len(relevances), k))))


def ir_metrics(
    rankings: Sequence[Sequence[str]],
    relevant: Sequence[Iterable[str]],
    *,
    accuracy_at: Sequence[int] = DEFAULT_ACCURACY_AT,
    precision_recall_at: Sequence[int] = DEFAULT_PRECISION_RECALL_AT,
    mrr_at: Sequence[int] = DEFAULT_MRR_AT,
    ndcg_at: Sequence[int] = DEFAULT_NDCG_AT,
    map_at: Sequence[int] = DEFAULT_MAP_AT,
) -> dict[str, float]:
    """IR metrics of ranked results, defined exactly as sentence-transformers' ``InformationRetrievalEvaluator``.

    For each query (``rankings[i]``: ids best first; ``relevant[i]``: the ids that count as correct):

    * ``accuracy@k``: 1 when any of the first k is relevant;
    * ``precision@k``: relevant among the first k, divided by k (also when fewer than k were returned);
    * ``recall@k``: relevant among the first k, divided by the number of relevant ids;
    * ``mrr@k``: 1 / rank of the first relevant id within the first k (0 when none);
    * ``ndcg@k``: binary-relevance DCG of the first k (gain ``1 / log2(rank + 1)``) over the ideal DCG of
      ``len(relevant)`` relevant ids, ideal cut at k;
    * ``map@k``: sum of precision at each relevant hit within the first k, divided by
      ``min(k, len(relevant))``;

    each averaged over the queries. Like the evaluator, queries without any relevant id are left out.
    Rankings are taken as given: pass each id once (the evaluator ranks distinct corpus ids).

    Returns:
        ``{"accuracy@1": ..., "precision@3": ..., "recall@10": ..., "ndcg@10": ..., "mrr@10": ...,
        "map@100": ...}`` in the order of :func:`metric_names`.

    Raises:
        ValueError: ``rankings`` and ``relevant`` differ in length, or no query has a relevant id.
    """
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} relevant sets")
    pairs = [(list(r), set(rel)) for r, rel in zip(rankings, relevant)]
    pairs = [(r, rel) for r, rel in pairs if rel]
    if not pairs:
        raise ValueError("no query has a relevant id: nothing to evaluate")
    n = len(pairs)
    hits_at = {k: 0 for k in accuracy_at}
    prec_at: dict[int, list[float]] = {k: [] for k in precision_recall_at}
    rec_at: dict[int, list[float]] = {k: [] for k in precision_recall_at}
    mrr = {k: 0.0 for k in mrr_at}
    ndcg: dict[int, list[float]] = {k: [] for k in ndcg_at}
    avep: dict[int, list[float]] = {k: [] for k in map_at}
    for ranking, rel in pairs:
        flags = [1 if doc in rel else 0 for doc in ranking]
        for k in accuracy_at:
            if any(flags[:k]):
                hits_at[k] += 1
        for k in precision_recall_at:
            correct = sum(flags[:k])
            prec_at[k].append(correct / k)
            rec_at[k].append(correct / len(rel))
        for k in mrr_at:
            for rank, f in enumerate(flags[:k]):
                if f:
                    mrr[k] += 1.0 / (rank + 1)
                    break
        for k in ndcg_at:
            ndcg[k].append(_dcg(flags[:k], k) / _dcg([1] * len(rel), k))
        for k in map_at:
            correct, total = 0, 0.0
            for rank, f in enumerate(flags[:k]):
                if f:
                    correct += 1
                    total += correct / (rank + 1)
            avep[k].append(total / min(k, len(rel)))
    out: dict[str, float] = {}
    for k in accuracy_at:
        out[f"accuracy@{k}"] = hits_at[k] / n
    for k in precision_recall_at:
        out[f"precision@{k}"] = float(np.mean(prec_at[k]))
    for k in precision_recall_at:
        out[f"recall@{k}"] = float(np.mean(rec_at[k]))
    for k in ndcg_at:
        out[f"ndcg@{k}"] = float(np.mean(ndcg[k]))
    for k in mrr_at:
        out[f"mrr@{k}"] = mrr[k] / n
    for k in map_at:
        out[f"map@{k}"] = float(np.mean(avep[k]))
    return out
