"""What an ingest did: :class:`IngestSummary` (the skills, returned by :func:`ingest.build.run`) and
:class:`OccupationIngestSummary` (the occupations), both a :class:`BuildSummary`; printed by ``esco-ingest``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BuildSummary", "IngestSummary", "OccupationIngestSummary"]


@dataclass(kw_only=True)
class BuildSummary:
    """What one build of a versioned collection behind an alias did: the counts both builds keep."""

    collection: str
    alias: str
    esco_version: str
    languages: list[str]
    unchanged: int = 0
    changed: int = 0
    new: int = 0
    removed: int = 0
    encoded: int = 0
    reused: int = 0
    resumed_points: int = 0
    truncated_passages: int = 0
    previous_collection: str | None = None
    pruned: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, for JSON."""
        return asdict(self)


@dataclass(kw_only=True)
class IngestSummary(BuildSummary):
    """What an ingest of the skills did; printed by the CLI and returned to callers."""

    skills_read: dict[str, int]
    points_written: dict[str, int]
    representations: list[str] = field(default_factory=list)  # the named vectors written
    labels_encoded: int = 0  # points whose label rows were encoded (hybrid)
    labels_reused: int = 0  # points whose label rows came from the served collection (hybrid)
    read_stats: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)  # model, backend, precision (and auto's choice)


@dataclass(kw_only=True)
class OccupationIngestSummary(BuildSummary):
    """What one build of the occupations collection did."""

    occupations_read: dict[str, int]
    points: int = 0
    warnings: list[str] = field(default_factory=list)
