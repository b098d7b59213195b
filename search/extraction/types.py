"""The result types of extraction and the small protocols extraction needs from a searcher."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Evidence", "ExtractedSkill", "HitLike", "SearcherLike"]


@runtime_checkable
class HitLike(Protocol):
    """What extraction reads of a search hit (``search.SkillHit`` has it all)."""

    concept_uri: str
    preferred_label: str
    score: float
    language: str

    def to_dict(self) -> dict[str, Any]: ...


class _TokenCounter(Protocol):
    max_seq_length: int
    query_prompt: str

    def token_counts(self, texts: Sequence[str], prompt: str = "") -> list[int]: ...


class SearcherLike(Protocol):
    """What extraction needs of a searcher (``search.SkillSearch`` has it all): its encoder's token counts
    and window, one batch search (one encoder call, one store request, filters inside), its metadata."""

    encoder: _TokenCounter

    @property
    def default_threshold(self) -> float | None: ...

    def info(self) -> dict[str, Any]: ...

    def search_batch(self, texts: Sequence[str], *, limit: int | None = None, threshold: float | None = None,
                     **filters: Any) -> list[list[Any]]: ...


@dataclass(frozen=True)
class Evidence:
    """A segment of the text that matched a skill.

    Attributes:
        start: offset of the segment's first character in the original text.
        end: offset just past its last character (``text == original[start:end]``).
        text: the segment.
        score: cosine score of the segment and the skill.
        kind: ``sentence``, ``item``, ``window`` or ``document`` (the whole text).
    """

    start: int
    end: int
    text: str
    score: float
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "score": self.score, "kind": self.kind}


@dataclass(frozen=True)
class ExtractedSkill:
    """One ESCO skill found in a whole text.

    Attributes:
        hit: the skill as its best segment found it (a ``search.SkillHit``: label, description, type, ...).
        score: the skill's score in the text (see :mod:`search.extraction.aggregate`; with the default ``max``
            it is the best segment's cosine score).
        evidence: the segments that matched it, best first.
    """

    hit: Any
    score: float
    evidence: tuple[Evidence, ...]

    @property
    def concept_uri(self) -> str:
        return str(self.hit.concept_uri)

    @property
    def preferred_label(self) -> str:
        return str(self.hit.preferred_label)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.hit.to_dict())
        d["segment_score"] = d.pop("score", None)
        d["score"] = self.score
        d["evidence"] = [e.to_dict() for e in self.evidence]
        return d


def uris(skills: Iterable[ExtractedSkill]) -> list[str]:
    """The concept URIs of extracted skills, in their order."""
    return [s.concept_uri for s in skills]
