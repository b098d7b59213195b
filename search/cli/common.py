"""What the ``esco-search`` subcommands share: the filter options, a quiet model load, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from search.errors import InvalidQuery

__all__ = ["EXIT_USER_ERROR", "CliParser", "add_filter_arguments", "filter_kwargs", "quiet_model_loading"]

#: Exit code of a user error (bad argument, bad setting, missing collection): one line on stderr.
EXIT_USER_ERROR = 2


class CliParser(argparse.ArgumentParser):
    """argparse that raises :class:`InvalidQuery` instead of exiting, so ``main`` prints one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidQuery(f"{message} (see `{self.prog} --help`)")


def quiet_model_loading() -> None:
    """No progress bars or info lines from transformers while a CLI loads the model."""
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


def filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The filter options of :func:`add_filter_arguments` (and --language) as ``SkillSearch.search`` keywords."""
    return dict(skill_type=args.skill_type, reuse_level=args.reuse_level, occupation=args.occupation,
                relation=args.relation, skill_group=args.skill_group, collection=args.skill_collection,
                language=getattr(args, "language", None))
