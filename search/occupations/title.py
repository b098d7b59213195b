"""Title search over the occupations collection, and the resolution of an occupation's name to its URI.

:func:`search_occupations`: an occupation one of whose labels (preferred, alternative, hidden, or a gendered
form of one, in any language searched) equals the title comes first; the rest follows by the cosine of the
title (``query: <title>``) and the occupation, in one of two modes:

* ``hybrid`` (where the collection holds :data:`~search.occupations.schema.OCCUPATION_REPRESENTATIONS`): one
  Query API request fusing the passage, the mean of the label vectors and BM25 over the labels by RRF in the
  engine, as skills are searched (:func:`search.modes.hybrid_query`); a hit's ``score`` stays the cosine of the title and
  the passage (the mean of label vectors is close to any short text, so its cosine is no score to threshold):
  the mode changes the order, a threshold and ``resolve_occupation``'s ``min_score`` keep their meaning;
* ``dense``: the cosine with the passage alone (a collection written with ``ESCO_REPRESENTATIONS=dense``).

:func:`resolve_occupation` turns a label or a title into one URI for the skill search's occupation filter, or
says why it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from search import hybrid
from search.errors import CollectionNotFound, InvalidFilter, SearchError
from search.filters import check_limit, check_threshold, clean_query, values_of
from search.hybrid import label_key
from search.modes import bm25_terms, display_requests, hybrid_query, with_display_scores
from search.occupations.index import OccupationIndex, OccupationSearcher, OccupationState, occupation_state
from search.occupations.schema import OCCUPATION_FUSION, OccField, is_hybrid
from search.occupations.types import AmbiguousOccupation, Candidate, OccupationHit, OccupationNotFound
from search.stores.base import Condition, Filter, ScoredPoint

__all__ = ["search_occupations", "occupation_filter", "exact_label_matches", "resolve_occupation",
           "resolve_occupations", "Resolution", "DEFAULT_MIN_SCORE", "DEFAULT_MARGIN", "is_occupation_uri",
           "title_mode"]

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


def title_mode(searcher: OccupationSearcher, st: OccupationState, mode: str | None = None) -> str:
    """The mode of a title search: ``mode`` if given (refused, naming the fix, when the collection lacks it),
    else ``dense`` when the settings ask for it (``ESCO_SEARCH_MODE=dense``), else ``hybrid`` where the
    collection holds every representation, else ``dense``.

    Raises:
        SearchError: an unknown mode, or ``hybrid`` on a collection written with the passage alone.
    """
    if mode is None:
        if getattr(searcher.settings, "search_mode", None) == hybrid.DENSE:
            return hybrid.DENSE
        return hybrid.HYBRID if is_hybrid(st.meta) else hybrid.DENSE
    try:
        mode = hybrid.check_mode(mode)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    if mode == hybrid.HYBRID and not is_hybrid(st.meta):
        raise SearchError(f"occupations collection {st.target!r} was written with the passage alone, so it cannot be "
                          f"searched in mode 'hybrid': search with mode='dense', or run esco-ingest again with "
                          f"ESCO_REPRESENTATIONS=hybrid (the default) to write the labels and BM25 representations")
    return mode


def _terms(st: OccupationState, language: str | None) -> hybrid.Bm25Terms:
    terms = st.bm25.get(language)
    if terms is None:
        terms = st.bm25[language] = bm25_terms(st.meta, language)
    return terms


def _kwargs(searcher: OccupationSearcher, group: bool, exact: bool | None) -> dict[str, Any]:
    # ids and scores only: the hits' fields come from the state's cache (reading ~10 KB of payload a point,
    # even to select a few fields, cost more than the search)
    s = searcher.settings
    return dict(group_by=OccField.CONCEPT_URI if group else None,
                exact=bool(getattr(s, "exact", False)) if exact is None else exact,
                hnsw_ef=getattr(s, "hnsw_ef", None), with_payload=False)


def _search(searcher: OccupationSearcher, st: OccupationState, vector: list[float], flt: Filter, limit: int,
            threshold: float | None, group: bool, exact: bool | None = None) -> list[ScoredPoint]:
    """Dense hits of one title on the collection the alias serves (resolved again, once, when it was deleted
    under us)."""
    store = searcher.store
    assert store is not None
    kwargs = _kwargs(searcher, group, exact)

    def run(state: OccupationState) -> list[ScoredPoint]:
        found = store.search(state.target, [vector], filter=flt, limit=limit, score_threshold=threshold,
                             **kwargs)  # type: ignore[arg-type]
        return state.payloads.fill(store, state.target, found)[0]

    try:
        return run(st)
    except CollectionNotFound:  # the alias moved on and its old collection is gone: resolve again, once
        return run(occupation_state(searcher, force=True))


def _hybrid(searcher: OccupationSearcher, st: OccupationState, vector: list[float], title: str, language: str | None,
            asks: Sequence[tuple[Filter, int, float | None]], group: bool, exact: bool | None
            ) -> list[list[ScoredPoint]]:
    """The fused hits of one title for each ``(filter, limit, threshold)`` of ``asks``: one store batch for the
    fused requests, one for their scores (the passage's cosine, as in dense mode: the label mean's cosine is
    high for any title), on one collection."""
    store = searcher.store
    assert store is not None
    kwargs = _kwargs(searcher, group, exact)

    def run(state: OccupationState) -> list[list[ScoredPoint]]:
        terms = _terms(state, language).query(title)
        requests = [hybrid_query(vector, title, terms, OCCUPATION_FUSION, f, k) for f, k, _t in asks]
        fused = state.payloads.fill(store, state.target, store.query(state.target, requests, **kwargs))  # type: ignore[arg-type]
        shown = [display_requests(vector, hits, f, len(state.index.languages))[:1] for hits, (f, _k, _t) in zip(fused, asks)]
        flat = [q for qs in shown for q in qs]
        scored = store.query(state.target, flat, with_payload=False, exact=True) if flat else []
        out, i = [], 0
        for hits, qs, (_f, _k, thr) in zip(fused, shown, asks):
            out.append(with_display_scores(hits, scored[i:i + len(qs)], thr))
            i += len(qs)
        return out

    try:
        return run(st)
    except CollectionNotFound:  # the alias moved on and its old collection is gone: resolve again, once
        return run(occupation_state(searcher, force=True))


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
    mode: str | None = None,
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
        mode: ``hybrid`` or ``dense`` (default: :func:`title_mode`: hybrid where the collection was built for it).

    Raises:
        InvalidQuery, InvalidFilter, OccupationsNotIngested, EncoderMismatch, QdrantUnavailable, SearchError (a
        mode the collection lacks).
    """
    q = clean_query(title)
    lim = check_limit(limit)
    thr = check_threshold(threshold)
    st = occupation_state(searcher)
    flt = occupation_filter(isco_group=isco_group, language=language, languages_available=st.index.languages)
    langs = values_of("language", language)
    group = len(st.index.languages) > 1 and len(langs) != 1
    hyb = title_mode(searcher, st, mode) == hybrid.HYBRID
    vec = [float(x) for x in vector] if vector is not None else searcher.encoder.encode_queries([q])[0].tolist()
    matched = exact_label_matches(st.index, label_key(q), langs, flt) if exact_labels else {}
    asks: list[tuple[Filter, int, float | None]] = []
    n = sum(len(v) for v in matched.values())
    if matched:  # the occupations with the label, whatever their score
        asks.append((Filter((*flt.must, Condition(OccField.CONCEPT_URI, tuple(sorted(matched))))), n, None))
    # then the rest: as many more as there may be matched hits to skip (the first hits of a longer list are the same)
    asks.append((flt, lim + n, thr))
    if hyb:
        answers = _hybrid(searcher, st, vec, q, langs[0] if len(langs) == 1 else None, asks, group, exact)
    else:
        answers = [_search(searcher, st, vec, f, k, t, group, exact=True if (matched and i == 0) else exact)
                   for i, (f, k, t) in enumerate(asks)]
    out: list[OccupationHit] = []
    seen: set[tuple[str, str]] = set()
    for p in answers[0] if matched else []:
        uri, lang = p.payload.get(OccField.CONCEPT_URI, ""), p.payload.get(OccField.LANGUAGE, "")
        label = matched.get(uri, {}).get(lang) or next(iter(matched.get(uri, {}).values()), None)
        out.append(OccupationHit.from_point(p, matched_label=label))
        seen.add((uri, "" if group else lang))
    for p in answers[-1]:
        if len(out) >= lim:
            break
        uri, lang = p.payload.get(OccField.CONCEPT_URI, ""), p.payload.get(OccField.LANGUAGE, "")
        if (uri, "" if group else lang) not in seen:
            out.append(OccupationHit.from_point(p))
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
