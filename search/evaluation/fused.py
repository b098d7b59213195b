"""The exact reference of the fused search modes: ``search.hybrid_reference.ExactIndex`` over a collection's points.

Every representation the collection stores (passage, labels, BM25) is read once by one scroll; each query is
then ranked as the engine fuses it (``ExactIndex.search`` of :mod:`search.hybrid_reference`), under the same filter (a mask
from ``Filter.matches``), and grouped by concept like the searcher: the first hit of each concept in fused
order, ``limit`` of them. Its ``score`` is the hit's displayed cosine, as the searcher's is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search import hybrid
from search.errors import ConfigError

from search.filters import build_filter, values_of
from search.hybrid_reference import ExactIndex as _FusedIndex
from search.schema import Field
from search.stores import Store

__all__ = ["FusedReference", "query_bm25"]


def query_bm25(metadata: Mapping[str, Any], filters: Mapping[str, Any] | None = None) -> hybrid.Bm25Terms:
    """The BM25 tokenizer of queries, by the searcher's own rule (:func:`search.modes.bm25_terms`): the one the
    ingest recorded for the language asked for when exactly one is, else for the collection's first language."""
    from search.modes import bm25_terms  # the searcher's layer: read when a fused mode is evaluated

    langs = values_of("language", (filters or {}).get("language"))
    return bm25_terms(metadata, langs[0] if len(langs) == 1 else None)


def _vectors(point: Any) -> dict[str, Any]:
    named = getattr(point, "vectors", None)
    return dict(named) if isinstance(named, Mapping) and named else {hybrid.PASSAGE: point.vector}


@dataclass
class FusedReference:
    """A collection's points in the fused reference index, with their concept URIs and the filter mask."""

    index: Any  # search.hybrid_reference.ExactIndex
    concepts: list[str]
    mask: np.ndarray | None
    bm25: hybrid.Bm25Terms | None

    @classmethod
    def from_store(
        cls,
        store: Store,
        collection: str,
        metadata: Mapping[str, Any],
        *,
        filters: Mapping[str, Any] | None = None,
        languages_available: Sequence[str] | None = None,
    ) -> FusedReference:
        """Scroll ``collection`` once with every named vector and the payload fields the filter needs.

        Raises:
            ConfigError: the store returns no labels/BM25 vectors for a collection that records them.
        """
        flt = build_filter(**dict(filters or {}), languages_available=languages_available)
        fields = sorted({Field.CONCEPT_URI, hybrid.LABEL_KEYS_FIELD, *(c.field for c in flt.must)})
        points, concepts, keep = [], [], []
        for p in store.scroll(collection, with_vectors=True, with_payload=fields):
            vecs = _vectors(p)
            if vecs.get(hybrid.PASSAGE) is None:
                continue
            points.append((p.id, vecs, p.payload))
            concepts.append(str(p.payload.get(Field.CONCEPT_URI, "")))
            keep.append(flt.matches(p.payload))
        wanted = set((metadata.get("representations") or {}).keys()) - {hybrid.PASSAGE}
        if points and wanted and not all(r in points[0][1] for r in wanted):
            raise ConfigError(
                f"the store returned only {', '.join(sorted(points[0][1]))} vectors of collection {collection!r}, "
                f"whose metadata records {', '.join(sorted(wanted | {hybrid.PASSAGE}))}: the exact reference of a "
                f"fused mode needs them all (run the evaluation with --no-exact)"
            )
        mask = np.asarray(keep, dtype=bool) if not all(keep) else None
        bm25 = query_bm25(metadata, filters) if hybrid.BM25 in wanted else None
        return cls(_FusedIndex.from_points(points), concepts, mask, bm25)

    def iter_rankings(self, mode: str, query_vectors: Any, texts: Sequence[str], limit: int = 100,
                      fusion: hybrid.FusionParams = hybrid.HYBRID_FUSION) -> Iterator[list[tuple[str, float]]]:
        """Per query, the first ``limit`` concepts in fused order with their displayed score."""
        n = len(self.index.ids)
        by_id = {pid: i for i, pid in enumerate(self.index.ids)}
        vecs = np.asarray(query_vectors)
        many = getattr(self.index, "search_many", None)  # a batch entry point, where the reference has one
        if callable(many):
            ranked = many(mode, vecs, list(texts), bm25=self.bm25, mask=self.mask, limit=n, fusion=fusion)
        else:
            ranked = (self.index.search(mode, q, t, bm25=self.bm25, mask=self.mask, limit=n, fusion=fusion)
                      for q, t in zip(vecs, texts))
        for hits in ranked:
            out: list[tuple[str, float]] = []
            seen: set[str] = set()
            for hit in hits:
                uri = self.concepts[by_id[hit.id]]
                if uri in seen:
                    continue
                seen.add(uri)
                out.append((uri, hit.score))
                if len(out) >= limit:
                    break
            yield out
