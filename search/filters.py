"""What a query may be: the query text, limit and threshold checks, and the store filter of the criteria.

Pure validation, no model and no store: :func:`clean_query`, :func:`build_filter`, :func:`check_limit`,
:func:`check_threshold`. Every bad value raises :class:`~search.errors.InvalidQuery` or
:class:`~search.errors.InvalidFilter` with a message naming the value and the valid ones.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence

from search.errors import InvalidFilter, InvalidQuery
from search.schema import COLLECTIONS, REUSE_LEVELS, SKILL_TYPES, STATUSES, Field
from search.stores.base import Condition, Filter
from search.text import clean_text

logger = logging.getLogger(__name__)

__all__ = ["MAX_LIMIT", "MAX_QUERY_CHARS", "clean_query", "build_filter", "values_of", "check_limit",
           "check_threshold"]

MAX_LIMIT = 1000
# Queries longer than this many characters are cut before tokenizing: the model reads 512 tokens at most,
# and no tokenizer pass over a megabyte of text is needed to learn that.
MAX_QUERY_CHARS = 20_000
_URI = re.compile(r"^https?://\S+$")


def clean_query(text: object, max_chars: int = MAX_QUERY_CHARS) -> str:
    """Validate and tidy a query: a non-blank string, cleaned by the rule of stored passages (:func:`clean_text`).

    Raises:
        InvalidQuery: not a string, or empty once cleaned.
    """
    if not isinstance(text, str):
        raise InvalidQuery(f"a query must be a string, got {type(text).__name__}: {text!r:.80}")
    if len(text) > max_chars:
        logger.warning("query of %d characters cut to %d before encoding (the model reads at most 512 tokens)",
                       len(text), max_chars)
        text = text[:max_chars]
    text = clean_text(text)[:max_chars]  # NFC can lengthen a text
    if not text:
        raise InvalidQuery("the query is empty or blank: give a text to search for, e.g. 'repair bicycles'")
    return text


def _values(field: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        vals: tuple[object, ...] = (value,)
    elif isinstance(value, (list, tuple, set, frozenset)):
        vals = tuple(value)
    else:
        raise InvalidFilter(field, value, hint="give a string or a list of strings")
    for v in vals:
        if not isinstance(v, str) or not v.strip():
            raise InvalidFilter(field, v, hint="filter values are non-empty strings")
    return tuple(str(v).strip() for v in vals)


def _check_choice(field: str, vals: tuple[str, ...], valid: Sequence[str]) -> None:
    for v in vals:
        if v not in valid:
            raise InvalidFilter(field, v, list(valid))


def _check_uris(field: str, vals: tuple[str, ...], kind: str) -> None:
    for v in vals:
        if not _URI.match(v) or f"/esco/{kind}" not in v and "/esco/isced-f" not in v:
            raise InvalidFilter(
                field, v,
                hint=f"expected ESCO URIs like http://data.europa.eu/esco/{kind}/<uuid> (`esco-search` prints them)",
            )


def build_filter(
    *,
    skill_type: str | Iterable[str] | None = None,
    reuse_level: str | Iterable[str] | None = None,
    occupation: str | Iterable[str] | None = None,
    relation: str = "any",
    skill_group: str | Iterable[str] | None = None,
    collection: str | Iterable[str] | None = None,
    language: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    languages_available: Sequence[str] | None = None,
) -> Filter:
    """The store filter for the given criteria; several values of one criterion mean any of them.

    Raises:
        InvalidFilter: a value outside the valid ones (the message lists them).
    """
    conds: list[Condition] = []
    st = _values("skill_type", skill_type)
    _check_choice("skill_type", st, SKILL_TYPES)
    rl = _values("reuse_level", reuse_level)
    _check_choice("reuse_level", rl, REUSE_LEVELS)
    if relation not in ("essential", "optional", "any"):
        raise InvalidFilter("relation", relation, ["essential", "optional", "any"])
    occ = _values("occupation", occupation)
    _check_uris("occupation", occ, "occupation")
    grp = _values("skill_group", skill_group)
    _check_uris("skill_group", grp, "skill")
    col = _values("collection", collection)
    _check_choice("collection", col, COLLECTIONS)
    lang = _values("language", language)
    if languages_available is not None:
        _check_choice("language", lang, list(languages_available))
    stat = _values("status", status)
    _check_choice("status", stat, STATUSES)
    occ_field = {"essential": Field.ESSENTIAL_FOR, "optional": Field.OPTIONAL_FOR, "any": Field.OCCUPATIONS}[relation]
    for fld, vals in (
        (Field.SKILL_TYPE, st), (Field.REUSE_LEVEL, rl), (occ_field, occ), (Field.SKILL_GROUPS, grp),
        (Field.COLLECTIONS, col), (Field.LANGUAGE, lang), (Field.STATUS, stat),
    ):
        if vals:
            conds.append(Condition(fld, vals))
    return Filter(tuple(conds))


def values_of(field: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The stripped filter values of one criterion (a string or a list of strings); InvalidFilter otherwise."""
    return _values(field, value)


def check_limit(limit: object) -> int:
    """``limit`` if it is an integer from 1 to :data:`MAX_LIMIT`; else InvalidQuery."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def check_threshold(thr: object) -> float | None:
    """``thr`` as a float if it is a cosine score from -1 to 1 (or None); else InvalidQuery."""
    if thr is None:
        return None
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or math.isnan(thr) or not -1.0 <= thr <= 1.0:
        raise InvalidQuery(
            f"threshold must be a cosine score from -1 to 1 (e.g. 0.8), got {thr!r}"
        )
    return float(thr)
