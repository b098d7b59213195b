"""The search modes as store requests: what ``dense`` and ``hybrid`` ask the store, and the ``score`` of a hit.

``hybrid`` is one Query API request (:class:`search.stores.Query`) per text: a prefetch per representation
(the passage, the label rows by MaxSim, BM25 over the labels), all under the call's filter, fused by weighted
RRF in the engine, and skills whose label equals the query boosted to the top (:data:`hybrid.PROMOTION_BOOST`).
Hits keep the fused order; their ``score`` is the best cosine of the query with the passage or any label
(:func:`hybrid.display_score`), scored by the engine in a second small request per text (:func:`display_requests`:
the hits' points only, no vectors fetched), so a threshold keeps its meaning. The request shape is the one
:class:`hybrid.ExactIndex` computes in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from search import hybrid
from search.errors import SearchError
from search.schema import Field
from search.stores import (
    Boost,
    Condition,
    Filter,
    Nearest,
    Prefetch,
    Query,
    Rrf,
    ScoredPoint,
    SparseVector,
)
from search.stores.base import float_list

__all__ = ["resolve_mode", "mode_threshold", "hybrid_query", "bm25_terms", "display_requests", "with_display_scores"]


def resolve_mode(asked: str | None, setting: str | None, metadata: Mapping[str, Any], collection: str) -> str:
    """The mode of one call: ``asked`` (``mode=``), else the setting (``ESCO_SEARCH_MODE``), else the best mode
    the collection was built for: :data:`hybrid.DEFAULT_MODE` (``hybrid``, measured better on job-ad
    sentences, course texts and alt labels: docs/hybrid.md) where it holds every representation, ``dense``
    for a collection written with the passage alone (``ESCO_REPRESENTATIONS=dense``, or before hybrid search).

    Raises:
        SearchError: an unknown mode, or a mode (asked or set) the collection was not built for; the message
            names what is missing and how to re-ingest.
    """
    chosen = asked if asked is not None else setting
    if chosen is None:
        if hybrid.mode_refusal(hybrid.DEFAULT_MODE, metadata, collection) is None:
            return hybrid.DEFAULT_MODE
        return hybrid.DENSE
    try:
        mode = hybrid.check_mode(chosen)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    refusal = hybrid.mode_refusal(mode, metadata, collection)
    if refusal is not None:
        raise SearchError(refusal)
    return mode


def mode_threshold(setting: float | None, metadata: Mapping[str, Any], mode: str) -> float | None:
    """The threshold of a call that gives none: the setting (``ESCO_SCORE_THRESHOLD``), else the one calibrated
    for ``mode`` (``score_thresholds[mode]``: the score distributions differ per mode), else the collection's
    ``score_threshold`` when its calibration names no mode or this one (a calibration of another mode is not
    applied), else none."""
    if setting is not None:
        return float(setting)
    per_mode = metadata.get("score_thresholds") or {}
    if per_mode.get(mode) is not None:
        return float(per_mode[mode])
    t = metadata.get("score_threshold")
    calibrated_for = (metadata.get("calibration") or {}).get("mode")
    if t is None or (calibrated_for is not None and calibrated_for != mode):
        return None
    return float(t)


def bm25_terms(metadata: Mapping[str, Any], language: str | None) -> hybrid.Bm25Terms:
    """The BM25 tokenizer the ingest recorded for ``language`` (else the collection's first language)."""
    rep = dict((metadata.get("representations") or {}).get(hybrid.BM25) or {})
    per_lang = rep.get("languages")
    langs = list(metadata.get("languages") or ["en"])
    lang = language if language in (per_lang or {}) or (language in langs) else langs[0]
    desc = dict(per_lang.get(lang) or {}) if isinstance(per_lang, Mapping) else rep
    kwargs = {k: float(desc[k]) for k in ("avg_len", "k", "b") if desc.get(k) is not None}
    terms = hybrid.Bm25Terms(str(desc.get("language") or lang), **kwargs)  # type: ignore[arg-type]
    recorded = desc.get("probe")
    if recorded is not None and list(recorded) != terms.describe()["probe"]:
        raise SearchError(
            f"the collection's BM25 terms ({lang}) were made by another tokenizer than this environment's "
            f"qdrant-edge-py: search with mode='dense' (ESCO_SEARCH_MODE=dense), or re-ingest the release here"
        )
    return terms


def hybrid_query(vector: Sequence[float], text: str, terms: hybrid.SparseTerms | None, fusion: hybrid.FusionParams,
                 flt: Filter | None, limit: int) -> Query:
    """The served hybrid request for one query (see the module docstring).

    Legs: ``passage`` and ``pref`` (dense), ``label_mean`` (dense, where the fusion names it), ``bm25`` (sparse,
    skipped when the query has only stopwords) and ``labels`` (MaxSim), which rescores the union of its candidate legs (``fusion.labels_candidates``) or
    scans every point when there are none; RRF over ``fusion.representations``; then the exact-label boost.
    """
    vec = float_list(vector)
    L = fusion.prefetch_limit
    has_terms = terms is not None and len(terms.indices) > 0
    legs: dict[str, Prefetch] = {
        hybrid.PASSAGE: Prefetch(Nearest(hybrid.PASSAGE, vec), L),
        hybrid.PREF: Prefetch(Nearest(hybrid.PREF, vec), L),
    }
    if has_terms:
        assert terms is not None
        legs[hybrid.BM25] = Prefetch(Nearest(hybrid.BM25, SparseVector(tuple(terms.indices), tuple(terms.values))), L)
    if hybrid.LABEL_MEAN in fusion.representations:
        legs[hybrid.LABEL_MEAN] = Prefetch(Nearest(hybrid.LABEL_MEAN, vec), L)
    candidates = tuple(legs[r] for r in fusion.labels_candidates if r in legs)
    legs[hybrid.LABELS] = Prefetch(Nearest(hybrid.LABELS, [vec]), L, candidates)
    used = [(r, w) for r, w in zip(fusion.representations, fusion.weights) if r in legs]
    unknown = [r for r in fusion.representations if r not in legs and r != hybrid.BM25]
    if unknown:
        raise ValueError(f"unknown representation(s) {', '.join(unknown)} in the fusion parameters")
    rrf = Rrf(k=fusion.k, weights=tuple(float(w) for _, w in used))
    fused_legs = tuple(legs[r] for r, _ in used)
    key = hybrid.label_key(text)
    if not (fusion.promote_exact and key):
        return Query(rrf, fused_legs, limit, flt or None)
    # the fused stage keeps every candidate (the union of the legs), so the boost sees their fused scores
    fused = Prefetch(rrf, L * len(fusion.representations), fused_legs)
    exact = Prefetch(Nearest(hybrid.PASSAGE, vec), limit, filter=Filter((Condition(hybrid.LABEL_KEYS_FIELD, (key,)),)))
    return Query(Boost(hybrid.LABEL_KEYS_FIELD, (key,), hybrid.PROMOTION_BOOST), (fused, exact), limit, flt or None)


def display_requests(query_vector: Sequence[float], hits: Sequence[ScoredPoint], flt: Filter | None,
                     points_per_concept: int) -> list[Query]:
    """The two requests that score ``hits`` for :func:`with_display_scores`, in the engine.

    Each scores only the points of the hits' concepts (their ``concept_uri`` under the call's filter, at most
    ``points_per_concept`` points each: one per language): the query's cosine with the ``passage`` vector, and
    its MaxSim over the ``labels`` rows (the best label's cosine). Nothing is fetched but ids and scores.
    """
    uris = tuple(dict.fromkeys(str(p.payload[Field.CONCEPT_URI]) for p in hits))
    if not uris:
        return []
    f = Filter(((flt.must if flt else ()) + (Condition(Field.CONCEPT_URI, uris),)))
    n = len(uris) * max(1, points_per_concept)
    vec = [float(x) for x in query_vector]
    return [Query(Nearest(hybrid.PASSAGE, vec), (), n, f), Query(Nearest(hybrid.LABELS, [vec]), (), n, f)]


def with_display_scores(hits: Sequence[ScoredPoint], scored: Sequence[Sequence[ScoredPoint]],
                        threshold: float | None) -> list[ScoredPoint]:
    """Hybrid hits in fused order with ``score`` = the best cosine of passage and labels; below ``threshold`` dropped.

    ``scored``: the answers to :func:`display_requests` for these hits (the passage leg, then the labels leg).

    Raises:
        SearchError: the store scored no representation of a hit (it answered for another collection).
    """
    best: dict[str, float] = {}
    for leg in scored:
        for p in leg:
            s = float(p.score)
            if s > best.get(p.id, -2.0):
                best[p.id] = s
    out = []
    for p in hits:
        score = best.get(p.id)
        if score is None:
            raise SearchError(f"the store returned no passage or label score for hit {p.id}")
        if threshold is not None and score < threshold:
            continue
        out.append(ScoredPoint(p.id, score, p.payload))
    return out
