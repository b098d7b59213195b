"""ESCO occupations: title search, an occupation's name as the skill filter, and occupations from skills.

Works on any searcher with ``encoder``, ``store`` and ``settings`` (e.g. :class:`search.SkillSearch`) and the
occupations collection the ingest writes (alias ``ESCO_OCCUPATION_COLLECTION``, default ``esco_occupations``):

* :func:`search_occupations` (title -> :class:`OccupationHit`; exact labels first, then by cosine);
* :func:`resolve_occupation` / :func:`resolve_occupations` (a label or title -> URI, for ``occupation=``);
* :func:`occupations_from_skills` (skills -> :class:`OccupationMatch` ranked by weighted coverage, explained).

The evaluation of title search lives in :mod:`search.occupations.evaluation` (not imported here, so that the
searcher can import this package without the evaluation layer).
"""

from __future__ import annotations

from search.occupations.coverage import occupations_from_skills, rank_by_coverage, skill_weights
from search.occupations.index import OccupationIndex, OccupationSearcher, occupation_state
from search.occupations.schema import DEFAULT_OCCUPATION_ALIAS, OCCUPATION_KEYWORD_FIELDS, OccField
from search.occupations.title import (Resolution, is_occupation_uri, occupation_filter, resolve_occupation,
                                      resolve_occupations, search_occupations)
from search.occupations.types import (AmbiguousOccupation, Candidate, OccupationHit, OccupationMatch,
                                      OccupationNotFound, OccupationsNotIngested, SkillRef)

__all__ = [
    "search_occupations", "resolve_occupation", "resolve_occupations", "occupations_from_skills",
    "rank_by_coverage", "skill_weights", "occupation_filter", "is_occupation_uri", "occupation_state",
    "OccupationHit", "OccupationMatch", "SkillRef", "Candidate", "Resolution", "OccupationIndex",
    "OccupationSearcher", "OccupationsNotIngested", "OccupationNotFound", "AmbiguousOccupation",
    "OccField", "OCCUPATION_KEYWORD_FIELDS", "DEFAULT_OCCUPATION_ALIAS",
]
