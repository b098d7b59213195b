"""One search hit as the searcher returns it: :class:`SkillHit`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from search.schema import Field
from search.stores.base import ScoredPoint

__all__ = ["SkillHit", "HIT_FIELDS"]


#: The payload fields a :class:`SkillHit` is made of: all a search asks the store for (the occupation lists and
#: group labels of a point are most of its payload, and converting them cost more than the search itself).
HIT_FIELDS: tuple[str, ...] = (
    Field.CONCEPT_URI, Field.PREFERRED_LABEL, Field.DESCRIPTION, Field.SKILL_TYPE, Field.REUSE_LEVEL,
    Field.LANGUAGE, Field.PASSAGE, Field.ALT_LABELS, Field.COLLECTIONS, Field.ESCO_VERSION,
)


@dataclass(frozen=True)
class SkillHit:
    """One ESCO skill found for a query.

    Attributes:
        concept_uri: the skill's ESCO URI.
        preferred_label: its preferred label in ``language``.
        description: its description in ``language``.
        score: cosine similarity of query and passage (higher is closer; at most 1).
        skill_type: ``skill/competence`` or ``knowledge`` (empty where ESCO gives none).
        reuse_level: ``transversal``, ``cross-sector``, ``sector-specific`` or ``occupation-specific``.
        language: language of the matched passage.
        passage: the passage text that matched (without the ``passage: `` prompt).
        alt_labels: alternative labels in ``language``.
        collections: ESCO skill collections the skill belongs to.
        esco_version: the ESCO release of the collection.
    """

    concept_uri: str
    preferred_label: str
    description: str
    score: float
    skill_type: str
    reuse_level: str
    language: str
    passage: str
    alt_labels: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    esco_version: str = ""

    @classmethod
    def from_point(cls, p: ScoredPoint) -> SkillHit:
        """The hit of a store's scored point (its payload fields, its score)."""
        pl = p.payload
        return cls(
            concept_uri=pl.get(Field.CONCEPT_URI, ""),
            preferred_label=pl.get(Field.PREFERRED_LABEL, ""),
            description=pl.get(Field.DESCRIPTION, ""),
            score=float(p.score),
            skill_type=pl.get(Field.SKILL_TYPE, ""),
            reuse_level=pl.get(Field.REUSE_LEVEL, ""),
            language=pl.get(Field.LANGUAGE, ""),
            passage=pl.get(Field.PASSAGE, ""),
            alt_labels=tuple(pl.get(Field.ALT_LABELS) or ()),
            collections=tuple(pl.get(Field.COLLECTIONS) or ()),
            esco_version=pl.get(Field.ESCO_VERSION, ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of tuples)."""
        d = asdict(self)
        d["alt_labels"] = list(self.alt_labels)
        d["collections"] = list(self.collections)
        return d
