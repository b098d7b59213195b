"""Evaluation of title search: labelled title -> occupation sets (JSONL), a development set built from ESCO's
own alternative labels, and the comparison of the served search with an exact (numpy brute-force) search.

The exact reference applies the same rules as :func:`~search.occupations.title.search_occupations` (exact
labels first, then the rest by cosine or, in hybrid mode, by the fusion that
:class:`~search.hybrid_reference.ExactIndex` computes in numpy, one hit per occupation when several languages
are searched) over every vector of the collection, so that on the embedded store the ratio of each metric is
1.000.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search import hybrid
from search.errors import InvalidQuery
from search.filters import clean_query, values_of
from search.hybrid import label_key
from search.hybrid_reference import ExactIndex
from search.metrics import ir_metrics
from search.modes import bm25_terms
from search.occupations.index import OccupationSearcher, OccupationState, occupation_state
from search.occupations.schema import OCCUPATION_FUSION, OccField
from search.occupations.title import exact_label_matches, occupation_filter, search_occupations, title_mode

__all__ = ["TitleQuery", "read_title_set", "dev_title_set", "ExactTitleIndex", "evaluate_titles"]


@dataclass(frozen=True)
class TitleQuery:
    """One labelled title: the occupations that are right for it."""

    query: str
    relevant: frozenset[str]
    language: str | None = None


def read_title_set(path: str | Path) -> list[TitleQuery]:
    """A JSONL file of ``{"query": "<title>", "relevant": ["<occupation URI>", ...]}`` (``"title"`` and
    ``"occupations"`` are accepted too; ``relevant`` may be one URI; an optional ``"language"``).

    Raises:
        InvalidQuery: naming the file and line of a bad row.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidQuery(f"cannot read the labelled title set {p}: {e}") from e
    out: list[TitleQuery] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidQuery(f"{p}, line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InvalidQuery(f"{p}, line {n}: expected an object with \"query\" and \"relevant\"")
        q = row.get("query", row.get("title"))
        rel = row.get("relevant", row.get("occupations"))
        rel = [rel] if isinstance(rel, str) else rel
        if not isinstance(q, str) or not q.strip():
            raise InvalidQuery(f"{p}, line {n}: \"query\" must be a non-empty string")
        if not isinstance(rel, list) or not rel or not all(isinstance(u, str) and u.startswith("http") for u in rel):
            raise InvalidQuery(f"{p}, line {n}: \"relevant\" must list occupation URIs")
        lang = row.get("language")
        out.append(TitleQuery(q.strip(), frozenset(rel), lang if isinstance(lang, str) else None))
    if not out:
        raise InvalidQuery(f"{p}: no labelled titles in the file")
    return out


def dev_title_set(searcher: OccupationSearcher, language: str | Iterable[str] | None = None,
                  limit: int | None = None) -> list[TitleQuery]:
    """ESCO's alternative labels of occupations as titles: each distinct alternative label (per language) is a
    query whose relevant occupations are all those that have it as a label. Sorted; ``limit`` keeps the first N."""
    st = occupation_state(searcher)
    langs = set(values_of("language", language)) or set(st.index.languages)
    out: dict[tuple[str, str], TitleQuery] = {}
    for (uri, lang, key), text in st.index.label_texts.items():
        if lang not in langs or (lang, key) in out:
            continue
        kinds = st.index.keys[key][uri]
        if (lang, "alternative") not in kinds:
            continue
        rel = frozenset(u for u, where in st.index.keys[key].items() if any(lg == lang for lg, _k in where))
        out[(lang, key)] = TitleQuery(text, rel, lang)
    rows = [out[k] for k in sorted(out)]
    return rows[:limit] if limit is not None else rows


