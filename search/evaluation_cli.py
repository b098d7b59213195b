"""``esco-search eval``: evaluate a labelled set through the collection and calibrate the score threshold.

Usage::

    esco-search eval LABELLED.{jsonl,csv,tsv} [--limit 100] [--skill-type ...] [--json]
        [--report-dir reports/eval] [--target-precision 0.9] [--store-threshold best-f1|target-precision|0.83]
        [--query-column query] [--label-column relevant]
    esco-search eval --build-set OUT.jsonl [--n 500] [--seed 0] [--language en]

Settings (model, store, collection) come from ``ESCO_*`` variables, as for ``esco-search``. Errors are
raised as :class:`search.errors.SearchError`; ``search.cli`` prints them as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from search.cli import add_filter_arguments
from search.errors import InvalidQuery
from search.evaluation import (
    MODEL_CARD,
    EvalReport,
    LabelIndex,
    build_labelled_set,
    evaluate,
    load_labelled,
    read_labelled,
    store_threshold,
    write_labelled_jsonl,
    write_report,
)

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises InvalidQuery instead of exiting, so the caller prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidQuery(f"eval: {message} (see `esco-search eval --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="esco-search eval",
        description="Evaluate a labelled set through the collection (the service's search path) and against an "
        "exact brute-force search over its stored vectors; calibrate the score threshold.",
        epilog="Labelled sets: JSONL lines {\"query\": ..., \"relevant\": [concept URIs]}, or CSV/TSV with a query "
        "column and a label column of ESCO preferred labels (several separated by | or ;). "
        "`esco-search eval --build-set OUT.jsonl` makes one from ESCO's alternative labels.",
    )
    p.add_argument("labelled", nargs="?", help="the labelled set (.jsonl, .csv or .tsv)")
    p.add_argument("--build-set", metavar="OUT.jsonl",
                   help="write a labelled set built from the collection's alternative labels, and stop")
    p.add_argument("--n", type=int, default=500, help="queries of the built set (default 500)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of the built set (default 0)")
    p.add_argument("--limit", type=int, default=100, help="hits per query (default 100, covers map@100)")
    p.add_argument("--calibration-k", type=int, default=None,
                   help="hits per query the threshold calibration counts (default: ESCO_LIMIT, 10)")
    add_filter_arguments(p)
    p.add_argument("--language", action="append",
                   help="language of the passages (repeatable); with --build-set: the language of the queries")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report-dir", default="reports/eval",
                   help="folder of metrics.json, calibration.csv, queries.csv and the plots (default reports/eval)")
    p.add_argument("--no-report", action="store_true", help="write no report folder")
    p.add_argument("--no-exact", action="store_true", help="skip the exact brute-force reference")
    p.add_argument("--target-precision", type=float, default=0.9,
                   help="precision the recommended 'target-precision' threshold must reach (default 0.9)")
    p.add_argument("--store-threshold", metavar="best-f1|target-precision|FLOAT",
                   help="write this threshold into the collection's metadata (SkillSearch's default threshold)")
    p.add_argument("--query-column", help="query column of a CSV/TSV (default 'query')")
    p.add_argument("--label-column", help="label column of a CSV/TSV (default 'relevant', else 'label')")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_report(report: EvalReport) -> str:
    """The readable table: each metric, index value, exact value, their ratio, the model card's value."""
    lab = report.labelled
    lines = [
        f"collection   {report.collection} -> {report.resolved}",
        f"model        {report.model}   ESCO {report.esco_version}   languages {', '.join(report.languages)}",
        f"labelled set {lab.get('name')}: {report.n_queries} queries"
        + (f", {lab['dropped_queries']} dropped" if lab.get("dropped_queries") else "")
        + (f", {lab['unresolved']} labels unresolved" if lab.get("unresolved") else "")
        + (f", {lab['resolved_by_alt_label']} resolved by an alternative label" if lab.get("resolved_by_alt_label")
           else ""),
        f"search       limit {report.limit}, threshold off, one hit per skill"
        + (f", filters {json.dumps(report.filters, ensure_ascii=False)}" if report.filters else ""),
        "",
        f"{'metric':<14}{'index':>9}{'exact':>9}{'ratio':>8}{'model card':>12}",
    ]
    for key, value in report.index.items():
        ex = report.exact.get(key) if report.exact else None
        ra = report.ratio.get(key) if report.ratio else None
        lines.append(f"{key:<14}{value:>9.4f}{_fmt(ex):>9}{_fmt(ra, 3):>8}{_fmt(MODEL_CARD.get(key)):>12}")
    if report.overlap_at_10 is not None:
        lines.append(f"index top 10 holds {report.overlap_at_10:.3f} of the exact top 10 (1.000: no neighbour lost)")
    cal = report.calibration
    lines += [
        "",
        f"threshold    over the top {cal.k} hits of each query ({len(cal.relevant_scores)} relevant, "
        f"{len(cal.other_scores)} other)",
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
    lines.append(f"  {'recommended':<19}{cal.best_f1_threshold:.3f} (best F1); "
                 f"store it with --store-threshold best-f1")
    lines.append("  (the model card's figures come from its authors' own labelled set: a reference, not a target)")
    return "\n".join(lines)


def _threshold_choice(choice: str) -> str | float:
    """``best-f1``, ``target-precision`` or a cosine score in [-1, 1]."""
    if choice in ("best-f1", "target-precision"):
        return choice
    try:
        value = float(choice)
    except ValueError:
        value = float("nan")
    if not -1.0 <= value <= 1.0:
        raise InvalidQuery(
            f"--store-threshold takes best-f1, target-precision or a number from -1 to 1, got {choice!r}"
        )
    return value


def _chosen_threshold(choice: str | float, report: EvalReport) -> tuple[float, str]:
    cal = report.calibration
    if choice == "best-f1":
        return cal.best_f1_threshold, "best-f1"
    if choice == "target-precision":
        if cal.target_threshold is None:
            raise InvalidQuery(
                f"--store-threshold target-precision: no threshold reaches precision {cal.target_precision:g} on this "
                f"set; store best-f1 or a number, or lower --target-precision (the report was written)"
            )
        return cal.target_threshold, f"target-precision {cal.target_precision:g}"
    return float(choice), "given"


def _build_set(args: argparse.Namespace, settings: Any) -> int:
    from search.store import open_store

    langs = args.language or []
    if len(langs) > 1:
        raise InvalidQuery("eval --build-set takes one --language (the language of the queries)")
    if args.n < 1:
        raise InvalidQuery(f"--n must be at least 1, got {args.n}")
    store = open_store(settings)
    try:
        store.get_metadata(settings.collection)  # CollectionNotFound with the ingest hint
        labelled = build_labelled_set(store, settings.collection, n=args.n, seed=args.seed,
                                      language=langs[0] if langs else None)
    finally:
        store.close()
    out = write_labelled_jsonl(labelled, args.build_set)
    info = labelled.info
    msg = (f"wrote {len(labelled)} queries to {out} ({info['language']}, seed {info['seed']}; "
           f"{info['skills_with_usable_alt_label']} of {info['skills']} skills have a usable alternative label, "
           f"{info['alt_labels_skipped_as_ambiguous']} alternative labels skipped as naming several skills)")
    if args.json:
        print(json.dumps({"path": str(out), "queries": len(labelled), **{k: v for k, v in info.items()
                                                                       if k != "preferred_labels"}}))
    else:
        print(msg)
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``esco-search eval``; returns the exit code.

    Raises:
        SearchError: bad arguments, an unreadable labelled set (file and line), an unusable store.
    """
    args = _parser().parse_args(list(argv))
    from search.settings import SearchSettings

    settings = SearchSettings()
    if args.build_set:
        if args.labelled:
            raise InvalidQuery("eval: give either a labelled set to evaluate or --build-set OUT.jsonl, not both")
        return _build_set(args, settings)
    if not args.labelled:
        raise InvalidQuery("eval: give a labelled set (LABELLED.jsonl/.csv/.tsv) or --build-set OUT.jsonl")
    if not 0 < args.target_precision <= 1:
        raise InvalidQuery(f"--target-precision must be in (0, 1], got {args.target_precision}")
    if args.limit is not None and not 1 <= args.limit <= 1000:
        raise InvalidQuery(f"--limit must be from 1 to 1000, got {args.limit}")
    choice = _threshold_choice(args.store_threshold) if args.store_threshold else None
    # The file is read and checked before the model loads: a malformed line fails at once.
    rows = read_labelled(args.labelled, query_column=args.query_column, label_column=args.label_column)
    from search.service import SkillSearch

    with SkillSearch(settings) as searcher:
        # One scroll of the labels: resolves CSV labels, and checks JSONL URIs against the collection.
        labels = LabelIndex.from_store(searcher.store, searcher.collection)
        labelled = load_labelled(rows, index=labels)
        calib_k = args.calibration_k or settings.limit
        report = evaluate(
            searcher, labelled, limit=args.limit, exact=not args.no_exact, calibration_k=calib_k,
            target_precision=args.target_precision, progress=args.progress,
            skill_type=args.skill_type, reuse_level=args.reuse_level, occupation=args.occupation,
            relation=args.relation, skill_group=args.skill_group, collection=args.skill_collection,
            language=args.language,
        )
        written = None
        if not args.no_report:
            written = write_report(report, args.report_dir)
        stored: dict[str, Any] | None = None
        failure: InvalidQuery | None = None
        if choice is not None:
            try:
                value, how = _chosen_threshold(choice, report)
            except InvalidQuery as exc:  # shown after the report, which is worth reading anyway
                failure = exc
            else:
                cal = report.calibration
                i = min(range(len(cal.thresholds)), key=lambda j: abs(cal.thresholds[j] - value))
                details = {
                    "set": labelled.name, "queries": report.n_queries, "k": cal.k, "chosen": how,
                    "f1": cal.f1[i], "precision": cal.precision[i], "recall": cal.recall[i],
                    "filters": report.filters,
                }
                target = store_threshold(searcher.store, searcher.collection, value, details)
                stored = {"collection": target, "score_threshold": value, **details}
    if args.json:
        d = report.to_dict()
        d["report_dir"] = str(args.report_dir) if written else None
        d["stored_threshold"] = stored
        print(json.dumps(d, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
        if written:
            print(f"\nreport       {args.report_dir}/ ({', '.join(p.name for p in written.values())})")
        if stored:
            print(f"stored       score_threshold {stored['score_threshold']:.3f} ({stored['chosen']}) in "
                  f"{stored['collection']}: SkillSearch's default threshold from now on")
    sys.stdout.flush()
    if failure is not None:
        raise failure
    return 0

