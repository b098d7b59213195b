"""``esco-search``: search ESCO skills from a shell.

Usage::

    esco-search "repair bicycles" [--limit 10] [--threshold 0.8] [--skill-type knowledge] \
        [--occupation URI] [--relation essential] [--language de] [--json]
    esco-search eval LABELLED.jsonl [...]          (see `esco-search eval --help`)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import textwrap
from collections.abc import Sequence

from pydantic import ValidationError

from search.errors import SearchError

EXIT_USER_ERROR = 2


def quiet_model_loading() -> None:
    """No progress bars or info lines from transformers while a CLI loads the model."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """The filter options shared by ``esco-search`` and ``esco-search eval`` (--language is each one's own)."""
    p.add_argument("--skill-type", action="append", help="skill/competence or knowledge (repeatable)")
    p.add_argument("--reuse-level", action="append", help="transversal, cross-sector, sector-specific, "
                   "occupation-specific (repeatable)")
    p.add_argument("--occupation", action="append", help="occupation URI (repeatable)")
    p.add_argument("--relation", default="any", help="essential, optional or any (with --occupation)")
    p.add_argument("--skill-group", action="append", help="skill-group URI, any ancestor (repeatable)")
    p.add_argument("--collection", action="append", dest="skill_collection",
                   help="digital, green, transversal, language, research, digcomp (repeatable)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esco-search",
        description="Find the ESCO skills closest to a text (learning outcome, course description, job ad).",
        epilog="Settings (model, store, collection) come from ESCO_* environment variables; see the README. "
        "`esco-search eval --help` evaluates a labelled set.",
    )
    p.add_argument("text", nargs="+", help="the text to search for (several words are joined)")
    p.add_argument("--limit", type=int, help="hits to show (default: ESCO_LIMIT, 10)")
    p.add_argument("--threshold", type=float, help="lowest cosine score (default: ESCO_SCORE_THRESHOLD or the "
                   "collection's calibrated threshold)")
    add_filter_arguments(p)
    p.add_argument("--language", action="append", help="language of the passages (repeatable)")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    return p


def _table(hits: list) -> str:
    if not hits:
        return "no skill matches (score threshold and filters)"
    width = shutil.get_terminal_size((110, 20)).columns
    lines = [f"{'score':>6}  {'type':<16} {'lang':<4} skill"]
    for h in hits:
        lines.append(f"{h.score:6.3f}  {h.skill_type or '-':<16} {h.language:<4} {h.preferred_label}")
        lines.append(f"{'':30}{h.concept_uri}")
        if h.description:
            for ln in textwrap.wrap(h.description, max(40, width - 31))[:2]:
                lines.append(f"{'':30}{ln}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``esco-search``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv and argv[0] == "eval":
            from search.evaluation_cli import main as eval_main

            return eval_main(argv[1:])
        args = _parser().parse_args(argv)
        from search.service import SkillSearch, build_filter, clean_query
        from search.settings import SearchSettings

        # Check what needs no model before loading one.
        text = clean_query(" ".join(args.text))
        build_filter(skill_type=args.skill_type, reuse_level=args.reuse_level, occupation=args.occupation,
                     relation=args.relation, skill_group=args.skill_group, collection=args.skill_collection)
        settings = SearchSettings()
        quiet_model_loading()
        with SkillSearch(settings) as searcher:
            hits = searcher.search(
                text, limit=args.limit, threshold=args.threshold, skill_type=args.skill_type,
                reuse_level=args.reuse_level, occupation=args.occupation, relation=args.relation,
                skill_group=args.skill_group, collection=args.skill_collection, language=args.language,
            )
        if args.json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        else:
            print(_table(hits))
        return 0
    except SearchError as exc:
        print(f"esco-search: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValidationError as exc:
        errs = "; ".join(f"ESCO_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"esco-search: error: invalid settings: {errs}", file=sys.stderr)
        return EXIT_USER_ERROR
