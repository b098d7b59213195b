"""``esco-search occupations``: ESCO occupations for a job title, or the occupations a set of skills covers.

Usage::

    esco-search occupations "Bäckerin" [--limit 5] [--threshold 0.5] [--isco-group 75] [--language de] [--json]
    esco-search occupations --from-skills URI [URI ...] [--essential-weight 1 --optional-weight 0.5] [--json]
    esco-search occupations --resolve "registered nurse"      # the URI the skill filter's --occupation would use

The occupations collection is ``ESCO_OCCUPATION_COLLECTION`` (default ``esco_occupations``), written by
``esco-ingest``. Only the model and the store are opened (no skills collection is needed).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from search.cli.common import quiet_model_loading
from search.errors import InvalidQuery

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``occupations`` subcommand."""
    p = subparsers.add_parser(
        "occupations", help="ESCO occupations for a job title, or from a set of skills (explained)",
        description="Search ESCO occupations by job title (an exact label, in any indexed language, comes first), "
        "or rank them by how well given skills cover their essential and optional skills.",
    )
    p.add_argument("title", nargs="?", help="a job title, e.g. 'Bäckerin' or 'someone who repairs bicycles'")
    p.add_argument("--from-skills", nargs="+", metavar="URI", help="rank occupations by coverage of these skills")
    p.add_argument("--resolve", metavar="NAME", help="print the occupation URI a label or title stands for")
    p.add_argument("--limit", type=int, default=10, help="most occupations to print (default 10)")
    p.add_argument("--threshold", type=float, help="lowest cosine score of a title-search hit")
    p.add_argument("--mode", choices=("dense", "hybrid"),
                   help="title search mode (default: hybrid where the collection holds its representations)")
    p.add_argument("--isco-group", action="append", help="ISCO-08 code or URI, e.g. 25 or 2512 (repeatable)")
    p.add_argument("--language", action="append", help="language(s) of labels to match and print")
    p.add_argument("--essential-weight", type=float, default=1.0, help="weight of essential skills (default 1)")
    p.add_argument("--optional-weight", type=float, default=0.5, help="weight of optional skills (default 0.5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


@dataclass
class _Searcher:
    encoder: Any
    store: Any
    settings: Any


def run(args: argparse.Namespace) -> int:
    """Answer the command line; returns the exit code (user errors raise SearchError)."""
    modes = [m for m in (args.title is not None, bool(args.from_skills), args.resolve is not None) if m]
    if len(modes) != 1:
        raise InvalidQuery("give a job title, or --from-skills URI..., or --resolve NAME (one of them)")
    from search.encoding import load_encoder
    from search.occupations import occupations_from_skills, resolve_occupation, search_occupations
    from search.settings import SearchSettings
    from search.stores import open_store

    settings = SearchSettings()
    quiet_model_loading()
    encoder = load_encoder(settings)
    store = open_store(settings)
    try:
        s = _Searcher(encoder, store, settings)
        lang = args.language[0] if args.language and len(args.language) == 1 else args.language
        if args.from_skills:
            matches = occupations_from_skills(s, args.from_skills, limit=args.limit, language=lang,
                                              isco_group=args.isco_group, essential_weight=args.essential_weight,
                                              optional_weight=args.optional_weight)
            if args.json:
                print(json.dumps([m.to_dict() for m in matches], ensure_ascii=False, indent=2))
            for m in [] if args.json else matches:
                print(f"{m.score:.3f}  {m.preferred_label}  <{m.concept_uri}>  essential {len(m.matched_essential)}/"
                      f"{m.n_essential} ({m.essential_coverage:.0%}), optional {len(m.matched_optional)}/"
                      f"{m.n_optional} ({m.optional_coverage:.0%})")
                for label, refs in (("matched", m.matched_essential), ("missing", m.missing_essential)):
                    if refs:
                        print(f"       {label} essential: " + "; ".join(r.label or r.uri for r in refs))
            if not matches and not args.json:
                print("no occupation has any of these skills")
        elif args.resolve is not None:
            r = resolve_occupation(s, args.resolve, language=lang)
            print(json.dumps(r.__dict__, ensure_ascii=False) if args.json else f"{r.uri}  {r.label}  ({r.how})")
        else:
            hits = search_occupations(s, args.title, limit=args.limit, threshold=args.threshold,
                                      isco_group=args.isco_group, language=lang, mode=args.mode)
            if args.json:
                print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
            for h in [] if args.json else hits:
                exact = f"  = {h.matched_label!r}" if h.matched_label else ""
                print(f"{h.score:.3f}  {h.preferred_label}  [{h.language}, ISCO {h.isco_group}]  <{h.concept_uri}>{exact}")
        return 0
    finally:
        store.close()
