"""Title search over the occupations collection, and the resolution of an occupation's name to its URI.

:func:`search_occupations`: an occupation one of whose labels (preferred, alternative, hidden, or a gendered
form of one, in any language searched) equals the title comes first (found in the occupation index, ordered by
the passage cosine computed from the hit cache: no search); the rest follows by the cosine of the title
(``query: <title>``) and the occupation, in one request to the store, in one of two modes:

* ``hybrid`` (where the collection holds :data:`~search.occupations.schema.OCCUPATION_REPRESENTATIONS`): one
  Query API request fusing the passage, the mean of the label vectors and BM25 over the labels by RRF in the
  engine, as skills are searched (:func:`search.modes.hybrid_query`); a hit's ``score`` stays the cosine of the title and
  the passage (the mean of label vectors is close to any short text, so its cosine is no score to threshold),
  computed from the passage vector the hit cache keeps beside each occupation's fields: the mode changes the
  order, a threshold and ``resolve_occupation``'s ``min_score`` keep their meaning;
* ``dense``: the cosine with the passage alone (a collection written with ``ESCO_REPRESENTATIONS=dense``).

:func:`resolve_occupation` turns a label or a title into one URI for the skill search's occupation filter, or
says why it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search import hybrid
from search.errors import CollectionNotFound, InvalidFilter, SearchError
from search.filters import check_limit, check_threshold, clean_query, values_of
from search.hybrid import label_key
from search.modes import bm25_terms, hybrid_query
from search.occupations.index import OccupationIndex, OccupationSearcher, OccupationState, occupation_state
from search.occupations.schema import OCCUPATION_FUSION, OccField, is_hybrid
from search.occupations.types import AmbiguousOccupation, Candidate, OccupationHit, OccupationNotFound
from search.schema import point_id
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


def _dense(searcher: OccupationSearcher, state: OccupationState, vector: list[float], flt: Filter, limit: int,
           threshold: float | None, group: bool, exact: bool | None) -> list[ScoredPoint]:
    """Dense hits of one title: the passage's cosine, from the engine."""
    store = searcher.store
    assert store is not None
    found = store.search(state.target, [vector], filter=flt, limit=limit, score_threshold=threshold,
                         **_kwargs(searcher, group, exact))  # type: ignore[arg-type]
    return state.payloads.fill(store, state.target, found)[0]


def _hybrid(searcher: OccupationSearcher, state: OccupationState, vector: list[float], q: np.ndarray, title: str,
            language: str | None, flt: Filter, limit: int, threshold: float | None, group: bool, exact: bool | None
            ) -> list[ScoredPoint]:
    """The fused hits of one title, in one request, each with ``score`` = the title's cosine with its passage
    (as in dense mode: the label mean's cosine is high for any title), from the passage vector the hit cache
    keeps beside the fields (no second request)."""
    store = searcher.store
    assert store is not None
    request = hybrid_query(vector, title, _terms(state, language).query(title), OCCUPATION_FUSION, flt, limit)
    fused = state.payloads.fill(store, state.target, store.query(state.target, [request], **_kwargs(searcher, group, exact)))  # type: ignore[arg-type]
    return _passage_scored(fused[0], q, threshold)


def _labelled(searcher: OccupationSearcher, state: OccupationState, q: np.ndarray, matched: dict[str, dict[str, str]],
              group: bool) -> list[ScoredPoint]:
    """The points of the occupations whose label equals the title (``matched``: uri -> language -> label), by
    the title's passage cosine, best first (one per occupation when ``group``); from the hit cache, no search."""
    if not matched:
        return []
    store = searcher.store
    assert store is not None
    ids = [ScoredPoint(point_id(uri, lang), 0.0, {}) for uri, langs in sorted(matched.items()) for lang in sorted(langs)]
    hits = sorted(_passage_scored(state.payloads.fill(store, state.target, [ids])[0], q, None), key=lambda p: -p.score)
    if not group:
        return hits
    best: dict[str, ScoredPoint] = {}
    for p in hits:
        best.setdefault(p.payload.get(OccField.CONCEPT_URI, ""), p)
    return list(best.values())


def _passage_scored(hits: Sequence[ScoredPoint], q: np.ndarray, threshold: float | None) -> list[ScoredPoint]:
    """``hits`` in their order with ``score`` = the cosine of ``q`` (normalised) and the passage vector each
    carries (stored normalised, as the engine scores it), those below ``threshold`` dropped."""
    if not hits:
        return []
    scores = np.stack([p.vector for p in hits]) @ q  # type: ignore[misc]
    return [ScoredPoint(p.id, float(s), p.payload) for p, s in zip(hits, scores.tolist())
            if threshold is None or s >= threshold]


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
    raw = np.asarray(vector if vector is not None else searcher.encoder.encode_queries([q])[0], dtype=np.float32)
    vec = raw.tolist()  # what the engine takes (it scores in float32)
    qv = raw / (float(np.linalg.norm(raw)) or 1.0)  # the engine's cosine normalises the query too
    key = label_key(q)
    language1 = langs[0] if len(langs) == 1 else None

    def run(state: OccupationState) -> tuple[dict[str, dict[str, str]], list[ScoredPoint], list[ScoredPoint]]:
        # the occupations with the label, whatever their score, then the rest: as many more as there may be
        # matched hits to skip (the first hits of a longer list are the same)
        matched = exact_label_matches(state.index, key, langs, flt) if exact_labels else {}
        k = lim + sum(len(v) for v in matched.values())
        rest = (_hybrid(searcher, state, vec, qv, q, language1, flt, k, thr, group, exact) if hyb
                else _dense(searcher, state, vec, flt, k, thr, group, exact))
        return matched, _labelled(searcher, state, qv, matched, group), rest

    try:
        matched, first, rest = run(st)
    except CollectionNotFound:  # the alias moved on and its old collection is gone: resolve again, once
        matched, first, rest = run(occupation_state(searcher, force=True))
    out: list[OccupationHit] = []
    seen: set[tuple[str, str]] = set()
    for p in first:
        uri, lang = p.payload.get(OccField.CONCEPT_URI, ""), p.payload.get(OccField.LANGUAGE, "")
        label = matched.get(uri, {}).get(lang) or next(iter(matched.get(uri, {}).values()), None)
        out.append(OccupationHit.from_point(p, matched_label=label))
        seen.add((uri, "" if group else lang))
    for p in rest:
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
