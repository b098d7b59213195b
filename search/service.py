"""The searcher that services import: text in, ESCO skills out.

:class:`SkillSearch` holds one model and one store. Query validation and filters are in
:mod:`search.filters`, the hit type in :mod:`search.hits` (both re-exported here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from search.encoding import Encoder, SentenceTransformerEncoder, load_encoder
from search.errors import CollectionNotFound, EncoderMismatch, InvalidQuery
from search.filters import (
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    build_filter,
    check_limit,
    check_threshold,
    clean_query,
    values_of,
)
from search.hits import HitPayloads, SkillHit
from search.schema import Field
from search.settings import SearchSettings
from search import extraction, hybrid, occupations
from search.modes import bm25_terms, display_requests, hybrid_query, mode_threshold, resolve_mode, with_display_scores
from search.stores import Filter, Query, ScoredPoint, Store, open_store

__all__ = ["SkillSearch", "SkillHit", "build_filter", "clean_query", "MAX_LIMIT", "MAX_QUERY_CHARS"]

#: Queries of one search_batch are encoded and searched this many at a time: memory stays flat, and the
#: store's batch request stays small (a server's request limit).
BATCH_CHUNK = 256


@dataclass
class _Checked:
    """The metadata of one concrete collection, checked against the encoder at ``at``."""

    meta: dict[str, Any]
    at: float


class SkillSearch:
    """Search ESCO skills by meaning, with filters and a score threshold.

    Loads the model once; safe to share between threads. Build it from settings (read from ``ESCO_*``
    environment variables by default) or pass an encoder and a store you already have.

    The collection setting may be an alias: every call resolves it to the collection it points to (one
    ``stat`` on the embedded stores; at most every ``alias_ttl`` seconds on a server) and searches that
    collection by its own name, so a call never mixes the model check of one collection with the
    vectors of another. A collection is checked against the encoder when first met and its metadata
    re-read every ``metadata_ttl`` seconds.

    Example:
        >>> from search import SkillSearch
        >>> with SkillSearch() as s:                                  # doctest: +SKIP
        ...     hits = s.search("repair bicycles", limit=5, skill_type="skill/competence")

    Raises:
        CollectionNotFound: the collection (alias) does not exist; the message says how to ingest one.
        EncoderMismatch: the collection was written with another model, vector size or prompts.
        QdrantUnavailable, StoreLocked: the store cannot be opened.
    """

    def __init__(
        self,
        settings: SearchSettings | None = None,
        *,
        encoder: Encoder | None = None,
        store: Store | None = None,
        metadata_ttl: float = 60.0,
        alias_ttl: float | None = None,
    ) -> None:
        self.settings = settings or SearchSettings()
        self.collection = self.settings.collection
        self._own_store = store is None
        self.store: Store | None = store
        self._meta_ttl = metadata_ttl
        self._lock = threading.Lock()
        self._checked: dict[str, _Checked] = {}
        self._target: str | None = None
        self._bm25_cache: dict[tuple[str, str | None], hybrid.Bm25Terms] = {}
        self._target_at = 0.0
        self._payloads = HitPayloads(self.settings.hit_cache_size)
        try:
            # The model first: a model that fails to load leaves no store (no folder lock, no pool) open.
            self.encoder: Encoder = encoder or load_encoder(self.settings)
            if self.store is None:
                self.store = open_store(self.settings)
            self._alias_ttl = alias_ttl if alias_ttl is not None else (2.0 if self.store.kind == "server" else 0.0)
            self._metadata(force=True)
        except BaseException:
            self.close()
            raise

    # --- collection metadata ---------------------------------------------------------------------
    def _resolve(self, force: bool = False) -> str:
        """The concrete collection the setting names now (itself, or the alias's target)."""
        now = time.monotonic()
        if force or self._target is None or now - self._target_at > self._alias_ttl:
            assert self.store is not None
            target = self.store.resolve_alias(self.collection) or self.collection
            self._target, self._target_at = target, now
        return self._target

    def _check(self, name: str, meta: dict[str, Any]) -> None:
        if isinstance(self.encoder, SentenceTransformerEncoder):
            self.encoder.check_compatible(meta, name if name == self.collection else f"{self.collection} -> {name}")
        elif meta.get("vector_size") not in (None, self.encoder.dimension):
            raise EncoderMismatch(
                f"collection {name!r} holds {meta.get('vector_size')}-d vectors of model "
                f"{meta.get('model')!r}; the encoder {self.encoder.model_name!r} makes {self.encoder.dimension}-d"
            )

    def _current(self, force: bool = False) -> tuple[str, dict[str, Any]]:
        """The concrete collection to search and its metadata, checked against the encoder."""
        assert self.store is not None
        name = self._resolve(force)
        now = time.monotonic()
        entry = self._checked.get(name)
        if force or entry is None or now - entry.at > self._meta_ttl:
            with self._lock:
                try:
                    meta = self.store.get_metadata(name)
                except CollectionNotFound:
                    if name == self.collection:
                        raise
                    name = self._resolve(force=True)  # the alias moved on, and its old target is gone
                    meta = self.store.get_metadata(name)
                self._check(name, meta)
                if entry is not None and entry.meta != meta:
                    self._payloads.clear()  # the collection was rewritten under its name (not an ingest's way)
                # Keep only the collection in use: a long-lived service sees many releases.
                self._checked = {name: _Checked(meta, now)}
                entry = self._checked[name]
        return name, entry.meta

    def _metadata(self, force: bool = False) -> dict[str, Any]:
        return self._current(force)[1]

    @property
    def languages(self) -> list[str]:
        """Languages indexed in the collection."""
        return list(self._metadata().get("languages") or [])

    @property
    def default_threshold(self) -> float | None:
        """The threshold used when a call in the default mode gives none: the setting, else the collection's
        threshold calibrated for that mode (:func:`search.modes.mode_threshold`)."""
        target, meta = self._current()
        return mode_threshold(self.settings.score_threshold, meta,
                              resolve_mode(None, self.settings.search_mode, meta, target))

    def info(self) -> dict[str, Any]:
        """The collection's metadata (ESCO version, languages, model, prompts, ...), without the probe."""
        return {k: v for k, v in self._metadata().items() if k != "probe"}

    # --- searching -------------------------------------------------------------------------------
    def search(
        self,
        text: str,
        *,
        limit: int | None = None,
        threshold: float | None = None,
        skill_type: str | Iterable[str] | None = None,
        reuse_level: str | Iterable[str] | None = None,
        occupation: str | Iterable[str] | None = None,
        relation: str = "any",
        skill_group: str | Iterable[str] | None = None,
        collection: str | Iterable[str] | None = None,
        language: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        one_per_concept: bool | None = None,
        mode: str | None = None,
    ) -> list[SkillHit]:
        """The skills closest to ``text``, best first.

        Args:
            text: a learning outcome, course description, job ad or any text (encoded as ``query: <text>``).
            limit: most hits to return (default: settings.limit).
            threshold: lowest cosine score to return (default: :attr:`default_threshold`).
            skill_type: ``skill/competence`` and/or ``knowledge``.
            reuse_level: ``transversal``, ``cross-sector``, ``sector-specific``, ``occupation-specific``.
            occupation: one or several occupation URIs; ``relation`` says which link counts.
            relation: ``essential``, ``optional`` or ``any`` (either).
            skill_group: skill-group URIs; a skill matches when the group is any of its ancestors.
            collection: ESCO skill collections (``digital``, ``green``, ``transversal``, ``language``,
                ``research``, ``digcomp``).
            language: languages of the passages to match.
            status: ESCO status (``released``).
            one_per_concept: at most one hit (its best language) per skill; default: when the collection
                holds several languages and no single language is asked for.
            mode: ``dense`` (the passage vector) or ``hybrid`` (passage, labels and BM25 fused by RRF in the
                engine; a skill whose label equals the text comes first; ``score`` stays a cosine: the best of
                passage and labels). Default: settings.search_mode (ESCO_SEARCH_MODE), else hybrid where the
                collection holds every representation, dense where it holds the passage alone. A mode the
                collection lacks is refused (SearchError naming what is missing and how to re-ingest).

        Raises:
            InvalidQuery, InvalidFilter, CollectionNotFound, QdrantUnavailable, SearchError (mode).
        """
        return self.search_batch(
            [text], limit=limit, threshold=threshold, skill_type=skill_type, reuse_level=reuse_level,
            occupation=occupation, relation=relation, skill_group=skill_group, collection=collection,
            language=language, status=status, one_per_concept=one_per_concept, mode=mode,
        )[0]

    def search_batch(
        self,
        texts: Sequence[str],
        *,
        limit: int | None = None,
        threshold: float | None = None,
        skill_type: str | Iterable[str] | None = None,
        reuse_level: str | Iterable[str] | None = None,
        occupation: str | Iterable[str] | None = None,
        relation: str = "any",
        skill_group: str | Iterable[str] | None = None,
        collection: str | Iterable[str] | None = None,
        language: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        one_per_concept: bool | None = None,
        mode: str | None = None,
    ) -> list[list[SkillHit]]:
        """Several queries in one call, identical to single calls.

        Same arguments as :meth:`search`; returns one list of hits per text. The texts are encoded and
        searched :data:`BATCH_CHUNK` at a time, shortest texts first (one batch request to the store per chunk),
        so memory stays flat however long the list; the answers come in the order of ``texts``.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidQuery("search_batch takes a list of texts; use search() for one text")
        queries = [clean_query(t) for t in texts]
        if not queries:
            return []
        lim = check_limit(self.settings.limit if limit is None else limit)
        if threshold is not None:
            check_threshold(threshold)
        if occupation is not None:
            vals = [occupation] if isinstance(occupation, str) else list(occupation)
            if not all(isinstance(v, str) and occupations.is_occupation_uri(v) for v in vals):
                # Occupation names -> URIs (AmbiguousOccupation / OccupationNotFound: InvalidFilter naming candidates).
                # Without an occupations collection a name stays a bad URI: build_filter's InvalidFilter says so.
                try:
                    occupation = occupations.resolve_occupations(self, vals)
                except occupations.OccupationsNotIngested:
                    pass
        target, meta = self._current()
        flt = build_filter(
            skill_type=skill_type, reuse_level=reuse_level, occupation=occupation, relation=relation,
            skill_group=skill_group, collection=collection, language=language, status=status,
            languages_available=meta.get("languages"),
        )
        if one_per_concept is None:
            langs = meta.get("languages") or []
            asked = values_of("language", language)
            one_per_concept = len(langs) > 1 and len(asked) != 1
        chosen = resolve_mode(mode, self.settings.search_mode, meta, target)
        thr = check_threshold(mode_threshold(self.settings.score_threshold, meta, chosen)
                              if threshold is None else threshold)
        asked_langs = values_of("language", language)
        bm25 = self._bm25(target, meta, asked_langs[0] if len(asked_langs) == 1 else None) if chosen == hybrid.HYBRID else None
        # Chunks of texts of similar length (the encoder pads each batch to its longest text), answers in the
        # order asked: encoding in chunks of the texts as given cost ~10 % more than one sorted call.
        order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
        out: list[list[SkillHit]] = [[] for _ in queries]
        for start in range(0, len(order), BATCH_CHUNK):
            idx = order[start:start + BATCH_CHUNK]
            chunk = [queries[i] for i in idx]
            vectors = self.encoder.encode_queries(chunk).tolist()
            if bm25 is None:
                points, target = self._search(target, vectors, flt, lim, thr, one_per_concept)
            else:
                requests = [hybrid_query(v, t, bm25.query(t), hybrid.HYBRID_FUSION, flt, lim)
                            for v, t in zip(vectors, chunk)]
                points, target = self._hybrid(target, vectors, requests, flt, len(meta.get("languages") or ()), thr,
                                              one_per_concept)
            for i, hits in zip(idx, points):
                out[i] = [SkillHit.from_point(p) for p in hits]
        return out

    def _bm25(self, target: str, meta: dict[str, Any], language: str | None) -> hybrid.Bm25Terms:
        """The query tokenizer the collection recorded (kept per collection and language)."""
        key = (target, language)
        terms = self._bm25_cache.get(key)
        if terms is None:
            terms = bm25_terms(meta, language)
            self._bm25_cache = {k: v for k, v in self._bm25_cache.items() if k[0] == target}
            self._bm25_cache[key] = terms
        return terms

    def _on_current(self, target: str, call: Callable[[str], Any]) -> tuple[Any, str]:
        """``call(target)``; when the alias was switched and its old collection deleted under us, once more on the
        collection the alias serves now. Returns (the answer, the collection that gave it)."""
        try:
            return call(target), target
        except CollectionNotFound:
            target, _ = self._current(force=True)
            return call(target), target

    def _hybrid(self, target: str, vectors: list[list[float]], requests: list[Query], flt: Filter, languages: int,
                thr: float | None, group: bool) -> tuple[list[list[ScoredPoint]], str]:
        """The fused hits of ``requests`` with their display scores (both requests on one collection)."""
        store = self.store
        assert store is not None
        kwargs = dict(group_by=Field.CONCEPT_URI if group else None, with_payload=False,
                      exact=self.settings.exact, hnsw_ef=self.settings.hnsw_ef)

        def run(t: str) -> list[list[ScoredPoint]]:
            fused = self._payloads.fill(store, t, store.query(t, requests, **kwargs))  # type: ignore[arg-type]
            return self._display(t, vectors, fused, flt, languages, thr)

        return self._on_current(target, run)

    def _display(self, target: str, vectors: list[list[float]], fused: list[list[ScoredPoint]], flt: Filter,
                 languages: int, thr: float | None) -> list[list[ScoredPoint]]:
        """The fused hits with their display score (:func:`search.modes.with_display_scores`): one exact batch
        request scoring every text's hits (passage cosine, labels MaxSim) in the collection the hits came from."""
        assert self.store is not None
        requests = [display_requests(v, hits, flt, languages) for v, hits in zip(vectors, fused)]
        flat = [q for qs in requests for q in qs]
        answers = self.store.query(target, flat, with_payload=False, exact=True) if flat else []
        out, i = [], 0
        for hits, qs in zip(fused, requests):
            out.append(with_display_scores(hits, answers[i:i + len(qs)], thr))
            i += len(qs)
        return out

    def _search(self, target: str, vectors: list[list[float]], flt: Filter, limit: int, thr: float | None,
                group: bool) -> tuple[list[list[ScoredPoint]], str]:
        store = self.store
        assert store is not None
        kwargs = dict(filter=flt, limit=limit, score_threshold=thr,
                      group_by=Field.CONCEPT_URI if group else None, with_payload=False,
                      exact=self.settings.exact, hnsw_ef=self.settings.hnsw_ef)
        # the hits' fields from the payload cache (the store reads only those it has not seen)
        return self._on_current(
            target, lambda t: self._payloads.fill(store, t, store.search(t, vectors, **kwargs))  # type: ignore[arg-type]
        )

    # --- whole texts -----------------------------------------------------------------------------
    def extract(self, text: str, **options: Any) -> list[Any]:
        """The ESCO skills of a whole text (course description, job ad), best first, each with its evidence
        (``ExtractedSkill`` with ``Evidence``: offsets, text and score of the segments that matched): the text is
        cut into sentences and list items, all searched in one batch, and aggregated per skill. Takes every
        filter of :meth:`search` and the options of :func:`search.extraction.extract_batch`."""
        return extraction.extract_batch(self, [text], **options)[0]

    def extract_batch(self, texts: Sequence[str], **options: Any) -> list[list[Any]]:
        """:meth:`extract` for several texts: their segments in one encoder call and one store request per
        group of about 256 segments (memory stays flat); equal to single calls."""
        return extraction.extract_batch(self, texts, **options)

    # --- occupations -----------------------------------------------------------------------------
    def search_occupations(self, title: str, *, threshold: float | None = None, limit: int = 10,
                           isco_group: str | Iterable[str] | None = None,
                           language: str | Iterable[str] | None = None, mode: str | None = None) -> list[Any]:
        """ESCO occupations for a job title, best first (``OccupationHit``s): an occupation one of whose labels
        (preferred, alternative, hidden, a gendered form) equals the title comes first, the rest by the fused
        rank of passage, labels and BM25 (``mode`` hybrid, the default where the collection holds them) or by
        the passage's cosine (``dense``). The occupations collection is ``settings.occupation_collection``
        (ESCO_OCCUPATION_COLLECTION)."""
        return occupations.search_occupations(self, title, threshold=threshold, limit=limit, isco_group=isco_group,
                                              language=language, mode=mode)

    def occupations_from_skills(self, skills: Any, *, limit: int = 10, **options: Any) -> list[Any]:
        """Occupations ranked by how well ``skills`` (URIs, URI -> weight, or hits/extracted skills) cover their
        essential and optional skills, each explained (``OccupationMatch``); options of
        :func:`search.occupations.occupations_from_skills`."""
        return occupations.occupations_from_skills(self, skills, limit=limit, **options)

    # --- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store (when this searcher opened it). Idempotent."""
        if self._own_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> SkillSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
