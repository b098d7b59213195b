"""``esco-search eval --target documents|occupations``: the evaluations of extraction and of title search.

``--target skills`` (the default) is :mod:`search.cli.eval` itself. The other targets hand the labelled file
to the evaluation their package ships, on the collection the alias serves when the run starts:

* ``documents``: JSONL ``{"text": ..., "relevant": [skill URIs]}`` (whole texts), through
  :func:`search.extraction.evaluate.evaluate_documents`: extraction variants against the per-sentence and
  whole-text baselines;
* ``occupations``: JSONL ``{"query": <job title>, "relevant": [occupation URIs]}``, or without a file ESCO's
  own alternative occupation labels, through :func:`search.occupations.evaluation.evaluate_titles`: the served
  title search against its exact reference, in each ``--mode`` (``dense,hybrid`` side by side).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from search.cli.common import filter_kwargs, quiet_model_loading
from search.errors import InvalidQuery
from search.jsonfile import write_json_atomic

__all__ = ["TARGETS", "run_target"]

TARGETS = ("skills", "documents", "occupations")


def _check(args: argparse.Namespace) -> None:
    if args.store_threshold is not None:
        raise InvalidQuery(f"--store-threshold calibrates the skill search (--target skills), not --target "
                           f"{args.target}")
    if args.build_set:
        raise InvalidQuery(f"--build-set builds a skill set (--target skills), not --target {args.target}")
    if args.target == "documents" and not args.labelled:
        raise InvalidQuery("eval --target documents: give a document set (JSONL {\"text\": ..., \"relevant\": "
                           "[URIs]}, e.g. from scripts/make_document_sets.py)")


def run_target(args: argparse.Namespace, settings: Any) -> int:
    """Evaluate ``args.target`` (documents or occupations); print the result (a table or ``--json``)."""
    _check(args)
    if args.target == "documents":
        from search.extraction.evaluate import read_documents

        items: Any = read_documents(args.labelled)  # checked before the model loads
    else:
        from search.occupations.evaluation import read_title_set

        items = read_title_set(args.labelled) if args.labelled else None
    from search.evaluation import pinned_searcher
    from search.service import SkillSearch

    quiet_model_loading()
    with SkillSearch(settings) as served:
        searcher, resolved = pinned_searcher(served)
        if args.target == "documents":
            from search.extraction.evaluate import evaluate_documents

            result = evaluate_documents(searcher, items, limit=args.limit, **filter_kwargs(args))
            result = {"target": "documents", "collection": served.collection, "resolved_collection": resolved,
                      **result}
        else:
            from search.occupations.evaluation import dev_title_set, evaluate_titles

            if items is None:
                items = dev_title_set(searcher, language=args.language)
            modes = [m.strip() for m in args.mode.split(",") if m.strip()] if getattr(args, "mode", None) else [None]
            runs = [evaluate_titles(searcher, items, k=min(args.limit, 100), language=args.language, mode=m)
                    for m in modes]
            result = runs[0] if len(runs) == 1 else {
                **{k: v for k, v in runs[0].items() if not isinstance(v, dict) and k != "mode"},
                "modes": [r["mode"] for r in runs],
                **{f"{r['mode']} {part}": r[part] for r in runs for part in ("index", "exact", "ratio")},
                "same_top_k": {r["mode"]: r["same_top_k"] for r in runs},
            }
    if not args.no_report:
        write_json_atomic(Path(args.report_dir) / "metrics.json", result, indent=2)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(_table(result))
        if not args.no_report:
            print(f"\nreport       {args.report_dir}/metrics.json")
    sys.stdout.flush()
    return 0


def _table(result: dict[str, Any]) -> str:
    """Every dict of metrics in the result as one row per metric name, one column per dict."""
    cols = {k: v for k, v in result.items() if isinstance(v, dict) and v and
            all(isinstance(x, (int, float)) or x is None for x in v.values())}
    head = [f"{k:<12} {v}" for k, v in result.items() if not isinstance(v, dict)]
    names = list(dict.fromkeys(n for v in cols.values() for n in v))
    width = max([14, *(len(c) + 2 for c in cols)])
    lines = [*head, "", f"{'metric':<22}" + "".join(f"{c:>{width}}" for c in cols)]
    for n in names:
        cells = []
        for c in cols.values():
            x = c.get(n)
            cells.append(f"{'-' if x is None else format(x, '.4f'):>{width}}")
        lines.append(f"{n:<22}" + "".join(cells))
    return "\n".join(lines)
