"""``esco-search extract FILE|-``: the ESCO skills of a whole text (a course description, a job ad).

The text is cut into sentences and list items, every segment searched in one batch and the hits aggregated
per skill (:mod:`search.extraction`). Prints a table (score, skill, evidence snippets with their character
offsets), or with ``--json`` one JSON array of the skills, each with its evidence. Several files: one
result each (a block in the table form, one JSON line ``{"file": ..., "skills": [...]}`` with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from search.cli.common import add_filter_arguments, filter_kwargs, quiet_model_loading
from search.errors import InvalidQuery

__all__ = ["add_parser", "run", "format_table"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``extract``."""
    p = subparsers.add_parser(
        "extract", help="the skills of a whole text (course description, job ad) with their evidence",
        description="Find the ESCO skills of a whole text: it is cut into sentences and list items, all searched "
        "in one batch, and aggregated per skill with the segments that matched it as evidence.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text file(s) to read ('-': stdin)")
    p.add_argument("--limit", type=int, help="skills to show per text (default 20)")
    p.add_argument("--threshold", type=float, help="lowest skill score (default: the collection's threshold "
                   "calibrated for extraction, else ESCO_SCORE_THRESHOLD or the search threshold)")
    p.add_argument("--aggregation", choices=("max", "support"), default="max",
                   help="per-skill score: the best segment's (max, default) or max plus a bonus for agreeing segments")
    p.add_argument("--text-language", metavar="CODE", help="the text's language for the sentence splitter "
                   "(default: --language when one is given, else en)")
    p.add_argument("--no-whole-text", action="store_true", help="do not also search the whole text as one segment")
    add_filter_arguments(p)
    p.add_argument("--language", action="append", help="language of the passages (repeatable)")
    p.add_argument("--evidence", type=int, default=2, help="evidence snippets shown per skill in the table (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON (skills with evidence and offsets)")
    p.set_defaults(command="extract")
    return p


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    if not path.is_file():
        raise InvalidQuery(f"cannot read {name!r}: no such file (give a text file, or '-' for stdin)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidQuery(f"{name!r} is not UTF-8 text ({exc.reason} at byte {exc.start}): convert it first, "
                           f"e.g. `iconv -f latin1 -t utf-8 {name}`") from exc


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_table(skills: list[Any], evidence: int = 2) -> str:
    """The extracted skills as a readable table: score, type, skill, URI, and the best evidence snippets."""
    if not skills:
        return "no skill found (score threshold and filters)"
    lines = [f"{'score':>6}  {'type':<16} skill"]
    for s in skills:
        h = s.hit
        lines.append(f"{s.score:6.3f}  {h.skill_type or '-':<16} {h.preferred_label}")
        lines.append(f"{'':24}{h.concept_uri}")
        for e in s.evidence[:evidence]:
            where = "whole text" if e.kind == "document" else f"{e.start}-{e.end}"
            for i, ln in enumerate(textwrap.wrap(_snippet(e.text), 86)[:1]):
                lines.append(f"{'':24}{e.score:.3f} [{where}] {ln}" if i == 0 else f"{'':30}{ln}")
        if len(s.evidence) > evidence:
            lines.append(f"{'':24}(+{len(s.evidence) - evidence} more segments)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Extract from each file; 0 on success (a text without skills is no error)."""
    texts = [(name, _read(name)) for name in args.files]
    if sum(1 for n, _ in texts if n == "-") > 1:
        raise InvalidQuery("stdin ('-') can be given once")
    quiet_model_loading()
    from search import SkillSearch
    from search.extraction import extract_batch

    options = dict(threshold=args.threshold, limit=args.limit, aggregation=args.aggregation,
                   segment_language=args.text_language, whole_text=not args.no_whole_text, **filter_kwargs(args))
    with SkillSearch() as searcher:
        results = extract_batch(searcher, [t for _, t in texts], **options)
    out = sys.stdout
    for i, ((name, _), skills) in enumerate(zip(texts, results)):
        if args.json:
            data = [s.to_dict() for s in skills]
            out.write((json.dumps(data, ensure_ascii=False) if len(texts) == 1
                       else json.dumps({"file": name, "skills": data}, ensure_ascii=False)) + "\n")
            continue
        if len(texts) > 1:
            out.write(("\n" if i else "") + f"== {name}\n")
        out.write(format_table(skills, args.evidence) + "\n")
    return 0
