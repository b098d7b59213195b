"""One search hit as the searcher returns it (:class:`SkillHit`), and the cache of hit fields it is built from
(:class:`HitPayloads`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from cachetools import LRUCache

from search.errors import SearchError
from search.schema import Field
from search.stores.base import PASSAGE_VECTOR, ScoredPoint, Store

__all__ = ["SkillHit", "HIT_FIELDS", "HitPayloads"]


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


class HitPayloads:
    """The hit fields (``fields``, default :data:`HIT_FIELDS`) of the points searches return, read once per
    collection and point and kept (LRU).

    Reading a hit's payload is half of what a dense search costs in the embedded engine (0.45 vs 0.22 ms a
    query of 10 hits, docs/hybrid.md), and converting it is most of the rest; the same skills come back query
    after query. A collection's points never change once it is served (each ingest writes a new collection
    and switches the alias), so a payload read once holds while the collection exists. Entries are keyed by
    collection and point id; :meth:`clear` drops them all (the searcher does so when it re-reads a changed
    collection's metadata). ``size`` 0 reads every hit's payload from the store. Thread-safe.

    ``vector``: the name of a dense vector kept beside the fields (float32; the returned points carry it as
    ``vector``), so that a caller scores its hits against the query itself instead of asking the store again
    (the occupations' hybrid title search: the passage cosine of each fused hit).
    """

    def __init__(self, size: int, fields: Sequence[str] = HIT_FIELDS, vector: str | None = None) -> None:
        self._lru: LRUCache[tuple[str, str], tuple[dict[str, Any], Any]] | None = LRUCache(size) if size > 0 else None
        self._lock = threading.Lock()
        self.fields = tuple(fields)
        self.vector = vector

    def clear(self) -> None:
        """Forget every payload."""
        with self._lock:
            if self._lru is not None:
                self._lru.clear()

    def fill(self, store: Store, collection: str, points: Sequence[Sequence[ScoredPoint]]) -> list[list[ScoredPoint]]:
        """``points`` (searched without payload) with their hit fields: from the cache, the rest in one store read.

        Raises:
            CollectionNotFound: the collection is gone (the caller searches the alias's new target again).
            SearchError: the store holds no point for a hit it has just returned.
        """
        found: dict[str, tuple[dict[str, Any], Any]] = {}
        if self._lru is not None:
            with self._lock:
                for hits in points:
                    for p in hits:
                        got = self._lru.get((collection, p.id))
                        if got is not None:
                            found[p.id] = got
        missing = list(dict.fromkeys(p.id for hits in points for p in hits if p.id not in found))
        if missing:
            recs = store.retrieve(collection, missing, with_payload=list(self.fields), with_vectors=self.vector is not None)
            read = {r.id: (r.payload, self._vector_of(r, collection)) for r in recs}
            lost = [i for i in missing if i not in read]
            if lost:
                raise SearchError(f"collection {collection!r} holds no point {lost[0]} that it returned as a hit; "
                                  f"was it rewritten while served? Search again")
            found.update(read)
            if self._lru is not None:
                with self._lock:
                    for i, entry in read.items():
                        self._lru[(collection, i)] = entry
        return [[ScoredPoint(p.id, p.score, *found[p.id]) for p in hits] for hits in points]

    def _vector_of(self, rec: Any, collection: str) -> Any:
        if self.vector is None:
            return None
        v = (rec.vectors or {}).get(self.vector)
        if v is None and self.vector == PASSAGE_VECTOR:  # a collection with one unnamed vector: the passage
            v = rec.vector
        if v is None:
            raise SearchError(f"collection {collection!r} holds no vector {self.vector!r} for point {rec.id}")
        return np.asarray(v, dtype=np.float32)
