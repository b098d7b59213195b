"""``esco-search``: search ESCO skills from a shell, evaluate a labelled set, serve the HTTP API.

Usage::

    esco-search "repair bicycles" [--limit 10] [--json] ...     (a bare text means `esco-search search`)
    esco-search search -q "repair bicycles" -q "bake bread"    (several queries, one model load)
    esco-search search --file queries.txt --json              (one query a line; `-` or a pipe: stdin)
    esco-search extract FILE|-                                (the skills of a whole text, with evidence)
    esco-search occupations ...                               (occupations by title or by skills)
    esco-search eval LABELLED.jsonl [--mode dense,hybrid]     (see `esco-search eval --help`)
    esco-search serve [--port 8000]                           (where search/cli/serve.py is installed)

Each subcommand is one module ``search.cli.<name>`` with ``add_parser(subparsers)`` (adds its parser and
returns it) and ``run(args) -> int``; :data:`COMMANDS` lists them. Only the module of the subcommand asked
for is imported (all of them for ``esco-search --help``), and a module that is not installed is not
offered. Errors (:class:`search.errors.SearchError`, invalid ``ESCO_*`` settings) are printed as one line
``esco-search: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from pydantic import ValidationError

from search.cli.common import EXIT_USER_ERROR, CliParser, add_filter_arguments, quiet_model_loading
from search.errors import SearchError

__all__ = ["COMMANDS", "DEFAULT_COMMAND", "EXIT_USER_ERROR", "console", "main", "add_filter_arguments",
           "quiet_model_loading"]

#: Subcommand name -> module (with ``add_parser`` and ``run``), in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "search": "search.cli.search",
    "extract": "search.cli.extract",
    "occupations": "search.cli.occupations",
    "eval": "search.cli.eval",
    "serve": "search.cli.serve",
}
#: What a command line that names no subcommand means: ``esco-search "repair bicycles"``.
DEFAULT_COMMAND = "search"


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(COMMANDS[name]) is not None
    except ImportError:  # pragma: no cover - a parent package that cannot be imported
        return False


def _parser(names: Sequence[str]) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The top parser with the subcommands ``names`` registered (their modules imported)."""
    p = CliParser(
        prog="esco-search",
        description="Find the ESCO skills closest to a text (learning outcome, course description, job ad); "
        "evaluate a labelled set; serve the search over HTTP.",
        epilog="A command line without a subcommand is a search: `esco-search \"repair bicycles\"`. "
        "Settings (model, store, collection) come from ESCO_* environment variables; see the README. "
        "`esco-search <command> --help` shows a command's options.",
    )
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(names) + "}", parser_class=CliParser)
    modules = {}
    for name in names:
        module = importlib.import_module(COMMANDS[name])
        module.add_parser(sub)
        modules[name] = module
    return p, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``esco-search``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv and argv[0] in ("-h", "--help"):
            _parser([n for n in COMMANDS if _installed(n)])[0].print_help()
            return 0
        if argv and argv[0] in COMMANDS and _installed(argv[0]):
            name, rest = argv[0], argv[1:]
        else:
            name, rest = DEFAULT_COMMAND, argv
        parser, modules = _parser([name])
        args = parser.parse_args([name, *rest])
        return int(modules[name].run(args))
    except SearchError as exc:
        print(f"esco-search: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValidationError as exc:
        errs = "; ".join(f"ESCO_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"esco-search: error: invalid settings: {errs}", file=sys.stderr)
        return EXIT_USER_ERROR


def console() -> int:
    """The ``esco-search`` command: :func:`main`, then a quick exit.

    The interpreter's shutdown collects every object the model libraries made at import (sentence-transformers,
    torch, transformers): ~1 s of a shell call's time, measured. Freezing them first (:func:`gc.freeze`) leaves
    them to the process's end; the shutdown still runs its exit handlers and closes files as usual. Only the
    command does this: :func:`main`, which tests and services call, leaves the collector alone.
    """
    code = main()
    gc.freeze()
    return code
