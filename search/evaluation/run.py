"""One evaluation run: a labelled set through the collection and against the exact reference, chunk by chunk.

:func:`evaluate` pins the collection the alias serves when it starts (an alias switched during the run
changes nothing: the report and a stored threshold name the collection that was measured), searches each
chunk of queries with ``SkillSearch.search_batch`` (the path services take), ranks the same query vectors
exactly over the stored vectors (encoded once: the searcher's own vectors are reused), and keeps only
running sums and the top hits the calibration needs, so memory stays flat however many queries there are.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from search import hybrid
from search.errors import ConfigError, InvalidQuery
from search.evaluation.calibration import calibrate
from search.evaluation.exact import FILTER_KEYS, ExactIndex, dedupe
from search.evaluation.fused import FusedReference
from search.evaluation.labelled import LabelledSet, LabelledSetError
from search.evaluation.report import EvalReport, metric_ratio, now
from search.metrics import ir_metrics
from search.filters import clean_query
from search.service import SkillSearch

__all__ = ["evaluate", "evaluate_modes", "pinned_searcher"]


class _RecordingEncoder:
    """The searcher's encoder, keeping the query vectors it returns (by text) so the exact side reuses them."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._taken: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        t0 = time.perf_counter()
        vecs = self._inner.encode_queries(texts)
        self.seconds += time.perf_counter() - t0
        self._taken.update(zip(texts, np.asarray(vecs)))
        return vecs

    def take(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` (as the searcher cleaned them) recorded since the last call, in that order
        (the searcher may encode them in another: ``search_batch`` groups texts of similar length)."""
        taken, self._taken = self._taken, {}
        cleaned = [clean_query(t) for t in texts]
        missing = [t for t, c in zip(texts, cleaned) if c not in taken]
        if missing:
            raise RuntimeError(f"the searcher encoded no query vector for {len(missing)} of {len(texts)} queries "
                               f"(first: {missing[0][:60]!r})")
        return np.stack([taken[c] for c in cleaned])


def pinned_searcher(searcher: SkillSearch, encoder: Any = None) -> tuple[SkillSearch, str]:
    """A searcher over the collection ``searcher``'s alias serves now (its store and encoder, not reopened).

    Returns:
        The pinned searcher (closing it leaves the store open) and the collection's name.

    Raises:
        CollectionNotFound: neither an alias nor a collection of that name exists.
    """
    resolved = searcher.store.resolve_alias(searcher.collection) or searcher.collection
    settings = searcher.settings.model_copy(update={"collection": resolved})
    return SkillSearch(settings, encoder=encoder or searcher.encoder, store=searcher.store), resolved


def _first_rank(ranking: Sequence[str], rel: frozenset[str]) -> int | None:
    return next((i + 1 for i, uri in enumerate(ranking) if uri in rel), None)


class _Sums:
    """Metric means over chunks, weighted by the chunk's queries."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.n = 0

    def add(self, rankings: Sequence[Sequence[str]], relevant: Sequence[frozenset[str]]) -> None:
        m = ir_metrics(rankings, relevant)
        for key, value in m.items():
            self.total[key] = self.total.get(key, 0.0) + value * len(rankings)
        self.n += len(rankings)

    def means(self) -> dict[str, float]:
        return {key: value / self.n for key, value in self.total.items()}


def _modes(searcher: SkillSearch, modes: Sequence[str]) -> list[str]:
    if isinstance(modes, str) or not modes:
        raise InvalidQuery(f"modes is a list of search modes ({', '.join(hybrid.MODES)}), got {modes!r}")
    out = []
    for m in modes:
        try:
            m = hybrid.check_mode(m)
        except ValueError as exc:
            raise InvalidQuery(str(exc).replace("(ESCO_SEARCH_MODE or mode=)", "(--mode)")) from None
        if m not in out:
            out.append(m)
    return out


def _default_mode(searcher: SkillSearch, meta: dict[str, Any], collection: str) -> str:
    """The mode a call without ``mode=`` gets: the searcher's own rule where it has modes, else dense."""
    if not _takes_mode(searcher):
        return hybrid.DENSE
    from search.modes import resolve_mode  # the searcher's layer, with its modes

    return resolve_mode(None, getattr(searcher.settings, "search_mode", None), meta, collection)


def _takes_mode(searcher: SkillSearch) -> bool:
    return "mode" in inspect.signature(searcher.search_batch).parameters


class _Mode:
    """What one mode accumulates over the chunks."""

    def __init__(self, mode: str, reference: Any) -> None:
        self.mode = mode
        self.reference = reference
        self.index, self.exact = _Sums(), _Sums()
        self.cal_hits: list[list[tuple[str, float]]] = []
        self.shares: list[float] = []
        self.per_query: list[dict[str, Any]] = []
        self.t_index = self.t_exact = 0.0

    def exact_rankings(self, vecs: np.ndarray, texts: Sequence[str], limit: int) -> list[list[str]]:
        if isinstance(self.reference, ExactIndex):
            return [[u for u, _ in h] for h in self.reference.iter_rankings(vecs, limit)]
        return [[u for u, _ in h] for h in self.reference.iter_rankings(self.mode, vecs, texts, limit)]


def evaluate(searcher: SkillSearch, labelled: LabelledSet, *, mode: str = hybrid.DENSE, **kwargs: Any) -> EvalReport:
    """Evaluate a labelled set in one search ``mode``: :func:`evaluate_modes` with one mode.

    Example: ``evaluate(searcher, labelled, limit=100, skill_type="knowledge")``.
    """
    return evaluate_modes(searcher, labelled, modes=(mode,), **kwargs)[0]


def evaluate_modes(
    searcher: SkillSearch,
    labelled: LabelledSet,
    *,
    modes: Sequence[str] | None = (hybrid.DENSE,),
    limit: int = 100,
    exact: bool = True,
    calibration_k: int = 10,
    target_precision: float = 0.9,
    step: float = 0.005,
    batch_size: int = 256,
    progress: bool = False,
    **filters: Any,
) -> list[EvalReport]:
    """Evaluate a labelled set through the collection, against an exact reference, in one or several modes.

    The collection the searcher's alias serves at the start is pinned and used throughout. Every query
    is searched with ``search_batch`` (the path services take) in each mode, with the threshold disabled
    (-1.0), ``limit`` hits, one hit per concept and the given filters, ``batch_size`` queries a call. With
    ``exact``, the same query vectors (those the searcher encoded: nothing is encoded twice) are also
    ranked by brute force over the collection's stored vectors: :class:`ExactIndex` for ``dense``,
    :class:`~search.evaluation.fused.FusedReference` (the numpy fusion of :mod:`search.hybrid`) for the
    fused modes, so index/exact is 1.000 on an exact store in every mode. A searcher over another store
    and encoder is built with ``SkillSearch(settings, store=store, encoder=encoder)``.

    Args:
        searcher: the searcher (its store, collection and encoder are used).
        labelled: the queries and their relevant concept URIs.
        modes: the search modes (``dense``, ``hybrid``), one report each, in this order; None: the one a
            search without ``mode=`` gets (``ESCO_SEARCH_MODE``, else the best mode the collection was built for).
        limit: hits per query (100 covers ``map@100``).
        exact: also compute the exact reference and the index/exact ratio.
        calibration_k: hits per query the threshold calibration considers (a service's ``limit``).
        target_precision: precision the ``target`` threshold must reach.
        step: spacing of the calibration thresholds.
        batch_size: queries per search request (and per chunk of exact scoring).
        progress: show a progress bar.
        **filters: the filters of :meth:`SkillSearch.search` (``skill_type``, ``reuse_level``,
            ``occupation``, ``relation``, ``skill_group``, ``collection``, ``language``, ``status``).

    Raises:
        InvalidQuery, InvalidFilter: a bad query, limit, mode or filter; ConfigError: a mode the collection
        was not built for (the message says how to re-ingest); CollectionNotFound, QdrantUnavailable.
    """
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise TypeError(f"unknown filter arguments: {', '.join(sorted(unknown))}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidQuery(f"batch_size must be a positive integer, got {batch_size!r}")
    filters = {k: v for k, v in filters.items() if v is not None and not (k == "relation" and v == "any")}
    if not labelled.queries:
        raise LabelledSetError("the labelled set holds no query", file=labelled.source or None)
    recorder = _RecordingEncoder(searcher.encoder)
    pinned, resolved = pinned_searcher(searcher, encoder=recorder)
    meta = pinned.info()
    names = _modes(searcher, modes) if modes is not None else [_default_mode(pinned, meta, resolved)]
    for m in names:
        refusal = hybrid.mode_refusal(m, meta, resolved)
        if refusal:
            raise ConfigError(refusal)
    if not _takes_mode(pinned) and names != [hybrid.DENSE]:
        raise ConfigError(f"this searcher has no search modes (mode=): only 'dense' can be evaluated, not "
                          f"{', '.join(m for m in names if m != hybrid.DENSE)}")
    languages = list(meta.get("languages") or [])
    queries = [clean_query(q.query) for q in labelled.queries]
    relevant = [q.relevant for q in labelled.queries]
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    runs = []
    for m in names:
        ref: Any = None
        if exact and m == hybrid.DENSE:
            ref = ExactIndex.from_store(pinned.store, resolved, filters=filters, languages_available=languages)
        elif exact:
            ref = FusedReference.from_store(pinned.store, resolved, meta, filters=filters,
                                            languages_available=languages)
        runs.append(_Mode(m, ref))
    t_load = time.perf_counter() - t0
    with_mode = _takes_mode(pinned)
    for start in tqdm(range(0, len(queries), batch_size), disable=not progress, desc="evaluate", unit="batch"):
        chunk, rel = queries[start:start + batch_size], relevant[start:start + batch_size]
        vecs: np.ndarray | None = None
        for run in runs:
            t1 = time.perf_counter()
            kw: dict[str, Any] = {"mode": run.mode} if with_mode else {}
            found = pinned.search_batch(chunk, limit=limit, threshold=-1.0, one_per_concept=True, **kw, **filters)
            run.t_index += time.perf_counter() - t1
            got = recorder.take(chunk)
            vecs = got if vecs is None else vecs  # the same texts: the first mode's vectors serve every mode
            _score_chunk(run, found, vecs, chunk, rel, labelled.queries[start:start + batch_size], limit,
                         calibration_k)
    reports = []
    for run in runs:
        index_metrics = run.index.means()
        exact_metrics = run.exact.means() if run.reference is not None else None
        cal = calibrate(run.cal_hits, relevant, k=calibration_k, step=step, target_precision=target_precision)
        reports.append(EvalReport(
            collection=searcher.collection, resolved=resolved,
            n_queries=len(queries), limit=limit, filters=dict(filters),
            index=index_metrics, exact=exact_metrics,
            ratio=metric_ratio(index_metrics, exact_metrics) if exact_metrics is not None else None,
            overlap_at_10=float(np.mean(run.shares)) if run.shares else None, calibration=cal,
            labelled=labelled.summary(), model=str(meta.get("model", "")),
            esco_version=str(meta.get("esco_version", "")), languages=languages,
            seconds={"index": round(run.t_index, 3), "encode": round(recorder.seconds, 3),
                     "exact": round(run.t_exact + t_load, 3), "exact_load": round(t_load, 3)},
            per_query=run.per_query, created_at=now(), mode=run.mode,
        ))
    return reports


def _score_chunk(run: _Mode, found: list, vecs: np.ndarray, chunk: list[str], rel: list[frozenset[str]],
                 labelled: Sequence[Any], limit: int, calibration_k: int) -> None:
    hits = [dedupe(((h.concept_uri, h.score) for h in hs), limit) for hs in found]
    index_rank = [[u for u, _ in h] for h in hits]
    run.index.add(index_rank, rel)
    run.cal_hits.extend(h[:calibration_k] for h in hits)
    exact_rank: list[list[str]] | None = None
    if run.reference is not None:
        t2 = time.perf_counter()
        exact_rank = run.exact_rankings(vecs, chunk, limit)
        run.t_exact += time.perf_counter() - t2
        run.exact.add(exact_rank, rel)
        for a, b in zip(index_rank, exact_rank):
            ref = set(b[:10])
            if ref:
                run.shares.append(len(ref & set(a[:10])) / len(ref))
    for i, hs in enumerate(found):
        q = labelled[i]
        top = hs[0] if hs else None
        run.per_query.append({
            "line": q.line, "query": q.query, "relevant": sorted(q.relevant),
            "rank": _first_rank(index_rank[i], q.relevant),
            "exact_rank": _first_rank(exact_rank[i], q.relevant) if exact_rank is not None else None,
            "top_uri": top.concept_uri if top else "", "top_label": top.preferred_label if top else "",
            "top_score": round(top.score, 6) if top else 0.0,
        })
