"""The searcher that services import: text in, ESCO skills out."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from search.encoders import Encoder, SentenceTransformerEncoder, load_encoder
from search.errors import CollectionNotFound, InvalidFilter, InvalidQuery
from search.schema import COLLECTIONS, REUSE_LEVELS, SKILL_TYPES, STATUSES, Field
from search.settings import SearchSettings
from search.stores import Condition, Filter, ScoredPoint, Store, open_store
from search.text import clean_text

logger = logging.getLogger(__name__)

__all__ = ["SkillSearch", "SkillHit", "build_filter", "clean_query"]

MAX_LIMIT = 1000
# Queries longer than this many characters are cut before tokenizing: the model reads 512 tokens at most,
# and no tokenizer pass over a megabyte of text is needed to learn that.
MAX_QUERY_CHARS = 20_000
_URI = re.compile(r"^https?://\S+$")


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
        d = asdict(self)
        d["alt_labels"] = list(self.alt_labels)
        d["collections"] = list(self.collections)
        return d


def clean_query(text: object, max_chars: int = MAX_QUERY_CHARS) -> str:
    """Validate and tidy a query: a non-blank string, cleaned by the rule of stored passages (:func:`clean_text`).

    Raises:
        InvalidQuery: not a string, or empty once cleaned.
    """
    if not isinstance(text, str):
        raise InvalidQuery(f"a query must be a string, got {type(text).__name__}: {text!r:.80}")
    if len(text) > max_chars:
        logger.warning("query of %d characters cut to %d before encoding (the model reads at most 512 tokens)",
                       len(text), max_chars)
        text = text[:max_chars]
    text = clean_text(text)[:max_chars]  # NFC can lengthen a text
    if not text:
        raise InvalidQuery("the query is empty or blank: give a text to search for, e.g. 'repair bicycles'")
    return text


def _values(field: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        vals: tuple[object, ...] = (value,)
    elif isinstance(value, (list, tuple, set, frozenset)):
        vals = tuple(value)
    else:
        raise InvalidFilter(field, value, hint="give a string or a list of strings")
    for v in vals:
        if not isinstance(v, str) or not v.strip():
            raise InvalidFilter(field, v, hint="filter values are non-empty strings")
    return tuple(str(v).strip() for v in vals)


def _check_choice(field: str, vals: tuple[str, ...], valid: Sequence[str]) -> None:
    for v in vals:
        if v not in valid:
            raise InvalidFilter(field, v, list(valid))


def _check_uris(field: str, vals: tuple[str, ...], kind: str) -> None:
    for v in vals:
        if not _URI.match(v) or f"/esco/{kind}" not in v and "/esco/isced-f" not in v:
            raise InvalidFilter(
                field, v,
                hint=f"expected ESCO URIs like http://data.europa.eu/esco/{kind}/<uuid> (`esco-search` prints them)",
            )


def build_filter(
    *,
    skill_type: str | Iterable[str] | None = None,
    reuse_level: str | Iterable[str] | None = None,
    occupation: str | Iterable[str] | None = None,
    relation: str = "any",
    skill_group: str | Iterable[str] | None = None,
    collection: str | Iterable[str] | None = None,
    language: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    languages_available: Sequence[str] | None = None,
) -> Filter:
    """The store filter for the given criteria; several values of one criterion mean any of them.

    Raises:
        InvalidFilter: a value outside the valid ones (the message lists them).
    """
    conds: list[Condition] = []
    st = _values("skill_type", skill_type)
    _check_choice("skill_type", st, SKILL_TYPES)
    rl = _values("reuse_level", reuse_level)
    _check_choice("reuse_level", rl, REUSE_LEVELS)
    if relation not in ("essential", "optional", "any"):
        raise InvalidFilter("relation", relation, ["essential", "optional", "any"])
    occ = _values("occupation", occupation)
    _check_uris("occupation", occ, "occupation")
    grp = _values("skill_group", skill_group)
    _check_uris("skill_group", grp, "skill")
    col = _values("collection", collection)
    _check_choice("collection", col, COLLECTIONS)
    lang = _values("language", language)
    if languages_available is not None:
        _check_choice("language", lang, list(languages_available))
    stat = _values("status", status)
    _check_choice("status", stat, STATUSES)
    occ_field = {"essential": Field.ESSENTIAL_FOR, "optional": Field.OPTIONAL_FOR, "any": Field.OCCUPATIONS}[relation]
    for fld, vals in (
        (Field.SKILL_TYPE, st), (Field.REUSE_LEVEL, rl), (occ_field, occ), (Field.SKILL_GROUPS, grp),
        (Field.COLLECTIONS, col), (Field.LANGUAGE, lang), (Field.STATUS, stat),
    ):
        if vals:
            conds.append(Condition(fld, vals))
    return Filter(tuple(conds))


class SkillSearch:
    """Search ESCO skills by meaning, with filters and a score threshold.

    Loads the model once; safe to share between threads. Build it from settings (read from ``ESCO_*``
    environment variables by default) or pass an encoder and a store you already have.

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
    ) -> None:
        self.settings = settings or SearchSettings()
        self._own_store = store is None
        self.store = store or open_store(self.settings)
        self.collection = self.settings.collection
        self.encoder: Encoder = encoder or load_encoder(self.settings)
        self._meta: dict[str, Any] = {}
        self._meta_at = 0.0
        self._meta_ttl = metadata_ttl
        self._meta_lock = threading.Lock()
        try:
            self._metadata(force=True)
        except BaseException:
            self.close()
            raise

    # --- collection metadata ---------------------------------------------------------------------
    def _metadata(self, force: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if force or now - self._meta_at > self._meta_ttl:
            with self._meta_lock:
                meta = self.store.get_metadata(self.collection)
                if isinstance(self.encoder, SentenceTransformerEncoder):
                    self.encoder.check_compatible(meta, self.collection)
                elif meta.get("vector_size") not in (None, self.encoder.dimension):
                    from search.errors import EncoderMismatch

                    raise EncoderMismatch(
                        f"collection {self.collection!r} holds {meta.get('vector_size')}-d vectors of model "
                        f"{meta.get('model')!r}; the encoder {self.encoder.model_name!r} makes {self.encoder.dimension}-d"
                    )
                self._meta, self._meta_at = meta, now
        return self._meta

    @property
    def languages(self) -> list[str]:
        """Languages indexed in the collection."""
        return list(self._metadata().get("languages") or [])

    @property
    def default_threshold(self) -> float | None:
        """The threshold used when a call gives none: the setting, else the collection's calibrated one."""
        if self.settings.score_threshold is not None:
            return self.settings.score_threshold
        t = self._metadata().get("score_threshold")
        return float(t) if t is not None else None

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

        Raises:
            InvalidQuery, InvalidFilter, CollectionNotFound, QdrantUnavailable.
        """
        return self.search_batch(
            [text], limit=limit, threshold=threshold, skill_type=skill_type, reuse_level=reuse_level,
            occupation=occupation, relation=relation, skill_group=skill_group, collection=collection,
            language=language, status=status, one_per_concept=one_per_concept,
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
    ) -> list[list[SkillHit]]:
        """Several queries in one call: encoded together and sent as one batch request.

        Same arguments as :meth:`search`; returns one list of hits per text, identical to single calls.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidQuery("search_batch takes a list of texts; use search() for one text")
        queries = [clean_query(t) for t in texts]
        if not queries:
            return []
        lim = self._check_limit(self.settings.limit if limit is None else limit)
        thr = self._check_threshold(self.default_threshold if threshold is None else threshold)
        meta = self._metadata()
        flt = build_filter(
            skill_type=skill_type, reuse_level=reuse_level, occupation=occupation, relation=relation,
            skill_group=skill_group, collection=collection, language=language, status=status,
            languages_available=meta.get("languages"),
        )
        if one_per_concept is None:
            langs = meta.get("languages") or []
            asked = _values("language", language)
            one_per_concept = len(langs) > 1 and len(asked) != 1
        vectors = self.encoder.encode_queries(queries)
        points = self._search([v.tolist() for v in vectors], flt, lim, thr, one_per_concept)
        return [[SkillHit.from_point(p) for p in hits] for hits in points]

    def _search(self, vectors: list[list[float]], flt: Filter, limit: int, thr: float | None,
                group: bool) -> list[list[ScoredPoint]]:
        kwargs = dict(filter=flt, limit=limit, score_threshold=thr,
                      group_by=Field.CONCEPT_URI if group else None, exact=self.settings.exact,
                      hnsw_ef=self.settings.hnsw_ef)
        try:
            return self.store.search(self.collection, vectors, **kwargs)  # type: ignore[arg-type]
        except CollectionNotFound:
            # The alias may have been switched or the collection deleted under us: look once more.
            self._metadata(force=True)
            return self.store.search(self.collection, vectors, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def _check_limit(limit: object) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        return limit

    @staticmethod
    def _check_threshold(thr: object) -> float | None:
        if thr is None:
            return None
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or math.isnan(thr) or not -1.0 <= thr <= 1.0:
            raise InvalidQuery(
                f"threshold must be a cosine score from -1 to 1 (e.g. 0.8), got {thr!r}"
            )
        return float(thr)

    # --- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store (when this searcher opened it)."""
        if self._own_store:
            self.store.close()

    def __enter__(self) -> SkillSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
