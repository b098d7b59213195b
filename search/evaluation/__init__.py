"""Evaluation through the index, and calibrated score thresholds.

What this package measures, and how (one module per seam):

* :mod:`~search.evaluation.labelled`, :mod:`~search.evaluation.reading`, :mod:`~search.evaluation.building`:
  labelled sets. :func:`load_labelled` reads one (JSONL with concept URIs, or CSV/TSV whose ESCO labels
  are resolved to URIs through the collection's :class:`LabelIndex`); :func:`build_labelled_set` makes one
  from ESCO itself (an alternative label of each sampled skill as the query, the skill as the answer).
* :mod:`~search.evaluation.exact`: the exact reference, a brute-force search over the vectors stored in
  the collection (:class:`ExactIndex`, :func:`exact_rankings`).
* :mod:`~search.evaluation.fused`: the exact reference of the fused modes (``hybrid``): the numpy fusion
  of :mod:`search.hybrid` over every stored representation (:class:`FusedReference`).
* :mod:`~search.evaluation.run`: :func:`evaluate` ranks every query twice, through the collection by the
  same ``SkillSearch.search_batch`` call a service makes, and exactly. Both give the metrics
  (:func:`search.metrics.ir_metrics`, the definitions of sentence-transformers'
  ``InformationRetrievalEvaluator``); their ratio shows what the index loses (1.000 on an exact store).
* :mod:`~search.evaluation.calibration`, :mod:`~search.evaluation.plots`: :func:`calibrate` finds the
  score threshold of best F1 and the lowest one reaching a target precision.
* :mod:`~search.evaluation.report`: :class:`EvalReport`, its table and folder; :func:`store_threshold`
  writes the chosen threshold into the collection's metadata, where ``SkillSearch.default_threshold``
  reads it.

The searcher and the encoder never import this package; ``esco-search eval`` (:mod:`search.cli.eval`) does.

Example:
    >>> from search import SkillSearch
    >>> from search.evaluation import LabelIndex, evaluate, load_labelled, write_report   # doctest: +SKIP
    >>> with SkillSearch() as s:                                                           # doctest: +SKIP
    ...     labels = LabelIndex.from_store(s.store, s.collection)
    ...     labelled = load_labelled("labelled.csv", index=labels)
    ...     report = evaluate(s, labelled, limit=100)
    ...     write_report(report, "reports/eval")
"""

from search.evaluation.building import build_labelled_set, write_labelled_jsonl
from search.evaluation.calibration import Calibration, calibrate
from search.evaluation.exact import FILTER_KEYS, ExactIndex, exact_rankings
from search.evaluation.labelled import LabelIndex, LabelledQuery, LabelledSet, LabelledSetError
from search.evaluation.plots import plot_calibration
from search.evaluation.reading import LabelledRows, load_labelled, read_labelled
from search.evaluation.report import MODEL_CARD, EvalReport, format_comparison, format_report, store_threshold, \
    write_report
from search.evaluation.fused import FusedReference
from search.evaluation.run import evaluate, evaluate_modes, pinned_searcher
from search.metrics import METRIC_ORDER, ir_metrics, metric_names

__all__ = [
    "MODEL_CARD",
    "METRIC_ORDER",
    "FILTER_KEYS",
    "LabelledSetError",
    "LabelledQuery",
    "LabelledSet",
    "LabelIndex",
    "Calibration",
    "EvalReport",
    "ExactIndex",
    "ir_metrics",
    "metric_names",
    "LabelledRows",
    "read_labelled",
    "load_labelled",
    "build_labelled_set",
    "write_labelled_jsonl",
    "exact_rankings",
    "evaluate",
    "evaluate_modes",
    "FusedReference",
    "pinned_searcher",
    "calibrate",
    "plot_calibration",
    "format_report",
    "format_comparison",
    "write_report",
    "store_threshold",
]
