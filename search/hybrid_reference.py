"""The numpy reference of every search mode: the stored representations searched exactly as the engine fuses them.

:class:`ExactIndex` reproduces the served hybrid request (``search.hybrid``): each leg's top ``prefetch_limit``
under the filter, the labels leg as MaxSim over its candidate legs, Qdrant's weighted RRF in float32 and
exact-label promotion, so that an index/exact comparison stays 1.000 on the embedded store. Ties of the fused
score are ordered by id here and arbitrarily by the engine (BM25 weights carry a per-point tie-break, so the
legs themselves never tie).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.hybrid import (
    BM25, DENSE, HYBRID_FUSION, LABEL_KEYS_FIELD, LABEL_MEAN, LABELS, PASSAGE, PREF, PROMOTION_BOOST, Bm25Terms,
    FusionParams,
    SparseTerms, check_mode, display_score, idf, label_key, rrf_fuse, unit_rows,
)

__all__ = ["ExactIndex", "RefHit"]


@dataclass(frozen=True)
class RefHit:
    """A hit of the reference: point id, fused score (what orders hits) and ``score`` (a cosine)."""

    id: str
    fused: float
    score: float


@dataclass
class ExactIndex:
    """Every stored representation of a collection in numpy, searched exactly like the engine fuses them.

    Build it with :meth:`from_points` from the points a store scrolls (vectors by name, payload). Filters
    are a boolean mask over ``ids`` (the evaluation evaluates its :class:`Filter` on the payloads).
    """

    ids: list[str]
    passage: np.ndarray  # (n, d) float32, unit rows
    pref: np.ndarray | None = None  # (n, d) float32, unit rows
    label_mean: np.ndarray | None = None  # (n, d) float32, unit rows (occupations)
    label_rows: np.ndarray | None = None  # (m, d) float32: every point's label rows, point after point
    label_start: np.ndarray | None = None  # (n,) first row of each point in label_rows (each has >= 1 row)
    keys: list[frozenset[str]] = field(default_factory=list)
    _terms: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _idf: dict[int, np.float32] = field(default_factory=dict)

    @classmethod
    def from_points(cls, points: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> ExactIndex:
        """``points``: ``(id, vectors, payload)`` with ``vectors[PASSAGE]`` and, for hybrid, ``vectors[LABELS]``
        (rows) and ``vectors[BM25]`` (anything with ``indices`` and ``values``, or an ``(indices, values)`` pair)."""
        ids: list[str] = []
        dense: list[Any] = []
        prefs: list[Any] = []
        means: list[Any] = []
        rows: list[Any] = []
        starts: list[int] = []
        keys: list[frozenset[str]] = []
        postings: dict[int, tuple[list[int], list[float]]] = {}
        has_labels = True
        for i, (pid, vectors, payload) in enumerate(points):
            ids.append(str(pid))
            dense.append(vectors[PASSAGE])
            if vectors.get(PREF) is not None:
                prefs.append(vectors[PREF])
            if vectors.get(LABEL_MEAN) is not None:
                means.append(vectors[LABEL_MEAN])
            lab = vectors.get(LABELS)
            if lab is None or len(lab) == 0:
                has_labels = False
            else:
                starts.append(len(rows))
                rows.extend(lab)
            sparse = vectors.get(BM25)
            if sparse is not None:
                idx, val = (sparse.indices, sparse.values) if hasattr(sparse, "indices") else sparse
                for t, v in zip(idx, val):
                    p = postings.setdefault(int(t), ([], []))
                    p[0].append(i)
                    p[1].append(float(v))
            keys.append(frozenset(payload.get(LABEL_KEYS_FIELD) or ()))
        n = len(ids)
        ix = cls(ids, unit_rows(np.asarray(dense, dtype=np.float32).reshape(n, -1)), keys=keys)
        if n and len(prefs) == n:
            ix.pref = unit_rows(np.asarray(prefs, dtype=np.float32))
        if n and len(means) == n:
            ix.label_mean = unit_rows(np.asarray(means, dtype=np.float32))
        if has_labels and n:
            ix.label_rows = unit_rows(np.asarray(rows, dtype=np.float32))
            ix.label_start = np.asarray(starts, dtype=np.int64)
        ix._terms = {t: (np.asarray(a, np.int64), np.asarray(v, np.float32)) for t, (a, v) in postings.items()}
        ix._idf = {t: idf([len(a)], n)[0] for t, (a, _) in ix._terms.items()}
        return ix

    def representation_scores(self, representation: str, query: np.ndarray | None = None,
                              terms: SparseTerms | None = None) -> np.ndarray:
        """Score of every point for one representation; NaN where BM25 shares no term with the query."""
        if representation == PASSAGE:
            return self.passage @ unit_rows(np.asarray(query, np.float32).reshape(1, -1))[0]
        if representation in (PREF, LABEL_MEAN):
            m = self.pref if representation == PREF else self.label_mean
            if m is None:
                raise ValueError(f"the collection has no {representation} representation")
            return m @ unit_rows(np.asarray(query, np.float32).reshape(1, -1))[0]
        if representation == LABELS:
            if self.label_rows is None or self.label_start is None:
                raise ValueError("the collection has no labels representation")
            s = self.label_rows @ unit_rows(np.asarray(query, np.float32).reshape(1, -1))[0]
            return np.maximum.reduceat(s, self.label_start)
        if representation == BM25:
            out = np.full(len(self.ids), np.nan, np.float32)
            for t in dict.fromkeys(terms.indices if terms is not None else ()):
                if t in self._terms:
                    a, v = self._terms[t]
                    out[a] = np.where(np.isnan(out[a]), 0, out[a]) + self._idf[t] * v
            return out
        raise ValueError(f"unknown representation {representation!r}: use one of {PASSAGE}, {PREF}, {LABELS}, "
                         f"{LABEL_MEAN}, {BM25}")

    def _top(self, scores: np.ndarray, mask: np.ndarray | None, limit: int) -> list[int]:
        ok = ~np.isnan(scores)
        if mask is not None:
            ok &= mask
        cand = np.nonzero(ok)[0]
        order = np.lexsort((cand, -scores[cand].astype(np.float64)))
        return cand[order[:limit]].tolist()

    def search(self, mode: str, query: np.ndarray, query_text: str = "", *, bm25: Bm25Terms | None = None,
               mask: np.ndarray | None = None, limit: int = 10, fusion: FusionParams = HYBRID_FUSION) -> list[RefHit]:
        """The hits of one query in ``mode``, best first, as the engine ranks them (ties by id).

        ``bm25`` builds the query's terms (hybrid); ``mask`` selects the points the filter keeps.
        """
        mode = check_mode(mode)
        cos = self.representation_scores(PASSAGE, query)
        if mode == DENSE:
            return [RefHit(self.ids[i], float(cos[i]), float(cos[i])) for i in self._top(cos, mask, limit)]
        terms = bm25.query(query_text) if bm25 is not None else None
        lab = self.representation_scores(LABELS, query) if self.label_rows is not None else cos
        per_rep = {PASSAGE: cos, BM25: self.representation_scores(BM25, terms=terms)}
        if self.label_rows is not None:
            per_rep[LABELS] = lab
        if self.pref is not None:
            per_rep[PREF] = self.representation_scores(PREF, query)
        if self.label_mean is not None:
            per_rep[LABEL_MEAN] = self.representation_scores(LABEL_MEAN, query)
        L = fusion.prefetch_limit
        top = {r: self._top(per_rep[r], mask, L) for r in per_rep if r != LABELS}
        for r in set(fusion.labels_candidates) | set(fusion.representations):
            if r != LABELS and r not in top:
                raise ValueError(f"the collection has no {r} representation that the fusion needs")
        if LABELS in fusion.representations:
            if self.label_rows is None:
                raise ValueError("the collection has no labels representation that the fusion needs")
            cand = None
            if fusion.labels_candidates:  # the labels leg rescores the union of its candidate legs
                cand = np.zeros(len(self.ids), bool)
                for r in fusion.labels_candidates:
                    cand[top[r]] = True
            top[LABELS] = self._top(lab, cand if mask is None else (mask if cand is None else cand & mask), L)
        rankings = [[str(i) for i in top[r]] for r in fusion.representations]
        fused = {int(i): s for i, s in rrf_fuse(rankings, fusion.k, fusion.weights).items()}
        if fusion.promote_exact and query_text:
            key = label_key(query_text)
            for i, ks in enumerate(self.keys):
                if key in ks and (mask is None or mask[i]):
                    fused[i] = float(np.float32(fused.get(i, 0.0)) + np.float32(PROMOTION_BOOST))
        order = sorted(fused, key=lambda i: (-fused[i], self.ids[i]))[:limit]
        return [RefHit(self.ids[i], fused[i], display_score(float(cos[i]), float(lab[i]))) for i in order]
