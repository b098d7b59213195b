"""Exact (brute-force) reference rankings over the vectors stored in a collection.

The collection's vectors are read once into one float32 matrix (rows grouped by concept), and queries are
ranked against it in chunks: one matrix product per chunk, the best point of each concept by
``np.maximum.reduceat``, the top ``limit`` concepts by ``np.argpartition``. Memory stays at the matrix plus
one chunk of scores, however many queries there are; the caller's arrays are never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.schema import Field
from search.filters import build_filter
from search.stores import Store

__all__ = ["FILTER_KEYS", "ExactIndex", "exact_rankings", "dedupe"]

#: The filter arguments of :meth:`search.service.SkillSearch.search` that an evaluation passes on.
FILTER_KEYS = ("skill_type", "reuse_level", "occupation", "relation", "skill_group", "collection",
               "language", "status")

#: Bytes of scores one chunk of queries may hold (queries x points x 4).
CHUNK_BYTES = 64 << 20


def dedupe(hits: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """The first hit of each concept URI, at most ``limit`` of them, in the given order."""
    seen: set[str] = set()
    out = []
    for uri, score in hits:
        if uri in seen:
            continue
        seen.add(uri)
        out.append((uri, score))
        if len(out) >= limit:
            break
    return out


def _normalised(vectors: Any, what: str) -> np.ndarray:
    """A new float32 array of unit rows (zero rows stay zero); ``vectors`` is not changed."""
    a = np.asarray(vectors, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (one vector a row), got shape {a.shape}")
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), np.float32(1e-12))


@dataclass(frozen=True)
class ExactIndex:
    """The points of a collection that a filter accepts, as one normalised float32 matrix.

    Attributes:
        uris: the concept URIs, one per group of rows.
        matrix: ``(points, dim)`` unit vectors, the rows of each concept next to each other.
        starts: the first row of each concept's group (``len(uris)`` entries, ascending).
    """

    uris: list[str]
    matrix: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_vectors(cls, concept_uris: Sequence[str], vectors: Any) -> ExactIndex:
        """Build from one concept URI per row of ``vectors`` (copied, normalised; not changed)."""
        m = _normalised(vectors, "vectors") if len(concept_uris) else np.zeros((0, 0), np.float32)
        if len(concept_uris) != len(m):
            raise ValueError(f"{len(concept_uris)} concept URIs for {len(m)} vectors")
        first: dict[str, int] = {}
        ids = np.fromiter((first.setdefault(u, len(first)) for u in concept_uris), dtype=np.int64,
                          count=len(concept_uris))
        uris = list(first)
        if len(uris) == len(ids) and np.all(ids[1:] > ids[:-1]):  # one row per concept: no grouping
            return cls(uris, m, np.arange(len(uris), dtype=np.int64))
        order = np.argsort(ids, kind="stable")
        starts = np.searchsorted(ids[order], np.arange(len(uris)))
        return cls(uris, m[order], starts.astype(np.int64))

    @classmethod
    def from_store(
        cls,
        store: Store,
        collection: str,
        *,
        filters: Mapping[str, Any] | None = None,
        languages_available: Sequence[str] | None = None,
        block: int = 4096,
    ) -> ExactIndex:
        """Scroll ``collection`` once with its vectors, keeping the points the filter accepts.

        The filter is the searcher's own (:func:`search.filters.build_filter`), evaluated with
        ``Filter.matches`` on each payload.
        """
        flt = build_filter(**dict(filters or {}), languages_available=languages_available)
        fields = sorted({Field.CONCEPT_URI, *(c.field for c in flt.must)})
        uris: list[str] = []
        blocks: list[np.ndarray] = []
        pending: list[list[float]] = []
        for p in store.scroll(collection, with_vectors=True, with_payload=fields):
            if p.vector is None or not flt.matches(p.payload):
                continue
            uris.append(str(p.payload.get(Field.CONCEPT_URI, "")))
            pending.append(p.vector)
            if len(pending) >= block:
                blocks.append(np.asarray(pending, dtype=np.float32))
                pending = []
        if pending:
            blocks.append(np.asarray(pending, dtype=np.float32))
        if not uris:
            return cls([], np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
        return cls.from_vectors(uris, np.concatenate(blocks) if len(blocks) > 1 else blocks[0])

    def __len__(self) -> int:
        return len(self.uris)

    def concept_scores(self, query_vectors: Any) -> np.ndarray:
        """``(queries, concepts)`` cosine of each query with the best point of each concept."""
        q = _normalised(query_vectors, "query vectors")
        scores = q @ self.matrix.T
        if len(self.starts) == len(self.matrix):
            return scores
        return np.maximum.reduceat(scores, self.starts, axis=1)

    def iter_rankings(self, query_vectors: Any, limit: int = 100,
                      chunk: int | None = None) -> Iterator[list[tuple[str, float]]]:
        """Per query, the best ``limit`` ``(concept_uri, score)``, best first (ties: the earlier concept)."""
        nq = len(query_vectors)
        if not self.uris:
            for _ in range(nq):
                yield []
            return
        k = min(limit, len(self.uris))
        step = chunk or max(1, CHUNK_BYTES // (4 * max(1, len(self.matrix))))
        for start in range(0, nq, step):
            cs = self.concept_scores(query_vectors[start:start + step])
            if k < cs.shape[1]:
                idx = np.argpartition(-cs, k - 1, axis=1)[:, :k]
            else:
                idx = np.broadcast_to(np.arange(cs.shape[1]), cs.shape)
            top = np.take_along_axis(cs, idx, axis=1)
            order = np.lexsort((idx, -top), axis=1)
            idx = np.take_along_axis(idx, order, axis=1)
            top = np.take_along_axis(top, order, axis=1)
            for row_i, row_s in zip(idx.tolist(), top.tolist()):
                yield [(self.uris[i], s) for i, s in zip(row_i, row_s)]

    def rankings(self, query_vectors: Any, limit: int = 100) -> list[list[tuple[str, float]]]:
        """All of :meth:`iter_rankings` as a list."""
        return list(self.iter_rankings(query_vectors, limit))


def exact_rankings(
    store: Store,
    collection: str,
    query_vectors: np.ndarray,
    *,
    filters: Mapping[str, Any] | None = None,
    languages_available: Sequence[str] | None = None,
    limit: int = 100,
    batch_size: int | None = None,
) -> list[list[tuple[str, float]]]:
    """Exact (brute-force) rankings over the vectors stored in ``collection``.

    Keeps the points the filter (the same :func:`build_filter` the searcher uses) accepts, scores them by
    cosine and keeps the best point of each concept: ``limit`` ``(concept_uri, score)`` per query, best
    first. ``query_vectors`` is not changed.
    """
    index = ExactIndex.from_store(store, collection, filters=filters, languages_available=languages_available)
    return list(index.iter_rankings(query_vectors, limit, chunk=batch_size))
