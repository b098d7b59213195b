"""esco-skill-search: map what people learn and do onto ESCO skills.

The public API::

    from search import SkillSearch, SkillHit, SearchSettings, SearchError

    with SkillSearch(SearchSettings()) as searcher:
        for hit in searcher.search("repair bicycles", limit=5, skill_type="skill/competence"):
            print(hit.score, hit.preferred_label, hit.concept_uri)
"""

import logging

from search.errors import (
    CollectionNotFound,
    ConfigError,
    EncoderMismatch,
    InvalidFilter,
    InvalidQuery,
    QdrantUnavailable,
    SearchError,
    StoreLocked,
)
from search.service import SkillHit, SkillSearch
from search.settings import SearchSettings

__all__ = [
    "SkillSearch",
    "SkillHit",
    "SearchSettings",
    "SearchError",
    "ConfigError",
    "InvalidQuery",
    "InvalidFilter",
    "CollectionNotFound",
    "EncoderMismatch",
    "QdrantUnavailable",
    "StoreLocked",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
