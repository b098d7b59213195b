"""What an ingest did: :class:`IngestSummary`, printed by ``esco-ingest`` and returned by :func:`ingest.build.run`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["IngestSummary"]


@dataclass
class IngestSummary:
    """What an ingest did; printed by the CLI and returned to callers."""

    collection: str
    alias: str
    esco_version: str
    languages: list[str]
    skills_read: dict[str, int]
    points_written: dict[str, int]
    unchanged: int = 0
    changed: int = 0
    new: int = 0
    removed: int = 0
    encoded: int = 0
    reused: int = 0
    resumed_points: int = 0
    truncated_passages: int = 0
    representations: list[str] = field(default_factory=list)  # the named vectors written
    labels_encoded: int = 0  # points whose label rows were encoded (hybrid)
    labels_reused: int = 0  # points whose label rows came from the served collection (hybrid)
    previous_collection: str | None = None
    pruned: list[str] = field(default_factory=list)
    read_stats: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)  # model, backend, precision (and auto's choice)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, for JSON."""
        return asdict(self)