class ExactTitleIndex:
    """Every vector of the occupations collection in numpy: the brute-force reference of title search, in the
    mode the served search takes (``mode`` as :func:`~search.occupations.title.title_mode` resolves it)."""

    def __init__(self, searcher: OccupationSearcher, mode: str | None = None) -> None:
        self.searcher = searcher
        self.state: OccupationState = occupation_state(searcher)
        self.mode = title_mode(searcher, self.state, mode)
        assert searcher.store is not None
        pts = list(searcher.store.scroll(self.state.target, with_vectors=True,
                                         with_payload=[OccField.CONCEPT_URI, OccField.LANGUAGE, OccField.ISCO_GROUPS]))
        self.fused = (ExactIndex.from_points((p.id, p.vectors or {}, {}) for p in pts)
                      if self.mode == hybrid.HYBRID else None)
        m = np.asarray([p.vector for p in pts], dtype=np.float32)
        self.matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        self.uris = [p.payload[OccField.CONCEPT_URI] for p in pts]
        self.langs = np.asarray([p.payload[OccField.LANGUAGE] for p in pts])
        self.groups = [set(p.payload.get(OccField.ISCO_GROUPS) or ()) for p in pts]

    def search(self, title: str, vector: Sequence[float], *, limit: int = 10, threshold: float | None = None,
               isco_group: str | Iterable[str] | None = None, language: str | Iterable[str] | None = None,
               exact_labels: bool = True) -> list[tuple[str, str, float, bool]]:
        """``(uri, language, score, label matched)`` best first, by the rules of the served title search."""
        ix = self.state.index
        flt = occupation_filter(isco_group=isco_group, language=language, languages_available=ix.languages)
        langs = values_of("language", language)
        group = len(ix.languages) > 1 and len(langs) != 1
        codes = next((set(c.values) for c in flt.must if c.field == OccField.ISCO_GROUPS), None)
        q = np.asarray(vector, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        scores = self.matrix @ q
        ok = np.ones(len(self.uris), bool)
        if langs:
            ok &= np.isin(self.langs, list(langs))
        if codes is not None:
            ok &= np.asarray([bool(codes & g) for g in self.groups])
        if self.fused is not None:
            return self._fused(clean_query(title), q, scores, ok, langs, group, flt, limit, threshold, exact_labels)
        best: dict[tuple[str, str], tuple[float, str]] = {}
        for i in np.flatnonzero(ok):
            key = (self.uris[i], "" if group else str(self.langs[i]))
            s = float(scores[i])
            if key not in best or s > best[key][0]:
                best[key] = (s, str(self.langs[i]))
        matched = exact_label_matches(ix, label_key(clean_query(title)), langs, flt) if exact_labels else {}
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        top = [(k[0], lang, s, True) for k, (s, lang) in ranked if k[0] in matched]
        rest = [(k[0], lang, s, False) for k, (s, lang) in ranked
                if k[0] not in matched and (threshold is None or s >= threshold)]
        return (top + rest)[:limit]


    def _fused(self, title: str, q: np.ndarray, cos: np.ndarray, ok: np.ndarray, langs: tuple[str, ...], group: bool,
               flt: Any, limit: int, threshold: float | None, exact_labels: bool) -> list[tuple[str, str, float, bool]]:
        """The hybrid rules: the exact labels' occupations in fused order under their own filter, then the
        fused top ``limit`` (plus as many as matched), below ``threshold`` (on the passage's cosine ``cos``)
        dropped, the matched ones skipped."""
        assert self.fused is not None
        terms = bm25_terms(self.state.meta, langs[0] if len(langs) == 1 else None)
        pos = {pid: i for i, pid in enumerate(self.fused.ids)}

        def ranked(mask: np.ndarray, n: int, thr: float | None) -> list[tuple[str, str, float]]:
            hits = self.fused.search(hybrid.HYBRID, q, title, bm25=terms, mask=mask,  # type: ignore[union-attr]
                                     limit=len(pos) if group else n, fusion=OCCUPATION_FUSION)
            out: list[tuple[str, str, float]] = []
            seen: set[str] = set()
            for h in hits:
                i = pos[h.id]
                if group and self.uris[i] in seen:
                    continue
                seen.add(self.uris[i])
                out.append((self.uris[i], str(self.langs[i]), float(cos[i])))
                if len(out) == n:
                    break
            return [x for x in out if thr is None or x[2] >= thr]

        ix = self.state.index
        matched = exact_label_matches(ix, label_key(title), langs, flt) if exact_labels else {}
        top: list[tuple[str, str, float, bool]] = []
        if matched:
            n = sum(len(v) for v in matched.values())
            mask = ok & np.isin(np.asarray(self.uris, dtype=object), list(matched))
            top = [(u, lang, s, True) for u, lang, s in ranked(mask, n, None)]
        done = {(u, "" if group else lang) for u, lang, _s, _m in top}
        rest = [(u, lang, s, False) for u, lang, s in ranked(ok, limit + len(top) if top else limit, threshold)
                if (u, "" if group else lang) not in done]
        return (top + rest)[:limit]


def evaluate_titles(searcher: OccupationSearcher, queries: Sequence[TitleQuery], *, k: int = 10,
                    exact_labels: bool = True, language: str | Iterable[str] | None = None,
                    mode: str | None = None) -> dict[str, Any]:
    """Ranking metrics of the served title search (``index``) and of the exact reference (``exact``) on the
    labelled titles, their ratio per metric (index / exact; 1.000 on the embedded store), and the share of
    queries whose top-``k`` occupations are the same in both."""
    if not queries:
        raise InvalidQuery("no labelled titles to evaluate")
    ref = ExactTitleIndex(searcher, mode)
    vectors = searcher.encoder.encode_queries([clean_query(q.query) for q in queries])
    index_runs, exact_runs, same = [], [], 0
    for q, v in zip(queries, vectors):
        lang = language if language is not None else q.language
        hits = search_occupations(searcher, q.query, limit=k, language=lang, exact_labels=exact_labels,
                                  vector=v.tolist(), mode=ref.mode)
        got = [h.concept_uri for h in hits]
        want = [u for u, _l, _s, _m in ref.search(q.query, v, limit=k, language=lang, exact_labels=exact_labels)]
        index_runs.append(got)
        exact_runs.append(want)
        same += got == want
    rel = [set(q.relevant) for q in queries]
    m_index = ir_metrics(index_runs, rel)
    m_exact = ir_metrics(exact_runs, rel)
    ratio = {name: (m_index[name] / m_exact[name] if m_exact[name] else None) for name in m_exact}
    return {"target": "occupations", "mode": ref.mode, "queries": len(queries), "k": k, "exact_labels": exact_labels,
            "collection": ref.state.target, "index": m_index, "exact": m_exact, "ratio": ratio,
            "same_top_k": same / len(queries)}
