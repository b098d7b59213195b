"""Score-threshold calibration: precision, recall and F1 of "every hit scoring at least t is relevant"."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Calibration", "calibrate"]


@dataclass
class Calibration:
    """Precision, recall and F1 of "every hit scoring at least t is relevant", over thresholds t.

    Counted over all query/hit pairs within the first ``k`` hits of each query (micro-average); recall
    is relative to all relevant skills of all queries (found in the top k or not).

    Attributes:
        k: hits per query considered (the service's ``limit``).
        step: spacing of the thresholds.
        thresholds, precision, recall, f1, predicted, true_positives: one entry per threshold, ascending;
            precision is None where no hit reaches the threshold.
        total_relevant: relevant skills over all queries (the recall denominator).
        best_f1_threshold, best_f1, best_f1_precision, best_f1_recall: the threshold of best F1 (the
            lowest of equals).
        target_precision: the precision asked for.
        target_threshold, target_recall, target_f1, target_precision_reached: the lowest threshold
            whose precision reaches ``target_precision`` (None when none does).
        relevant_scores, other_scores: scores of relevant and of other hits within the top k.
    """

    k: int
    step: float
    thresholds: list[float]
    precision: list[float | None]
    recall: list[float]
    f1: list[float]
    predicted: list[int]
    true_positives: list[int]
    total_relevant: int
    best_f1_threshold: float
    best_f1: float
    best_f1_precision: float
    best_f1_recall: float
    target_precision: float
    target_threshold: float | None
    target_recall: float | None
    target_f1: float | None
    target_precision_reached: float | None
    relevant_scores: list[float]
    other_scores: list[float]

    def summary(self) -> dict[str, Any]:
        """The recommended thresholds, without the curves."""
        return {
            "k": self.k,
            "step": self.step,
            "pairs": len(self.relevant_scores) + len(self.other_scores),
            "relevant_pairs": len(self.relevant_scores),
            "total_relevant": self.total_relevant,
            "best_f1": {"threshold": self.best_f1_threshold, "f1": self.best_f1,
                        "precision": self.best_f1_precision, "recall": self.best_f1_recall},
            "target_precision": {"target": self.target_precision, "threshold": self.target_threshold,
                                 "precision": self.target_precision_reached, "recall": self.target_recall,
                                 "f1": self.target_f1},
        }

    def rows(self) -> list[dict[str, Any]]:
        """One dict per threshold (the calibration table)."""
        return [
            {"threshold": t, "predicted": n, "true_positives": tp, "precision": p, "recall": r, "f1": f}
            for t, n, tp, p, r, f in zip(self.thresholds, self.predicted, self.true_positives, self.precision,
                                         self.recall, self.f1)
        ]


def calibrate(
    rankings: Sequence[Sequence[tuple[str, float]]],
    relevant: Sequence[Iterable[str]],
    *,
    k: int = 10,
    step: float = 0.005,
    target_precision: float = 0.9,
) -> Calibration:
    """Calibrate a score threshold on ranked, scored hits.

    Args:
        rankings: per query, ``(concept_uri, score)`` best first (one per concept).
        relevant: per query, the relevant concept URIs.
        k: only the first k hits of each query count (what a service shows).
        step: threshold spacing; thresholds run over multiples of ``step`` from the lowest to the
            highest observed score.
        target_precision: the precision the ``target`` threshold must reach.

    Raises:
        ValueError: bad arguments, or no hit at all.
    """
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} relevant sets")
    if k < 1 or not step > 0 or not 0 < target_precision <= 1:
        raise ValueError("k >= 1, step > 0 and 0 < target_precision <= 1 are needed")
    rel_scores: list[float] = []
    other: list[float] = []
    total_relevant = 0
    for hits, rel in zip(rankings, relevant):
        rel = set(rel)
        total_relevant += len(rel)
        for uri, score in list(hits)[:k]:
            (rel_scores if uri in rel else other).append(float(score))
    if not rel_scores and not other:
        raise ValueError("no hit to calibrate on")
    allsc = np.asarray(rel_scores + other)
    lo = math.floor(round(float(allsc.min()) / step, 9))
    hi = math.ceil(round(float(allsc.max()) / step, 9))
    grid = [round(i * step, 10) for i in range(lo, hi + 1)]
    rs = np.sort(np.asarray(rel_scores))
    os_ = np.sort(np.asarray(other))
    precision: list[float | None] = []
    recall: list[float] = []
    f1: list[float] = []
    predicted: list[int] = []
    tps: list[int] = []
    for t in grid:
        tp = int(len(rs) - np.searchsorted(rs, t, side="left"))
        fp = int(len(os_) - np.searchsorted(os_, t, side="left"))
        n = tp + fp
        p = tp / n if n else None
        r = tp / total_relevant if total_relevant else 0.0
        f = 2 * p * r / (p + r) if p is not None and p + r > 0 else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(f)
        predicted.append(n)
        tps.append(tp)
    best = max(range(len(grid)), key=lambda i: (f1[i], -i))
    target = next((i for i in range(len(grid)) if precision[i] is not None
                   and precision[i] >= target_precision), None)  # type: ignore[operator]
    return Calibration(
        k=k, step=step, thresholds=grid, precision=precision, recall=recall, f1=f1, predicted=predicted,
        true_positives=tps, total_relevant=total_relevant,
        best_f1_threshold=grid[best], best_f1=f1[best], best_f1_precision=precision[best] or 0.0,
        best_f1_recall=recall[best], target_precision=target_precision,
        target_threshold=grid[target] if target is not None else None,
        target_recall=recall[target] if target is not None else None,
        target_f1=f1[target] if target is not None else None,
        target_precision_reached=precision[target] if target is not None else None,
        relevant_scores=rel_scores, other_scores=other,
    )
