"""What occupation searches return (frozen hits and matches) and the errors they raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from search.errors import CollectionNotFound, InvalidFilter, SearchError
from search.occupations.schema import OccField
from search.stores.base import ScoredPoint

__all__ = ["OccupationHit", "SkillRef", "OccupationMatch", "Candidate", "OccupationsNotIngested",
           "OccupationNotFound", "AmbiguousOccupation"]


@dataclass(frozen=True)
class OccupationHit:
    """One ESCO occupation found for a job title.

    Attributes:
        concept_uri: the occupation's ESCO URI.
        preferred_label: its preferred label in ``language``.
        score: cosine similarity of the title (as a query) and the occupation's passage.
        language: language of the matched point.
        description: its description in ``language``.
        alt_labels: alternative labels in ``language`` (gendered forms included, as ESCO lists them).
        matched_label: the label (in ``language``) equal to the title, when the title is one of the
            occupation's labels: such hits come first, whatever their score.
        isco_group: ISCO-08 unit group code (e.g. ``2512``); ``isco_groups`` the codes above it too.
        code: the ESCO occupation code (e.g. ``2512.1``).
        regulated_profession_note: ESCO's note on regulation (a URI ending in ``regulated``/``unregulated``).
        esco_version: the ESCO release of the collection.
    """

    concept_uri: str
    preferred_label: str
    score: float
    language: str
    description: str = ""
    alt_labels: tuple[str, ...] = ()
    matched_label: str | None = None
    isco_group: str = ""
    isco_groups: tuple[str, ...] = ()
    code: str = ""
    regulated_profession_note: str = ""
    esco_version: str = ""

    @classmethod
    def from_point(cls, p: ScoredPoint, matched_label: str | None = None) -> OccupationHit:
        """The hit of a store's scored point."""
        pl = p.payload
        return cls(
            concept_uri=pl.get(OccField.CONCEPT_URI, ""), preferred_label=pl.get(OccField.PREFERRED_LABEL, ""),
            score=float(p.score), language=pl.get(OccField.LANGUAGE, ""),
            description=pl.get(OccField.DESCRIPTION, ""), alt_labels=tuple(pl.get(OccField.ALT_LABELS) or ()),
            matched_label=matched_label, isco_group=pl.get(OccField.ISCO_GROUP, ""),
            isco_groups=tuple(pl.get(OccField.ISCO_GROUPS) or ()), code=pl.get(OccField.CODE, ""),
            regulated_profession_note=pl.get(OccField.REGULATED_PROFESSION_NOTE, ""),
            esco_version=pl.get(OccField.ESCO_VERSION, ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of tuples)."""
        d = asdict(self)
        d["alt_labels"], d["isco_groups"] = list(self.alt_labels), list(self.isco_groups)
        return d


@dataclass(frozen=True)
class SkillRef:
    """A skill named in an explanation: URI, label (in the match's language) and the weight it was given."""

    uri: str
    label: str
    weight: float = 1.0


@dataclass(frozen=True)
class OccupationMatch:
    """One occupation ranked by how well a set of skills covers its skills, with the explanation.

    ``score`` = (essential_weight * sum of the weights of matched essential skills + optional_weight * the same
    for optional ones) / (essential_weight * n_essential + optional_weight * n_optional): 1.0 when every
    skill of the occupation is given with weight 1. ``essential_coverage`` and ``optional_coverage`` are the
    weighted shares of each kind (0.0 where the occupation has none of that kind).
    """

    concept_uri: str
    preferred_label: str
    language: str
    score: float
    essential_coverage: float
    optional_coverage: float
    n_essential: int
    n_optional: int
    matched_essential: tuple[SkillRef, ...]
    missing_essential: tuple[SkillRef, ...]
    matched_optional: tuple[SkillRef, ...]
    isco_group: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        for k in ("matched_essential", "missing_essential", "matched_optional"):
            d[k] = [asdict(s) for s in getattr(self, k)]
        return d


@dataclass(frozen=True)
class Candidate:
    """One occupation a name could mean (in an ambiguity or not-found error)."""

    uri: str
    label: str
    score: float | None
    why: str  # "preferred label", "alternative label", "hidden label", "title search"

    def __str__(self) -> str:
        score = f" score {self.score:.3f}" if self.score is not None else ""
        return f"{self.label!r} <{self.uri}> ({self.why}{score})"


class OccupationsNotIngested(CollectionNotFound):
    """No occupations collection under the alias: the message says how to ingest one."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        SearchError.__init__(
            self,
            f"occupations collection {name!r} not found in {where}. Ingest a release with its occupations, e.g. "
            f"`esco-ingest --release ../shared/esco/v1.1.1 --language en`, or set ESCO_OCCUPATION_COLLECTION to "
            f"an existing alias (`esco-ingest list` shows them)",
        )


class OccupationNotFound(InvalidFilter):
    """No occupation has the name as a label, and the title search finds none close enough."""

    def __init__(self, name: str, closest: Sequence[Candidate], min_score: float) -> None:
        self.closest = tuple(closest)
        near = "; closest: " + ", ".join(map(str, closest)) if closest else ""
        super().__init__("occupation", name, hint=(
            f"no occupation label equals it and no title scores {min_score:.2f} or more{near}. "
            "Give an ESCO occupation URI or a label (`esco-search occupations \"<title>\"` lists them)"))


class AmbiguousOccupation(InvalidFilter):
    """The name fits several occupations: the message lists them with their URIs and scores."""

    def __init__(self, name: str, candidates: Sequence[Candidate]) -> None:
        self.candidates = tuple(candidates)
        super().__init__("occupation", name, hint=(
            "it fits several occupations: " + "; ".join(map(str, candidates))
            + ". Give one of their URIs, or a label only one of them has"))
