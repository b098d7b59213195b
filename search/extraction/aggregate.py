"""Per-skill aggregation of the hits of a text's segments.

Two scores, chosen between by measurement (docs/extraction.md):

* ``max``: the best segment's cosine score. A skill named once, clearly, counts as much as one named often.
* ``support``: ``max + weight * ln(n)``, where ``n`` counts the segments whose score for the skill is within
  ``window`` of its best: a skill several segments agree on rises above one that a single segment brushes.

Either way a segment that matches nothing above the floor (company blurbs, benefits, equal-opportunity
statements) adds nothing: it brings no hit, and counts for no skill's support.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from search.extraction.segment import Segment
from search.extraction.types import Evidence, ExtractedSkill

__all__ = ["AGGREGATIONS", "aggregate", "retrieval_floor"]

AGGREGATIONS = ("max", "support")
SUPPORT_WEIGHT = 0.02
SUPPORT_WINDOW = 0.05


def retrieval_floor(threshold: float | None, method: str, n_segments: int, weight: float = SUPPORT_WEIGHT) -> float | None:
    """The lowest segment score that can still reach ``threshold`` once aggregated (what each segment's search
    may drop below)."""
    if threshold is None:
        return None
    if method == "support" and n_segments > 1:
        return max(-1.0, threshold - weight * math.log(n_segments))
    return threshold


def aggregate(
    segment_hits: Sequence[tuple[Segment, Sequence[Any]]],
    *,
    method: str = "max",
    threshold: float | None = None,
    limit: int = 20,
    weight: float = SUPPORT_WEIGHT,
    window: float = SUPPORT_WINDOW,
) -> list[ExtractedSkill]:
    """One :class:`ExtractedSkill` per concept (across segments and languages), best first.

    Args:
        segment_hits: each segment with its search hits (objects with ``concept_uri`` and ``score``).
        method: ``max`` or ``support`` (see the module's docstring).
        threshold: lowest aggregated score returned (None: no threshold).
        limit: most skills returned.
        weight, window: of the ``support`` score.

    Raises:
        ValueError: an unknown method.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}: use one of {', '.join(AGGREGATIONS)}")
    found: dict[str, list[tuple[float, Segment, Any]]] = {}
    for seg, hits in segment_hits:
        best_here: dict[str, Any] = {}
        for h in hits:  # several languages of one concept in one segment: its best one
            cur = best_here.get(h.concept_uri)
            if cur is None or h.score > cur.score:
                best_here[h.concept_uri] = h
        for uri, h in best_here.items():
            found.setdefault(uri, []).append((float(h.score), seg, h))
    out: list[ExtractedSkill] = []
    for entries in found.values():
        entries.sort(key=lambda e: (-e[0], e[1].start, e[1].end))
        best = entries[0][0]
        score = best
        if method == "support":
            n = sum(1 for s, _seg, _h in entries if s >= best - window)
            score = best + weight * math.log(n)
        if threshold is not None and score < threshold:
            continue
        ev = tuple(Evidence(seg.start, seg.end, seg.text, s, seg.kind) for s, seg, _h in entries)
        out.append(ExtractedSkill(hit=entries[0][2], score=score, evidence=ev))
    out.sort(key=lambda x: (-x.score, x.concept_uri))
    return out[:limit]
