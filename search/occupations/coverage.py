"""Occupations from skills: rank every occupation by how well a set of skills covers its essential and
optional skills, and explain each match.

For an occupation with essential skills E and optional skills O, and given skills S with weights c (1.0 for a
plain URI; a mapping may give each skill a weight in (0, 1], e.g. an extraction's confidence)::

    score = (we * sum(c[s] for s in E & S) + wo * sum(c[s] for s in O & S)) / (we * |E| + wo * |O|)

with ``we = essential_weight`` (1.0) and ``wo = optional_weight`` (0.5). The inverted index of the
occupations collection (skill -> occupation numbers, as arrays) is gathered for the given skills and summed
with ``numpy.bincount``: the cost follows the relations of the given skills, plus one pass over an array per
occupation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from search.errors import InvalidQuery
from search.filters import check_limit, values_of
from search.occupations.index import OccupationIndex, OccupationSearcher, occupation_state
from search.occupations.title import occupation_filter
from search.occupations.schema import OccField
from search.occupations.types import OccupationMatch, SkillRef

__all__ = ["skill_weights", "rank_by_coverage", "occupations_from_skills"]


def skill_weights(skills: Iterable[Any] | Mapping[str, float]) -> dict[str, float]:
    """Skill URI -> weight from URIs (weight 1), a mapping URI -> weight in (0, 1], or hits with a
    ``concept_uri`` (``SkillHit``, ``ExtractedSkill``: weight 1). A skill given twice keeps its highest weight.

    Raises:
        InvalidQuery: something that is no skill URI, or a weight outside (0, 1].
    """
    if isinstance(skills, str):
        skills = [skills]
    items: Iterable[tuple[Any, Any]]
    if isinstance(skills, Mapping):
        items = skills.items()
    else:
        items = ((getattr(s, "concept_uri", s), 1.0) for s in skills)
    out: dict[str, float] = {}
    for uri, w in items:
        if not isinstance(uri, str) or not uri.strip().startswith(("http://", "https://")):
            raise InvalidQuery(f"skills must be ESCO skill URIs (http://data.europa.eu/esco/skill/<uuid>), got {uri!r:.80}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or math.isnan(w) or not 0.0 < w <= 1.0:
            raise InvalidQuery(f"the weight of skill {uri} must be a number in (0, 1], got {w!r}")
        key = uri.strip()
        out[key] = max(out.get(key, 0.0), float(w))
    return out


def rank_by_coverage(index: OccupationIndex, weights: Mapping[str, float], *, limit: int = 10,
                     essential_weight: float = 1.0, optional_weight: float = 0.5, language: str | None = None,
                     isco_groups: Iterable[str] = (), min_essential: int = 0) -> list[OccupationMatch]:
    """The ``limit`` best-covered occupations of ``index`` (see the module's formula), best first; ties by more
    matched essential skills, then by URI. Only occupations with a score above 0 (and at least
    ``min_essential`` matched essential ones) and, with ``isco_groups``, in one of those groups."""
    if not (essential_weight >= 0 and optional_weight >= 0 and essential_weight + optional_weight > 0):
        raise InvalidQuery(f"essential_weight and optional_weight must be >= 0 and not both 0, got "
                           f"{essential_weight!r} and {optional_weight!r}")
    parts = [(index.skill_arrays[s], w) for s, w in weights.items() if s in index.skill_arrays]
    if not parts:
        return []
    occ = np.concatenate([a for (a, _e), _w in parts])
    ess = np.concatenate([e for (_a, e), _w in parts])
    wts = np.concatenate([np.full(len(a), w) for (a, _e), w in parts])
    n = len(index.uris)
    ess_sum = np.bincount(occ[ess], weights=wts[ess], minlength=n)
    opt_sum = np.bincount(occ[~ess], weights=wts[~ess], minlength=n)
    ess_n = np.bincount(occ[ess], minlength=n)
    denom = essential_weight * index.n_essential + optional_weight * index.n_optional
    score = np.round((essential_weight * ess_sum + optional_weight * opt_sum) / np.where(denom > 0, denom, 1), 9)
    keep = (score > 0) & (ess_n >= min_essential)  # rounded: equal shares tie
    cand = np.flatnonzero(keep)
    groups = set(isco_groups)
    if groups:
        cand = np.array([i for i in cand if groups & index.isco_groups[i]], np.int64)
        if not len(cand):
            return []
    order = np.lexsort((index.uri_rank[cand], -ess_n[cand], -score[cand]))[:limit]
    best = [(float(score[i]), int(i)) for i in cand[order]]
    return [_explain(index, i, sc, weights, language) for sc, i in best]


def _explain(index: OccupationIndex, i: int, score: float, weights: Mapping[str, float],
             language: str | None) -> OccupationMatch:
    uri = index.uris[i]
    lang = language if language and language in index.labels.get(uri, {}) else next(iter(index.labels[uri]))

    def ref(s: str) -> SkillRef:
        return SkillRef(s, index.skill_label(s, lang), weights.get(s, 0.0))

    ess, opt = index.essential[i], index.optional[i]
    m_ess = tuple(ref(s) for s in ess if s in weights)
    m_opt = tuple(ref(s) for s in opt if s in weights)
    return OccupationMatch(
        concept_uri=uri, preferred_label=index.label(uri, lang), language=lang, score=round(score, 6),
        essential_coverage=round(sum(r.weight for r in m_ess) / len(ess), 6) if ess else 0.0,
        optional_coverage=round(sum(r.weight for r in m_opt) / len(opt), 6) if opt else 0.0,
        n_essential=len(ess), n_optional=len(opt), matched_essential=m_ess,
        missing_essential=tuple(SkillRef(s, index.skill_label(s, lang), 0.0) for s in ess if s not in weights),
        matched_optional=m_opt, isco_group=index.isco_group[i],
    )


def occupations_from_skills(
    searcher: OccupationSearcher,
    skills: Iterable[Any] | Mapping[str, float],
    *,
    limit: int = 10,
    essential_weight: float = 1.0,
    optional_weight: float = 0.5,
    language: str | None = None,
    isco_group: str | Iterable[str] | None = None,
    min_essential: int = 0,
) -> list[OccupationMatch]:
    """The occupations a set of skills covers best, each with its explanation (matched and missing essential
    skills, matched optional ones, the coverage figures), labelled in ``language`` (default: the collection's
    first language).

    ``skills``: skill URIs, a mapping URI -> weight in (0, 1], or skill hits / extracted skills (their
    ``concept_uri``, weight 1).

    Raises:
        InvalidQuery, InvalidFilter, OccupationsNotIngested, EncoderMismatch.
    """
    weights = skill_weights(skills)
    lim = check_limit(limit)
    st = occupation_state(searcher)
    flt = occupation_filter(isco_group=isco_group, language=language, languages_available=st.index.languages)
    codes = next((c.values for c in flt.must if c.field == OccField.ISCO_GROUPS), ())
    if min_essential < 0:
        raise InvalidQuery(f"min_essential must be 0 or more, got {min_essential!r}")
    lang = values_of("language", language)
    return rank_by_coverage(st.index, weights, limit=lim, essential_weight=essential_weight,
                            optional_weight=optional_weight, language=lang[0] if lang else None,
                            isco_groups=codes, min_essential=min_essential)
