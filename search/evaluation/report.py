"""What an evaluation measured (:class:`EvalReport`), as a table, as files, and the threshold it stores.

:func:`format_report` is the readable table, :func:`write_report` the report folder (metrics.json,
calibration.csv, queries.csv and the plots), :func:`store_threshold` writes a calibrated threshold into a
collection's metadata, where ``SkillSearch.default_threshold`` reads it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import InvalidQuery
from search.evaluation.calibration import Calibration
from search.evaluation.plots import plot_calibration
from search.jsonfile import write_json_atomic
from search.stores import Store

__all__ = ["MODEL_CARD", "EvalReport", "metric_ratio", "now", "format_report", "format_comparison", "write_report",
           "store_threshold"]

#: What the model card of ``isy-thl/multilingual-e5-base-learning-outcome-skill-tuned`` reports
#: (InformationRetrievalEvaluator, cosine), for reference beside our figures. Its labelled set is the
#: model authors' (learning outcomes -> skills), not ours: the numbers are not expected to agree.
MODEL_CARD: dict[str, float] = {
    "accuracy@1": 0.8582,
    "accuracy@3": 0.9546,
    "accuracy@5": 0.9716,
    "accuracy@10": 0.983,
    "precision@1": 0.8582,
    "precision@3": 0.3963,
    "precision@5": 0.2556,
    "precision@10": 0.1359,
    "recall@1": 0.7239,
    "recall@3": 0.8962,
    "recall@5": 0.9324,
    "recall@10": 0.9639,
    "ndcg@5": 0.8942,
    "ndcg@10": 0.9054,
    "mrr@10": 0.9092,
    "map@100": 0.8753,
}


@dataclass
class EvalReport:
    """What :func:`evaluate` measured.

    Attributes:
        collection: the alias or collection searched, and ``resolved`` the collection behind it.
        index: metrics of the rankings through the collection (the service's search path).
        exact: the same metrics from an exact brute-force search over the stored vectors (None if skipped).
        ratio: index / exact for every metric (1.0 where both are 0; None where only exact is 0).
        overlap_at_10: mean share of the exact top 10 concepts that the index also returned in its top 10.
        calibration: the threshold calibration on the index rankings.
        labelled: summary of the labelled set (name, queries, unresolved labels, ...).
        limit, filters, model, esco_version, languages, seconds: how it was run.
        mode: the search mode evaluated (``dense``, or a fused mode of :mod:`search.hybrid`).
        per_query: per query the rank of the first relevant skill (index and exact) and the top hit.
    """

    collection: str
    resolved: str | None
    n_queries: int
    limit: int
    filters: dict[str, Any]
    index: dict[str, float]
    exact: dict[str, float] | None
    ratio: dict[str, float | None] | None
    overlap_at_10: float | None
    calibration: Calibration
    labelled: dict[str, Any]
    model: str = ""
    esco_version: str = ""
    languages: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    per_query: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""
    mode: str = "dense"

    def to_dict(self, *, curves: bool = False, per_query: bool = False) -> dict[str, Any]:
        """A JSON-able summary: metric keys as in the model card (``accuracy@1``, ``ndcg@10``, ...)."""
        d: dict[str, Any] = {
            "collection": self.collection,
            "resolved_collection": self.resolved,
            "mode": self.mode,
            "model": self.model,
            "esco_version": self.esco_version,
            "languages": self.languages,
            "n_queries": self.n_queries,
            "limit": self.limit,
            "filters": self.filters,
            "metrics": self.index,
            "exact": self.exact,
            "ratio": self.ratio,
            "overlap_at_10": self.overlap_at_10,
            "model_card": MODEL_CARD,
            "calibration": self.calibration.summary(),
            "labelled_set": self.labelled,
            "seconds": self.seconds,
            "created_at": self.created_at,
        }
        if curves:
            d["calibration"]["table"] = self.calibration.rows()
        if per_query:
            d["per_query"] = self.per_query
        return d

def metric_ratio(index: Mapping[str, float], exact: Mapping[str, float]) -> dict[str, float | None]:
    """index / exact per metric: 1.0 where both are 0, None where only exact is 0 or it lacks the key."""
    out: dict[str, float | None] = {}
    for key, iv in index.items():
        ev = exact.get(key)
        if ev is None:
            out[key] = None
        elif ev == 0:
            out[key] = 1.0 if iv == 0 else None
        else:
            out[key] = iv / ev
    return out


def now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _header(report: EvalReport) -> list[str]:
    lab = report.labelled
    return [
        f"collection   {report.collection} -> {report.resolved}",
        f"model        {report.model}   ESCO {report.esco_version}   languages {', '.join(report.languages)}",
        f"labelled set {lab.get('name')}: {report.n_queries} queries"
        + (f", {lab['dropped_queries']} dropped" if lab.get("dropped_queries") else "")
        + (f", {lab['merged_rows']} repeated rows merged" if lab.get("merged_rows") else "")
        + (f", {lab['unresolved']} labels unresolved" if lab.get("unresolved") else "")
        + (f", {lab['resolved_by_alt_label']} resolved by an alternative label" if lab.get("resolved_by_alt_label")
           else ""),
        f"search       limit {report.limit}, threshold off, one hit per skill"
        + (f", filters {json.dumps(report.filters, ensure_ascii=False)}" if report.filters else ""),
    ]


def _calibration_lines(cal: Calibration, mode: str = "") -> list[str]:
    lines = [
        f"threshold    over the top {cal.k} hits of each query ({len(cal.relevant_scores)} relevant, "
        f"{len(cal.other_scores)} other)" + (f", mode {mode}" if mode else ""),
        f"  {'best F1':<19}{cal.best_f1_threshold:.3f}  (F1 {cal.best_f1:.3f}, precision {cal.best_f1_precision:.3f}, "
        f"recall {cal.best_f1_recall:.3f})",
    ]
    if cal.target_threshold is not None:
        lines.append(
            f"  {'precision >= ' + format(cal.target_precision, 'g'):<19}{cal.target_threshold:.3f}  (precision "
            f"{_fmt(cal.target_precision_reached, 3)}, recall {_fmt(cal.target_recall, 3)}, F1 {_fmt(cal.target_f1, 3)})"
        )
    else:
        lines.append(f"  {'precision >= ' + format(cal.target_precision, 'g'):<19}never reached on this set")
    return lines


def format_report(report: EvalReport) -> str:
    """The readable table: each metric, index value, exact value, their ratio, the model card's value."""
    lines = _header(report)
    if report.mode != "dense":
        lines.append(f"mode         {report.mode}")
    lines += ["", f"{'metric':<14}{'index':>9}{'exact':>9}{'ratio':>8}{'model card':>12}"]
    for key, value in report.index.items():
        ex = report.exact.get(key) if report.exact else None
        ra = report.ratio.get(key) if report.ratio else None
        lines.append(f"{key:<14}{value:>9.4f}{_fmt(ex):>9}{_fmt(ra, 3):>8}{_fmt(MODEL_CARD.get(key)):>12}")
    if report.overlap_at_10 is not None:
        lines.append(f"index top 10 holds {report.overlap_at_10:.3f} of the exact top 10 (1.000: no neighbour lost)")
    cal = report.calibration
    lines += ["", *_calibration_lines(cal)]
    lines.append(f"  {'recommended':<19}{cal.best_f1_threshold:.3f} (best F1); "
                 f"store it with --store-threshold best-f1")
    lines.append("  (the model card's figures come from its authors' own labelled set: a reference, not a target)")
    return "\n".join(lines)


def format_comparison(reports: Sequence[EvalReport]) -> str:
    """Several modes of one labelled set side by side: per mode the index value and index/exact ratio,
    and each mode's gain over the first one."""
    if len(reports) == 1:
        return format_report(reports[0])
    first = reports[0]
    lines = _header(first)
    lines.append("modes        " + ", ".join(r.mode for r in reports) + f" (x: against {first.mode})")
    head = f"{'metric':<14}"
    for r in reports:
        head += f"{r.mode:>12}{'ratio':>7}"
    for r in reports[1:]:
        head += f"{'x ' + r.mode:>12}"
    lines += ["", head + f"{'model card':>12}"]
    for key, base in first.index.items():
        row = f"{key:<14}"
        for r in reports:
            ra = r.ratio.get(key) if r.ratio else None
            row += f"{r.index.get(key, float('nan')):>12.4f}{_fmt(ra, 3):>7}"
        for r in reports[1:]:
            v = r.index.get(key)
            row += f"{_fmt(v / base if v is not None and base else None, 3):>12}"
        lines.append(row + f"{_fmt(MODEL_CARD.get(key)):>12}")
    for r in reports:
        if r.overlap_at_10 is not None:
            lines.append(f"{r.mode}: index top 10 holds {r.overlap_at_10:.3f} of the exact top 10")
    for r in reports:
        lines += ["", *_calibration_lines(r.calibration, r.mode)]
    return "\n".join(lines)


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``calibration.csv``, ``queries.csv`` and the two plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["metrics"] = out / "metrics.json"
    write_json_atomic(paths["metrics"], report.to_dict(), indent=2)
    paths["calibration"] = out / "calibration.csv"
    with paths["calibration"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threshold", "predicted", "true_positives", "precision", "recall", "f1"])
        for r in report.calibration.rows():
            w.writerow([f"{r['threshold']:.3f}", r["predicted"], r["true_positives"],
                        "" if r["precision"] is None else f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                        f"{r['f1']:.4f}"])
    paths["queries"] = out / "queries.csv"
    with paths["queries"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "query", "relevant", "rank", "exact_rank", "top_label", "top_score", "top_uri"])
        for q in report.per_query:
            w.writerow([q["line"], q["query"], "|".join(q["relevant"]), q["rank"] or "", q["exact_rank"] or "",
                        q["top_label"], q["top_score"], q["top_uri"]])
    title = f"{report.labelled.get('name', '')} on {report.resolved or report.collection}"
    p1, p2 = plot_calibration(report.calibration, out, title=title[:90])
    paths["score_distributions"], paths["threshold_curves"] = p1, p2
    return paths


def store_threshold(store: Store, alias: str, threshold: float, details: Mapping[str, Any] | None = None,
                    *, mode: str | None = None) -> str:
    """Record ``threshold`` as the collection's calibrated ``score_threshold`` (SkillSearch's default).

    Writes ``score_threshold`` and a ``calibration`` dict (``details`` plus the date) into the metadata of
    the collection ``alias`` points to (or of ``alias`` itself when it is a collection). With ``mode``, the
    threshold is also recorded under ``score_thresholds[mode]`` (a threshold means something per mode: the
    score distributions differ), beside those of other modes. A later ingest writes a new collection, which
    needs calibrating again.

    Returns:
        The collection whose metadata was updated.

    Raises:
        InvalidQuery: the threshold is not a cosine score in [-1, 1].
        CollectionNotFound: neither an alias nor a collection of that name exists.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold) \
            or not -1.0 <= threshold <= 1.0:
        raise InvalidQuery(f"a score threshold is a cosine score from -1 to 1, got {threshold!r}")
    target = store.resolve_alias(alias) or alias
    meta = store.get_metadata(target)  # raises CollectionNotFound
    info = {**dict(details or {}), "threshold": float(threshold), "date": now()}
    changes: dict[str, Any] = {"score_threshold": float(threshold), "calibration": info}
    if mode is not None:
        info["mode"] = mode
        changes["score_thresholds"] = {**dict(meta.get("score_thresholds") or {}), mode: float(threshold)}
    store.update_metadata(target, changes)
    return target
