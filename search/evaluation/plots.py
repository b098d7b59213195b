"""Plots of a calibration: score distributions and the precision/recall/F1 curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.errors import ConfigError
from search.evaluation.calibration import Calibration

__all__ = ["plot_calibration"]


def plot_calibration(cal: Calibration, out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``score_distributions.png`` and ``threshold_curves.png`` into ``out_dir``.

    Raises:
        ConfigError: matplotlib is not installed (``pip install 'esco-skill-search[eval]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - a dev and eval dependency
        raise ConfigError("the plots need matplotlib: pip install 'esco-skill-search[eval]'") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marks = [(cal.best_f1_threshold, f"best F1 {cal.best_f1:.3f} at {cal.best_f1_threshold:.3f}", "tab:red")]
    if cal.target_threshold is not None:
        marks.append((cal.target_threshold,
                      f"precision >= {cal.target_precision:g} from {cal.target_threshold:.3f}", "tab:purple"))

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo, hi = cal.thresholds[0], cal.thresholds[-1]
    bins = np.linspace(lo, hi, max(10, min(80, len(cal.thresholds))))
    ax.hist(cal.other_scores, bins=bins, alpha=0.6, label=f"other hits ({len(cal.other_scores)})", color="tab:gray")
    ax.hist(cal.relevant_scores, bins=bins, alpha=0.7, label=f"relevant hits ({len(cal.relevant_scores)})",
            color="tab:green")
    for t, lab, col in marks:
        ax.axvline(t, color=col, linestyle="--", label=lab)
    ax.set_xlabel("cosine score")
    ax.set_ylabel(f"hits (top {cal.k} of each query)")
    ax.set_title(title or "score distributions")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p1 = out / "score_distributions.png"
    fig.savefig(p1, dpi=110)

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    prec = [np.nan if p is None else p for p in cal.precision]
    ax.plot(cal.thresholds, prec, label="precision")
    ax.plot(cal.thresholds, cal.recall, label="recall")
    ax.plot(cal.thresholds, cal.f1, label="F1")
    for t, lab, col in marks:
        ax.axvline(t, color=col, linestyle="--", label=lab)
    ax.set_xlabel("score threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"precision / recall / F1 against the threshold (top {cal.k})")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p2 = out / "threshold_curves.png"
    fig.savefig(p2, dpi=110)
    return [p1, p2]
