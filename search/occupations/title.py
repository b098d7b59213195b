"""Title search over the occupations collection, and the resolution of an occupation's name to its URI.

:func:`search_occupations`: an occupation one of whose labels (preferred, alternative, hidden, or a gendered
form of one, in any language searched) equals the title comes first; the rest follows by the cosine of the
title (``query: <title>``) and the occupation's passage. :func:`resolve_occupation` turns a label or a title
into one URI for the skill search's occupation filter, or says why it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from search.errors import CollectionNotFound, InvalidFilter
from search.filters import check_limit, check_threshold, clean_query, values_of
from search.hybrid import label_key
from search.occupations.index import OccupationIndex, OccupationSearcher, OccupationState, occupation_state
from search.occupations.schema import OccField
from search.occupations.types import AmbiguousOccupation, Candidate, OccupationHit, OccupationNotFound
from search.stores.base import Condition, Filter, ScoredPoint

__all__ = ["search_occupations", "occupation_filter", "exact_label_matches", "resolve_occupation",
           "resolve_occupations", "Resolution", "DEFAULT_MIN_SCORE", "DEFAULT_MARGIN", "is_occupation_uri"]

#: A title search must reach this cosine to resolve a name (all-MiniLM and E5 alike: unrelated titles stay below).
DEFAULT_MIN_SCORE = 0.5
#: The best title match must lead the second by this much, else the name is ambiguous.
DEFAULT_MARGIN = 0.02

_ISCO = re.compile(r"^(?:https?://data\.europa\.eu/esco/isco/C)?(\d{1,4})$")
_URI = re.compile(r"^https?://\S+$")


def is_occupation_uri(value: str) -> bool:
    """True for an http(s) URI (which the skill filter takes as it is), False for a label or title."""
    return bool(_URI.match(value.strip()))


def occupation_filter(*, isco_group: str | Iterable[str] | None = None, language: str | Iterable[str] | None = None,
                      languages_available: Sequence[str] | None = None) -> Filter:
    """The store filter of a title search: ISCO groups (codes like ``25`` or ``2512``, or ESCO ISCO URIs; an
    occupation matches when the group is its own or above it) and languages.

    Raises:
        InvalidFilter: a value that is no ISCO code, or a language not in the collection.
    """
    conds = []
    codes = []
    for v in values_of("isco_group", isco_group):
        m = _ISCO.match(v)
        if not m:
            raise InvalidFilter("isco_group", v, hint="give an ISCO-08 code of 1 to 4 digits (e.g. 2512, 25) or "
                                "its ESCO URI (http://data.europa.eu/esco/isco/C2512)")
        codes.append(m[1])
    if codes:
        conds.append(Condition(OccField.ISCO_GROUPS, tuple(codes)))
    langs = values_of("language", language)
    if languages_available is not None:
        for lang in langs:
            if lang not in languages_available:
                raise InvalidFilter("language", lang, list(languages_available))
    if langs:
        conds.append(Condition(OccField.LANGUAGE, langs))
    return Filter(tuple(conds))


def exact_label_matches(index: OccupationIndex, key: str, langs: tuple[str, ...], flt: Filter
                        ) -> dict[str, dict[str, str]]:
    """Occupations with a label whose :func:`~search.hybrid.label_key` is ``key``, in ``langs`` (all when
    empty) and passing the ISCO groups of ``flt``: uri -> language -> that label."""
    codes = next((set(c.values) for c in flt.must if c.field == OccField.ISCO_GROUPS), None)
    out: dict[str, dict[str, str]] = {}
    for uri, where in index.keys.get(key, {}).items():
        if codes is not None and not codes & index.isco_groups[index.pos[uri]]:
            continue
        for lang, _kind in where:
            if not langs or lang in langs:
                out.setdefault(uri, {})[lang] = index.label_texts.get((uri, lang, key), key)
    return out


#: The payload a hit needs: the skill lists and label keys (most of a point's ~10 KB) stay in the store.
HIT_FIELDS = [OccField.CONCEPT_URI, OccField.PREFERRED_LABEL, OccField.LANGUAGE, OccField.DESCRIPTION,
              OccField.ALT_LABELS, OccField.ISCO_GROUP, OccField.ISCO_GROUPS, OccField.CODE,
              OccField.REGULATED_PROFESSION_NOTE, OccField.ESCO_VERSION]
def _search(searcher: OccupationSearcher, st: OccupationState, vector: list[float], flt: Filter, limit: int,
            threshold: float | None, group: bool, exact: bool | None = None) -> list[ScoredPoint]:
    s = searcher.settings
    store = searcher.store
    assert store is not None
    kwargs = dict(filter=flt, limit=limit, score_threshold=threshold, group_by=OccField.CONCEPT_URI if group else None,
                  exact=bool(getattr(s, "exact", False)) if exact is None else exact,
                  hnsw_ef=getattr(s, "hnsw_ef", None),
                  with_payload=HIT_FIELDS)  # the hit fields only: the whole payloads cost ~3x the search
    try:
        return store.search(st.target, [vector], **kwargs)[0]  # type: ignore[arg-type]
    except CollectionNotFound:  # the alias moved on and its old collection is gone: resolve again, once
        return store.search(occupation_state(searcher, force=True).target, [vector], **kwargs)[0]  # type: ignore[arg-type]


def search_occupations(
    searcher: OccupationSearcher,
    title: str,
    *,
    threshold: float | None = None,
    limit: int = 10,
    isco_group: str | Iterable[str] | None = None,
    language: str | Iterable[str] | None = None,
    exact_labels: bool = True,
    vector: Sequence[float] | None = None,
    exact: bool | None = None,
) -> list[OccupationHit]:
    """The occupations closest to a job title, best first; one hit per occupation when several languages are
    searched.

    Args:
        title: a job title or a short description of a job.
        threshold: lowest cosine score of a title-search hit (an occupation whose label equals the title is
            returned whatever its score).
        limit: most hits (1 to 1000).
        isco_group: ISCO-08 codes or ESCO ISCO URIs: only occupations in (or under) these groups.
        language: languages of the labels and passages to match (default: every indexed language).
        exact_labels: put occupations whose label equals the title first (default True).
        vector: the title's query embedding, when the caller has it (benchmarks); default: encoded here.
        exact: brute-force search instead of the index (default: the settings' ``exact``).

    Raises:
        InvalidQuery, InvalidFilter, OccupationsNotIngested, EncoderMismatch, QdrantUnavailable.
    """
    q = clean_query(title)
    lim = check_limit(limit)
    thr = check_threshold(threshold)
    st = occupation_state(searcher)
    flt = occupation_filter(isco_group=isco_group, language=language, languages_available=st.index.languages)
    langs = values_of("language", language)
    group = len(st.index.languages) > 1 and len(langs) != 1
    vec = list(vector) if vector is not None else searcher.encoder.encode_queries([q])[0].tolist()
    matched = exact_label_matches(st.index, label_key(q), langs, flt) if exact_labels else {}
    out: list[OccupationHit] = []
    seen: set[tuple[str, str]] = set()
    if matched:
        cond = Filter((*flt.must, Condition(OccField.CONCEPT_URI, tuple(sorted(matched)))))
        n = sum(len(v) for v in matched.values())
        for p in _search(searcher, st, vec, cond, n, None, group, exact=True):
            uri, lang = p.payload.get(OccField.CONCEPT_URI, ""), p.payload.get(OccField.LANGUAGE, "")
            label = matched.get(uri, {}).get(lang) or next(iter(matched.get(uri, {}).values()), None)
            out.append(OccupationHit.from_point(p, matched_label=label))
            seen.add((uri, "" if group else lang))
    if len(out) < lim:
        for p in _search(searcher, st, vec, flt, lim + len(out) if out else lim, thr, group, exact):
            uri, lang = p.payload.get(OccField.CONCEPT_URI, ""), p.payload.get(OccField.LANGUAGE, "")
            if (uri, "" if group else lang) in seen:
                continue
            out.append(OccupationHit.from_point(p))
            if len(out) >= lim:
                break
    return out[:lim]


@dataclass(frozen=True)
class Resolution:
    """How a name was resolved: ``how`` is ``uri`` (given as one), ``label`` (an exact label) or ``search``."""

    uri: str
    label: str
    how: str
    score: float | None = None


_KIND_ORDER = {"preferred": 0, "alternative": 1, "gendered": 2, "hidden": 3}
_KIND_WORDS = {"preferred": "preferred label", "alternative": "alternative label", "gendered": "gendered form",
               "hidden": "hidden label"}


def resolve_occupation(searcher: OccupationSearcher, name: str, *, language: str | Iterable[str] | None = None,
                       min_score: float = DEFAULT_MIN_SCORE, margin: float = DEFAULT_MARGIN) -> Resolution:
    """The one occupation a name stands for.

    A URI is taken as it is. A label (preferred, alternative, hidden or gendered form) in any indexed language
    resolves at once; a label several occupations share resolves to the one whose preferred label it is, if
    exactly one. Otherwise the name is searched as a title: the best hit resolves it when it scores at least
    ``min_score`` and leads the second by at least ``margin``.

    Raises:
        AmbiguousOccupation: the candidates, with URIs and scores.
        OccupationNotFound: nothing close enough (the closest titles are named).
    """
    text = clean_query(name)
    if is_occupation_uri(text):
        return Resolution(text, "", "uri")
    st = occupation_state(searcher)
    langs = values_of("language", language)
    matched = exact_label_matches(st.index, label_key(text), langs, Filter())

    def label(uri: str) -> str:  # in the language of the matching label
        return st.index.label(uri, next(iter(sorted(matched[uri]))))

    if len(matched) == 1:
        uri = next(iter(matched))
        return Resolution(uri, label(uri), "label")
    if matched:
        kinds = {uri: min((k for _l, k in st.index.keys[label_key(text)][uri]), key=_KIND_ORDER.__getitem__)
                 for uri in matched}
        preferred = [u for u, k in kinds.items() if k == "preferred"]
        if len(preferred) == 1:
            return Resolution(preferred[0], label(preferred[0]), "label")
        hits = {h.concept_uri: h.score for h in
                search_occupations(searcher, text, limit=len(matched) * max(1, len(st.index.languages)),
                                   language=language) if h.concept_uri in matched}
        cands = sorted((Candidate(u, label(u), hits.get(u), _KIND_WORDS[kinds[u]]) for u in matched),
                       key=lambda c: (-(c.score or 0.0), c.uri))
        raise AmbiguousOccupation(name, cands)
    hits = search_occupations(searcher, text, limit=5, language=language, exact_labels=False)
    cands = [Candidate(h.concept_uri, h.preferred_label, h.score, "title search") for h in hits]
    if not hits or hits[0].score < min_score:
        raise OccupationNotFound(name, cands[:3], min_score)
    if len(hits) > 1 and hits[0].score - hits[1].score < margin:
        close = [c for c in cands if c.score is not None and hits[0].score - c.score < margin]
        raise AmbiguousOccupation(name, close)
    return Resolution(hits[0].concept_uri, hits[0].preferred_label, "search", hits[0].score)


def resolve_occupations(searcher: OccupationSearcher, values: str | Iterable[str] | None, **options: object
                        ) -> tuple[str, ...]:
    """The skill filter's ``occupation=`` values as URIs: URIs as they are, names through
    :func:`resolve_occupation` (the occupations collection is read only when a name is given)."""
    out: list[str] = []
    for v in values_of("occupation", values):
        uri = v if is_occupation_uri(v) else resolve_occupation(searcher, v, **options).uri  # type: ignore[arg-type]
        if uri not in out:
            out.append(uri)
    return tuple(out)
