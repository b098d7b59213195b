"""Seeded ESCO-like points and brute-force references for the store tests (no model needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.schema import KEYWORD_FIELDS, point_id
from search.stores import Filter, ScoredPoint, StoredPoint

SKILL_TYPES = ("skill/competence", "knowledge")
REUSE_LEVELS = ("transversal", "cross-sector", "sector-specific", "occupation-specific")
COLLECTIONS = ("digital", "green", "transversal", "language", "research")


@dataclass
class Dataset:
    vectors: np.ndarray  # (n, dim) float32, normalized
    points: list[StoredPoint]
    _masks: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def mask(self, flt: Filter | None) -> np.ndarray:
        """Which points pass ``flt`` (by Filter.matches), cached per filter."""
        if flt not in self._masks:
            self._masks[flt] = np.array([(not flt) or flt.matches(p.payload) for p in self.points])
        return self._masks[flt]

    def index(self, pid: str) -> int:
        if not self._index:
            self._index.update((p.id, i) for i, p in enumerate(self.points))
        return self._index[pid]

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.points]

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [p.payload for p in self.points]


def make_dataset(concepts: int = 600, dim: int = 48, seed: int = 7, occupations: int = 150) -> Dataset:
    """``concepts`` skills in en and de (2 points each): ESCO-like payloads, clustered unit vectors.

    Occupation popularity follows a Zipf-like law, so some occupation values are common and many rare.
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(4, concepts // 20), dim))
    occ_p = 1.0 / np.arange(1, occupations + 1)
    occ_p /= occ_p.sum()
    points: list[StoredPoint] = []
    vecs = []
    for c in range(concepts):
        uri = f"http://data.europa.eu/esco/skill/{c:05d}"
        base = centers[rng.integers(len(centers))] + 0.9 * rng.standard_normal(dim)
        occs = sorted({f"http://data.europa.eu/esco/occupation/o{int(i)}" for i in
                       rng.choice(occupations, size=int(rng.integers(0, 7)), p=occ_p)})
        groups = sorted({f"http://data.europa.eu/esco/isced-f/g{int(i)}" for i in rng.integers(0, 30, size=int(rng.integers(1, 4)))})
        colls = sorted({COLLECTIONS[int(i)] for i in rng.integers(0, len(COLLECTIONS), size=int(rng.integers(0, 3)))})
        common = {
            "concept_uri": uri,
            "skill_type": SKILL_TYPES[int(rng.integers(2))],
            "reuse_level": REUSE_LEVELS[int(rng.integers(4))],
            "occupations": occs,
            "essential_for": occs[: len(occs) // 2],
            "skill_groups": groups,
            "collections": colls,
            "status": "released",
            "n_occupations": len(occs),
            "weight": float(np.round(rng.random(), 3)),
            "is_green": "green" in colls,
            "description": None if c % 7 == 0 else f"description {c}",
        }
        for lang in ("en", "de"):
            v = base + 0.35 * rng.standard_normal(dim)
            vecs.append(v / np.linalg.norm(v))
            points.append(
                StoredPoint(
                    id=point_id(uri, lang),
                    payload={**common, "language": lang, "preferred_label": f"skill {c} ({lang})"},
                    vector=None,
                )
            )
    X = np.asarray(vecs, dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    points = [StoredPoint(p.id, p.payload, X[i].tolist()) for i, p in enumerate(points)]
    return Dataset(X, points)


def queries(ds: Dataset, n: int, seed: int = 11) -> np.ndarray:
    """Query vectors near the data (like real queries), not normalized on purpose."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(ds.points), size=n)
    q = ds.vectors[idx] + 0.6 * rng.standard_normal((n, ds.vectors.shape[1])).astype(np.float32)
    return (q * rng.uniform(0.5, 3.0, size=(n, 1))).astype(np.float32)


def brute_force(
    ds: Dataset, q: Sequence[float], flt: Filter | None = None, limit: int = 10, threshold: float | None = None
) -> list[tuple[str, float]]:
    """The exact answer: (id, cosine) of the best ``limit`` points that pass the filter, best first."""
    qv = np.asarray(q, dtype=np.float64)
    scores = ds.vectors.astype(np.float64) @ (qv / np.linalg.norm(qv))
    keep = ds.mask(flt)
    if threshold is not None:
        keep = keep & (scores >= threshold)
    idx = np.flatnonzero(keep)
    if limit < len(idx):  # exact top-k without sorting everything: partition, then sort the k
        idx = np.sort(idx[np.argpartition(-scores[idx], limit - 1)[:limit]])  # ties stay in id order
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return [(ds.points[i].id, float(scores[i])) for i in idx]


def group_keys(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, (str, int)) and not isinstance(v, bool)]


def brute_force_groups(
    ds: Dataset, q: Sequence[float], group_by: str, flt: Filter | None = None, limit: int = 10,
    threshold: float | None = None,
) -> list[tuple[str, float]]:
    """Qdrant's grouping with group_size=1: the best point of each value of ``group_by`` (a point
    with a list of values is in each of those groups), groups ordered by their best score."""
    hits = brute_force(ds, q, flt, limit=len(ds.points), threshold=threshold)
    payload = {p.id: p.payload for p in ds.points}
    seen: set[Any] = set()
    out = []
    for pid, score in hits:
        for key in group_keys(payload[pid].get(group_by)):
            if key not in seen and len(out) < limit:
                seen.add(key)
                out.append((pid, score))
    return out


def as_pairs(hits: Sequence[ScoredPoint]) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


def assert_same_hits(got: Sequence[ScoredPoint] | list[tuple[str, float]], want: list[tuple[str, float]],
                     tol: float = 1e-4, what: str = "") -> None:
    pairs = [(h.id, h.score) if isinstance(h, ScoredPoint) else h for h in got]
    assert [p for p, _ in pairs] == [p for p, _ in want], f"{what}: ids differ\n got  {pairs}\n want {want}"
    for (pid, s), (_, w) in zip(pairs, want):
        assert abs(s - w) <= tol, f"{what}: score of {pid} is {s}, want {w}"


__all__ = [
    "Dataset", "make_dataset", "queries", "brute_force", "brute_force_groups", "assert_same_hits", "as_pairs",
    "KEYWORD_FIELDS",
]
