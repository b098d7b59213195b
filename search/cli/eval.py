"""``esco-search eval``: evaluate a labelled set through the collection and calibrate the score threshold.

Usage::

    esco-search eval LABELLED.{jsonl,csv,tsv} [--limit 100] [--skill-type ...] [--json]
        [--report-dir reports/eval] [--target-precision 0.9] [--store-threshold best-f1|target-precision|0.83]
        [--query-column query] [--label-column relevant]
    esco-search eval --build-set OUT.jsonl [--n 500] [--seed 0] [--language en]

Settings (model, store, collection) come from ``ESCO_*`` variables, as for ``esco-search``. The collection the
alias serves when the run starts is the one evaluated, and a stored threshold goes into that collection, also
when the alias is switched meanwhile (a note then names the collection the alias serves now). Errors are
raised as :class:`search.errors.SearchError`; :func:`search.cli.main` prints them as one line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.cli.common import add_filter_arguments, filter_kwargs, quiet_model_loading
from search.cli.eval_targets import TARGETS, run_target
from search.errors import InvalidQuery
from search.evaluation import (
    EvalReport,
    LabelIndex,
    build_labelled_set,
    evaluate_modes,
    format_comparison,
    format_report,
    load_labelled,
    pinned_searcher,
    read_labelled,
    store_threshold,
    write_labelled_jsonl,
    write_report,
)

__all__ = ["add_parser", "run", "main"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``eval``."""
    p = subparsers.add_parser(
        "eval", help="evaluate a labelled set through the collection; calibrate the score threshold",
        description="Evaluate a labelled set through the collection (the service's search path) and against an "
        "exact brute-force search over its stored vectors; calibrate the score threshold.",
        epilog="Labelled sets: JSONL lines {\"query\": ..., \"relevant\": [concept URIs]}, or CSV/TSV with a query "
        "column and a label column of ESCO preferred labels (several separated by | or ;). "
        "`esco-search eval --build-set OUT.jsonl` makes one from ESCO's alternative labels.",
    )
    p.add_argument("labelled", nargs="?", help="the labelled set (.jsonl, .csv or .tsv)")
    p.add_argument("--target", choices=TARGETS, default="skills",
                   help="what to evaluate: skills (queries -> skills, the default), documents (whole texts -> "
                   "skills, through extraction), occupations (job titles -> occupations)")
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
    p.add_argument("--batch-size", type=int, default=256,
                   help="queries searched (and scored exactly) together (default 256)")
    p.add_argument("--mode", metavar="MODE[,MODE...]",
                   help="search mode(s): dense, hybrid; several (dense,hybrid) are evaluated side by side "
                   "(default: the searcher's: ESCO_SEARCH_MODE, else hybrid where the collection holds every "
                   "representation, else dense)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(command="eval")
    return p


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
    from search.stores import open_store

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
    """``esco-search eval ARGV...`` in-process (errors printed as one line, exit code 2)."""
    from search.cli import main as cli_main

    return cli_main(["eval", *argv])


def run(args: argparse.Namespace) -> int:
    """Run ``esco-search eval``; returns the exit code.

    Raises:
        SearchError: bad arguments, an unreadable labelled set (file and line), an unusable store.
    """
    from search.settings import SearchSettings

    settings = SearchSettings()
    if args.target != "skills":
        return run_target(args, settings)
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
    if args.batch_size < 1:
        raise InvalidQuery(f"--batch-size must be at least 1, got {args.batch_size}")
    choice = _threshold_choice(args.store_threshold) if args.store_threshold else None
    modes = _mode_list(args.mode, settings)
    if choice is not None and modes is not None and len(modes) > 1:
        raise InvalidQuery(f"--store-threshold calibrates one mode: give one --mode with it, not {','.join(modes)}")
    # The file is read and checked before the model loads: a malformed line fails at once.
    rows = read_labelled(args.labelled, query_column=args.query_column, label_column=args.label_column)
    from search.service import SkillSearch

    quiet_model_loading()
    with SkillSearch(settings) as served:
        # The collection the alias serves now: labels, searches and a stored threshold all use this one.
        searcher, resolved = pinned_searcher(served)
        # One scroll of the labels: resolves CSV labels, and checks JSONL URIs against the collection.
        labels = LabelIndex.from_store(searcher.store, resolved)
        labelled = load_labelled(rows, index=labels)
        calib_k = args.calibration_k or settings.limit
        reports = evaluate_modes(
            searcher, labelled, modes=modes, limit=args.limit, exact=not args.no_exact, calibration_k=calib_k,
            target_precision=args.target_precision, progress=args.progress, batch_size=args.batch_size,
            **filter_kwargs(args),
        )
        for r in reports:
            r.collection = served.collection
        report = reports[0]
        written: dict[str, dict[str, Path]] = {}
        if not args.no_report:
            for r in reports:  # one mode: the folder itself; several: a subfolder per mode
                written[r.mode] = write_report(r, Path(args.report_dir) / r.mode if len(reports) > 1
                                               else args.report_dir)
        stored: dict[str, Any] | None = None
        failure: InvalidQuery | None = None
        if choice is not None:
            try:
                stored = _store(choice, report, labelled.name, searcher)
            except InvalidQuery as exc:  # shown after the report, which is worth reading anyway
                failure = exc
            else:
                now_serves = served.store.resolve_alias(served.collection)
                if now_serves is not None and now_serves != resolved:
                    stored["alias_now_serves"] = now_serves
    _print(args, reports, written, stored)
    if failure is not None:
        raise failure
    return 0


def _store(choice: str | float, report: EvalReport, set_name: str, searcher: Any) -> dict[str, Any]:
    value, how = _chosen_threshold(choice, report)
    cal = report.calibration
    i = min(range(len(cal.thresholds)), key=lambda j: abs(cal.thresholds[j] - value))
    details = {
        "set": set_name, "queries": report.n_queries, "k": cal.k, "chosen": how,
        "f1": cal.f1[i], "precision": cal.precision[i], "recall": cal.recall[i],
        "filters": report.filters,
    }
    target = store_threshold(searcher.store, report.resolved or searcher.collection, value, details,
                             mode=report.mode)
    return {"collection": target, "score_threshold": value, "mode": report.mode, **details}


def _mode_list(given: str | None, settings: Any) -> list[str] | None:
    """The modes of --mode (None: the searcher's default for the collection, ESCO_SEARCH_MODE where set)."""
    from search import hybrid

    if given is None and getattr(settings, "search_mode", None) is None:
        return None
    raw = given if given is not None else str(settings.search_mode)
    out: list[str] = []
    for m in raw.split(","):
        if not m.strip():
            continue
        try:
            m = hybrid.check_mode(m)
        except ValueError:
            raise InvalidQuery(f"--mode takes {', '.join(hybrid.MODES)} or several of them separated by commas "
                               f"(dense,hybrid), got {given!r}") from None
        if m not in out:
            out.append(m)
    if not out:
        raise InvalidQuery(f"--mode takes {', '.join(hybrid.MODES)} or several of them separated by commas, got {given!r}")
    return out


def _print(args: argparse.Namespace, reports: list[EvalReport], written: dict[str, dict[str, Path]],
           stored: dict | None) -> None:
    report = reports[0]
    if args.json:
        dicts = []
        for r in reports:
            d = r.to_dict()
            d["report_dir"] = (str(args.report_dir) if len(reports) == 1 else str(Path(args.report_dir) / r.mode)) \
                if written else None
            dicts.append(d)
        out = dicts[0] if len(dicts) == 1 else {"modes": [r.mode for r in reports], "reports": dicts}
        out["stored_threshold"] = stored
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(format_comparison(reports) if len(reports) > 1 else format_report(report))
        for mode, paths in written.items():
            where = args.report_dir if len(reports) == 1 else Path(args.report_dir) / mode
            print(f"\nreport       {where}/ ({', '.join(p.name for p in paths.values())})")
        if stored:
            print(f"stored       score_threshold {stored['score_threshold']:.3f} ({stored['chosen']}, mode "
                  f"{stored['mode']}) in {stored['collection']}: SkillSearch's default threshold from now on")
    sys.stdout.flush()
    if stored and stored.get("alias_now_serves"):
        print(f"esco-search eval: note: {report.collection!r} was switched to {stored['alias_now_serves']!r} "
              f"during the evaluation; the threshold went into {stored['collection']!r}, the collection "
              f"evaluated. Run the evaluation again to calibrate {stored['alias_now_serves']!r}.", file=sys.stderr)
