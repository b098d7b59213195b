"""``esco-search [search]``: the skills closest to one text, or to many texts in one process.

One query: the words given (joined by blanks), printed as today (a table, or a JSON array with ``--json``).
Several queries: ``-q TEXT`` (repeatable), ``--file F`` (one query a line; ``-`` is stdin), a lone ``-``, or
lines piped on stdin when no text is given. They are answered by one :class:`SkillSearch` (one model load),
``--batch-size`` at a time through ``search_batch``, in input order: a block per query in the table form, or
one JSON line ``{"query": ..., "hits": [...]}`` per query with ``--json``. Blank lines are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from typing import IO, Any

from search.cli.common import add_filter_arguments, filter_kwargs, quiet_model_loading
from search.errors import InvalidQuery

__all__ = ["add_parser", "run", "format_table"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``search`` (also what a bare ``esco-search TEXT`` runs)."""
    p = subparsers.add_parser(
        "search", help="the skills closest to a text (the default: `esco-search \"repair bicycles\"`)",
        description="Find the ESCO skills closest to a text (learning outcome, course description, job ad). "
        "Several queries in one process: -q (repeatable), --file F, or lines on stdin.",
    )
    p.add_argument("text", nargs="*", help="the text to search for (several words are joined into one query; "
                   "a lone '-' reads one query a line from stdin)")
    p.add_argument("-q", "--query", action="append", default=[], metavar="TEXT",
                   help="a query of its own (repeatable): one result block or JSON line each")
    p.add_argument("--file", metavar="F", help="read one query a line from F ('-': stdin)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="queries encoded and searched together when there are several (default 32)")
    p.add_argument("--limit", type=int, help="hits to show (default: ESCO_LIMIT, 10)")
    p.add_argument("--threshold", type=float, help="lowest cosine score (default: ESCO_SCORE_THRESHOLD or the "
                   "collection's calibrated threshold)")
    add_filter_arguments(p)
    p.add_argument("--language", action="append", help="language of the passages (repeatable)")
    p.add_argument("--mode", help="search mode: dense or hybrid (default: ESCO_SEARCH_MODE, else hybrid where the "
                   "collection was written with every representation, else dense)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: the hits as an array for one text, one line {query, hits} per query otherwise")
    p.set_defaults(command="search")
    return p


def format_table(hits: list) -> str:
    """The hits as the readable table (score, type, language, label, URI, two lines of description)."""
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


def _stdin_is_a_pipe() -> bool:
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


def _lines(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        if line.strip():
            yield line.strip()


def _queries(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[Iterator[str], bool]:
    """The raw queries in input order, and whether there are several (JSON lines, blocks)."""
    text = list(args.text)
    from_stdin = text == ["-"] or args.file == "-"
    if text == ["-"]:
        text = []
    sources: list[Any] = []
    if text:
        sources.append([" ".join(text)])
    sources.append(args.query)
    if args.file and args.file != "-":
        try:
            fh = stack.enter_context(open(args.file, encoding="utf-8-sig"))
        except OSError as exc:
            raise InvalidQuery(f"--file {args.file}: cannot read it ({exc.strerror}); give a text file with "
                               f"one query a line") from exc
        sources.append(_lines(fh))
    if from_stdin or (not text and not args.query and not args.file and _stdin_is_a_pipe()):
        from_stdin = True
        sources.append(_lines(sys.stdin))
    several = bool(args.query) or bool(args.file) or from_stdin
    if not text and not args.query and not args.file and not from_stdin:
        raise InvalidQuery("give a text to search for, e.g. esco-search \"repair bicycles\" (several queries: -q "
                           "TEXT repeated, --file F, or lines on stdin)")
    return itertools.chain.from_iterable(sources), several


def run(args: argparse.Namespace) -> int:
    """Answer every query of the command line; returns the exit code.

    Raises:
        SearchError: a bad option, filter or setting (checked before the model loads), a missing collection.
    """
    from search.filters import build_filter

    if isinstance(args.batch_size, bool) or args.batch_size < 1:
        raise InvalidQuery(f"--batch-size must be at least 1, got {args.batch_size}")
    filters = filter_kwargs(args)
    # Check what needs no model before loading one; occupation names (not URIs) are resolved by the searcher.
    from search.occupations import is_occupation_uri

    placeholder = "http://data.europa.eu/esco/occupation/00000000-0000-0000-0000-000000000000"
    occ = filters.get("occupation")
    build_filter(**{**filters, "occupation": [v if is_occupation_uri(v) else placeholder for v in occ] if occ else occ})
    with contextlib.ExitStack() as stack:
        return _answer(args, filters, *_queries(args, stack))


def _answer(args: argparse.Namespace, filters: dict[str, Any], raw: Iterator[str], several: bool) -> int:
    from search.filters import clean_query
    from search.service import SkillSearch
    from search.settings import SearchSettings

    if not several:
        queries: Iterator[str] = iter([clean_query(next(raw))])
    else:
        queries = (q for q in (_clean_or_none(clean_query, r) for r in raw) if q is not None)
    first = list(itertools.islice(queries, args.batch_size))
    if not first:
        raise InvalidQuery("no query to search for: the input holds only blank lines")
    settings = SearchSettings()
    quiet_model_loading()
    with SkillSearch(settings) as searcher:
        chunk = first
        while chunk:
            found = searcher.search_batch(chunk, limit=args.limit, threshold=args.threshold, **filters,
                                          **({"mode": args.mode} if args.mode is not None else {}))
            for query, hits in zip(chunk, found):
                _print(query, hits, args.json, several)
            sys.stdout.flush()
            chunk = list(itertools.islice(queries, args.batch_size))
    return 0


def _clean_or_none(clean: Any, text: str) -> str | None:
    try:
        return clean(text)
    except InvalidQuery:  # blank once cleaned (only invisible characters): skipped like a blank line
        return None


def _print(query: str, hits: list, as_json: bool, several: bool) -> None:
    if as_json:
        dicts = [h.to_dict() for h in hits]
        if several:
            print(json.dumps({"query": query, "hits": dicts}, ensure_ascii=False))
        else:
            print(json.dumps(dicts, ensure_ascii=False, indent=2))
        return
    if several:
        print(f"query  {query}")
    print(format_table(hits))
    if several:
        print()
