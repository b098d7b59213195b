"""Request and response bodies of the HTTP API (the hits are ``SkillHit.to_dict()``, as ``esco-search --json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SearchOptions", "SearchRequest", "BatchRequest", "ExtractRequest", "Hit", "ErrorBody", "CollectionInfo",
           "Skill"]

Values = str | list[str] | None


class SearchOptions(BaseModel):
    """Filters, threshold and limit, as ``SkillSearch.search`` takes them (all optional)."""

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, description="most hits (default: ESCO_LIMIT)", examples=[5])
    threshold: float | None = Field(
        default=None, description="lowest cosine score (default: ESCO_SCORE_THRESHOLD or the collection's "
        "calibrated one)", examples=[0.8])
    skill_type: Values = Field(default=None, description="skill/competence and/or knowledge")
    reuse_level: Values = Field(default=None, description="transversal, cross-sector, sector-specific, "
                                "occupation-specific")
    occupation: Values = Field(default=None, description="occupation URIs; `relation` says which link counts")
    relation: str = Field(default="any", description="essential, optional or any (with occupation)")
    skill_group: Values = Field(default=None, description="skill-group URIs (any ancestor)")
    collection: Values = Field(default=None, description="digital, green, transversal, language, research, "
                               "digcomp")
    language: Values = Field(default=None, description="languages of the passages to match")
    status: Values = Field(default=None, description="ESCO status (released)")
    one_per_concept: bool | None = Field(default=None, description="at most one hit per skill (default: when "
                                         "several languages are indexed and not one is asked for)")
    mode: str | None = Field(default=None, description="dense or hybrid (default: the setting ESCO_SEARCH_MODE, "
                             "else hybrid where the collection holds every representation, else dense)")

    def search_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``SkillSearch.search`` / ``search_batch`` (``mode`` only when given)."""
        return self.model_dump(exclude={"text", "texts"} | ({"mode"} if self.mode is None else set()))


class SearchRequest(SearchOptions):
    """``POST /v1/search``: one text."""

    text: str = Field(description="a learning outcome, course description, job ad or any text",
                      examples=["repair bicycles"])


class BatchRequest(SearchOptions):
    """``POST /v1/search/batch``: several texts searched with the same options; one list of hits per text."""

    texts: list[str] = Field(min_length=1, description="the texts, answered in this order",
                             examples=[["bake bread", "Patienten pflegen"]])


class ExtractRequest(SearchOptions):
    """``POST /v1/extract``: a whole text (once ``SkillSearch.extract`` exists)."""

    text: str = Field(description="a whole course description or job ad")


class Hit(BaseModel):
    """One skill found (``SkillHit.to_dict()``)."""

    concept_uri: str
    preferred_label: str
    description: str
    score: float
    skill_type: str
    reuse_level: str
    language: str
    passage: str
    alt_labels: list[str]
    collections: list[str]
    esco_version: str


class ErrorBody(BaseModel):
    """Every error answer: a message a person can act on, and the error type."""

    detail: str
    error: str
    field: str | None = None
    valid: list[str] | None = None


class CollectionInfo(BaseModel):
    """``GET /v1/collection``: what the service searches."""

    alias: str
    collection: str
    esco_version: str | None
    languages: list[str]
    model: str | None
    backend: str | None
    precision: str | None
    store: str
    count: int
    threshold: float | None


class Skill(BaseModel):
    """``GET /v1/skills/{uri}``: the stored payload of one skill, per language."""

    concept_uri: str
    languages: list[str]
    payloads: dict[str, dict[str, Any]]
