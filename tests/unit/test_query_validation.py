"""Property tests of query validation: arbitrary input never gets past the project's own errors.

* :func:`search.filters.clean_query`: any object either raises :class:`InvalidQuery` or gives a non-empty,
  NFC-normalized text without control or invisible characters, single-spaced and idempotent;
* :func:`search.filters.build_filter`: any values either raise :class:`InvalidFilter` or give conditions
  holding only valid, stripped values;
* :class:`search.SkillSearch`: any text, limit, threshold and filters either raise InvalidQuery or
  InvalidFilter before the model or the store is called, or reach them only with valid arguments
  (a stub encoder and store check what they get); and a real model encodes whatever clean_query passes.

The fixed cases of tests/integration/test_search.py (empty, blank, non-string, limits, thresholds, filters,
a megabyte of text) are not repeated here.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search import SkillSearch
from search.errors import InvalidFilter, InvalidQuery
from search.schema import COLLECTIONS, REUSE_LEVELS, SKILL_TYPES, STATUSES, Field
from search.filters import MAX_LIMIT, build_filter, clean_query

# Characters that must never survive clean_query: C0/C1 controls, zero-width and bidi controls, BOM, and
# the other format characters that stored passages lose (soft hyphen, U+2066-206F, U+180E, U+061C).
INVISIBLE = set(
    [chr(c) for c in range(0x00, 0x20)] + [chr(c) for c in range(0x7F, 0xA0)]
    + [chr(c) for c in range(0x200B, 0x2010)] + [chr(c) for c in range(0x2028, 0x202F)]
    + [chr(c) for c in range(0x2060, 0x2065)] + ["\ufeff"]
    + [chr(c) for c in range(0x2066, 0x2070)] + ["\u00ad", "\u180e", "\u061c"]
)
TRICKY = (
    " \t\n\r\x0b\x0c\x00\x01\x1b\x1f\x7f\x80\x85\x9f\xa0\u1680\u2000\u2007\u200a\u200b\u200c\u200d\u200e\u200f"
    "\u2028\u2029\u202a\u202e\u202f\u205f\u2060\u2064\u2066\u206f\u00ad\u180e\u061c\u3000\ufeff"
    "aZ9éñß\u0301\u0308\u0958\u212b\u1e9b\u0323\ufb01\u00bd\U0001f600\U0001d11e\u05d0\u0627\u4e2d"
)
# Any text but lone surrogates (test_lone_surrogate_* covers those), and text made of the tricky ones.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=120),
    st.text(st.sampled_from(TRICKY), max_size=40),
)
ANY_OBJECT = st.one_of(
    TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.binary(max_size=10),
    st.lists(TEXT, max_size=3), st.tuples(TEXT), st.dictionaries(TEXT, TEXT, max_size=2),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_blank_or_invisible(text: str) -> bool:
    return all(c.isspace() or c in INVISIBLE for c in text)


# ------------------------------------------------------------------------------------------ clean_query


@FAST
@given(ANY_OBJECT)
def test_clean_query_raises_nothing_but_invalid_query(value: Any):
    try:
        result = clean_query(value)
    except InvalidQuery as exc:
        assert "\n" not in str(exc)  # one line for the CLIs
        if isinstance(value, str):
            assert _only_blank_or_invisible(value), f"refused a query with content: {value!r}"
        return
    assert isinstance(value, str) and isinstance(result, str)


@FAST
@given(TEXT)
def test_a_clean_query_is_non_empty_visible_single_spaced_nfc_and_idempotent(text: str):
    try:
        q = clean_query(text)
    except InvalidQuery:
        assert _only_blank_or_invisible(text)
        return
    assert q and q == q.strip()
    assert not any(c in INVISIBLE or unicodedata.category(c) == "Cc" for c in q), repr(q)
    assert all(c == " " or not c.isspace() for c in q) and "  " not in q
    assert unicodedata.is_normalized("NFC", q)
    assert clean_query(q) == q
    # Nothing visible is lost: the words are those of the text, with invisible characters dropped and
    # whitespace (also the control characters that are whitespace) taken as spaces: the rule of passages.
    visible = "".join(" " if c.isspace() else "" if c in INVISIBLE else c for c in text)
    assert q.split() == unicodedata.normalize("NFC", visible).split()


@FAST
@given(TEXT, st.integers(min_value=1, max_value=30))
def test_long_queries_are_cut_before_anything_else(text: str, max_chars: int):
    try:
        q = clean_query(text, max_chars=max_chars)
    except InvalidQuery:
        assert _only_blank_or_invisible(text[:max_chars])
        return
    assert q == clean_query(text[:max_chars], max_chars=max_chars)


def test_queries_are_cleaned_by_the_rule_of_stored_passages():
    from search.text import clean_text

    for raw in ("B\u00e4cker\u00adei", "Bäcker\u2066ei\u2069", "data\u180e base", "\u061cمهارة", "a\u00a0\u2009b"):
        assert clean_query(raw) == clean_text(raw)
    assert clean_query("B\u00e4cker\u00adei") == "Bäckerei"


def test_a_clean_query_is_never_longer_than_max_chars():
    q = clean_query("\u0958" * 5, max_chars=5)
    assert len(q) <= 5 and clean_query(q, max_chars=5) == q


# ------------------------------------------------------------------------------------------ build_filter

_CHOICE = {"skill_type": SKILL_TYPES, "reuse_level": REUSE_LEVELS, "collection": COLLECTIONS, "status": STATUSES}
_OCC = "http://data.europa.eu/esco/occupation/8a7e3c1d-0000-4000-8000-000000000001"
_GRP = "http://data.europa.eu/esco/skill/0b1f6a2c-0000-4000-8000-000000000002"
LANGS = ["en", "de"]


def _values(valid: Sequence[str]) -> st.SearchStrategy:
    one = st.one_of(st.sampled_from(list(valid)), TEXT, st.sampled_from(list(valid)).map(lambda v: f"  {v}\t"))
    item = st.one_of(one, st.none(), st.integers(), st.just(""))
    return st.one_of(st.none(), one, st.lists(one, max_size=3), st.lists(item, max_size=3), st.tuples(one, one))


FILTERS = st.fixed_dictionaries({
    "skill_type": _values(SKILL_TYPES),
    "reuse_level": _values(REUSE_LEVELS),
    "occupation": _values([_OCC, "http://data.europa.eu/esco/isced-f/0011"]),
    "relation": st.one_of(st.sampled_from(["essential", "optional", "any"]), TEXT, st.none()),
    "skill_group": _values([_GRP]),
    "collection": _values(COLLECTIONS),
    "language": _values(LANGS + ["fr"]),
    "status": _values(STATUSES + ("obsolete",)),
})


@FAST
@given(FILTERS, st.one_of(st.none(), st.just(LANGS)))
def test_build_filter_raises_nothing_but_invalid_filter_and_keeps_only_valid_values(kwargs, available):
    try:
        flt = build_filter(**kwargs, languages_available=available)
    except InvalidFilter as exc:
        assert "\n" not in str(exc)
        return
    assert kwargs["relation"] in ("essential", "optional", "any")
    occ_field = {"essential": Field.ESSENTIAL_FOR, "optional": Field.OPTIONAL_FOR,
                 "any": Field.OCCUPATIONS}[kwargs["relation"]]
    fields = {c.field: c.values for c in flt.must}
    assert len(fields) == len(flt.must)  # one condition per criterion
    for values in fields.values():
        assert values and all(isinstance(v, str) and v and v == v.strip() for v in values)
    for name, valid in _CHOICE.items():
        got = fields.get({"skill_type": Field.SKILL_TYPE, "reuse_level": Field.REUSE_LEVEL,
                          "collection": Field.COLLECTIONS, "status": Field.STATUS}[name], ())
        assert set(got) <= set(valid)
        assert bool(got) == bool(kwargs[name])  # given values are all kept, or the call failed
    for v in fields.get(occ_field, ()) + fields.get(Field.SKILL_GROUPS, ()):
        assert v.startswith(("http://", "https://")) and "/esco/" in v and not any(c.isspace() for c in v)
    if available is not None:
        assert set(fields.get(Field.LANGUAGE, ())) <= set(available)


@pytest.mark.parametrize("value", [5, 2.5, True])
def test_a_number_as_filter_value_is_an_invalid_filter(value):
    with pytest.raises(InvalidFilter):
        build_filter(skill_type=value)


# ------------------------------------------------------------------------------------------ SkillSearch


class StubEncoder:
    """Counts calls and checks that only clean queries reach the model."""

    model_name = "stub"
    dimension = 3
    query_prompt = "query: "
    passage_prompt = "passage: "
    max_seq_length = 128

    def __init__(self) -> None:
        self.calls = 0

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        for t in texts:
            assert isinstance(t, str) and t and clean_query(t) == t, repr(t)
        return np.ones((len(texts), 3), dtype=np.float32)


class StubStore:
    """Checks that only valid arguments reach the store."""

    kind = "edge"

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> str:
        return "stub store"

    def get_metadata(self, name: str) -> dict:
        return {"vector_size": 3, "languages": LANGS}

    def resolve_alias(self, alias: str) -> str | None:
        return None  # the setting names the collection itself

    def search(self, name, vectors, *, filter=None, limit=10, score_threshold=None, group_by=None, exact=False,
               hnsw_ef=None, with_vectors=False, with_payload=True):
        self.calls += 1
        assert isinstance(with_payload, bool) or all(isinstance(f, str) for f in with_payload)
        assert type(limit) is int and 1 <= limit <= MAX_LIMIT
        assert score_threshold is None or (type(score_threshold) is float and -1.0 <= score_threshold <= 1.0)
        assert all(len(v) == 3 for v in vectors)
        return [[] for _ in vectors]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def stub_search():
    from search.settings import SearchSettings

    enc, store = StubEncoder(), StubStore()
    return SkillSearch(SearchSettings(_env_file=None), encoder=enc, store=store), enc, store


LIMITS = st.one_of(st.none(), st.integers(-5, MAX_LIMIT + 5), st.integers(), st.floats(allow_nan=True),
                   st.booleans(), TEXT, st.just(10**30))
THRESHOLDS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
                       st.booleans(), TEXT, st.floats(-1.0, 1.0))


@FAST
@given(ANY_OBJECT, LIMITS, THRESHOLDS, FILTERS)
def test_skill_search_arguments_fail_early_with_project_errors(stub_search, text, limit, threshold, filters):
    searcher, enc, store = stub_search
    calls = (enc.calls, store.calls)
    try:
        hits = searcher.search(text, limit=limit, threshold=threshold, **filters)  # type: ignore[arg-type]
    except (InvalidQuery, InvalidFilter):
        assert (enc.calls, store.calls) == calls  # refused before the model and the store
        return
    assert hits == [] and enc.calls == calls[0] + 1 and store.calls == calls[1] + 1


@FAST
@given(st.one_of(ANY_OBJECT, st.lists(ANY_OBJECT, max_size=4), st.iterables(TEXT, max_size=2)))
def test_search_batch_takes_only_lists_of_queries(stub_search, texts):
    searcher, enc, store = stub_search
    try:
        out = searcher.search_batch(texts, limit=3)  # type: ignore[arg-type]
    except InvalidQuery:
        return
    assert all(isinstance(t, str) for t in texts) and len(out) == len(texts)  # (b"" is an empty batch)


# ------------------------------------------------------------------------------------------ the real model


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_whatever_clean_query_passes_the_real_model_encodes(encoder, text):
    try:
        q = clean_query(text)
    except InvalidQuery:
        return
    v = encoder.encode_queries([q])
    assert v.shape == (1, encoder.dimension) and np.isfinite(v).all()
    assert math.isclose(float(np.linalg.norm(v[0])), 1.0, rel_tol=1e-3)


def test_lone_surrogate_in_a_query_never_reaches_the_model(encoder):
    try:
        q = clean_query("\ud800 bake bread \udfff")
    except InvalidQuery:
        return
    encoder.encode_queries([q])
