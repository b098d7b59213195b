"""The occupations collection as a searcher sees it: which collection the alias serves, checked against the
encoder, and an in-memory :class:`OccupationIndex` of its labels and skills (loaded once per collection).

Works on any object with ``encoder``, ``store`` and ``settings`` (:class:`OccupationSearcher`), e.g.
:class:`search.SkillSearch`; never imports the searcher itself.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from search.errors import CollectionNotFound, EncoderMismatch
from search.hits import HitPayloads
from search.hybrid import PASSAGE, label_key
from search.occupations.schema import (COLLECTION_KIND, DEFAULT_OCCUPATION_ALIAS, OCCUPATION_HIT_FIELDS, OccField,
                                       occupation_labels)
from search.occupations.types import OccupationsNotIngested
from search.stores import Store

__all__ = ["OccupationSearcher", "OccupationIndex", "OccupationState", "occupation_state"]

_INDEX_FIELDS = [OccField.CONCEPT_URI, OccField.LANGUAGE, OccField.PREFERRED_LABEL, OccField.ALT_LABELS,
                 OccField.HIDDEN_LABELS, OccField.LABEL_KEYS, OccField.ESSENTIAL_SKILLS, OccField.OPTIONAL_SKILLS,
                 OccField.ESSENTIAL_SKILL_LABELS, OccField.OPTIONAL_SKILL_LABELS, OccField.ISCO_GROUP,
                 OccField.ISCO_GROUPS]


class OccupationSearcher(Protocol):
    """What occupation searches need of a searcher (:class:`search.SkillSearch` has it all)."""

    encoder: Any  # encode_queries(texts) -> ndarray; dimension; check_compatible(meta, name) where it exists
    store: Store | None
    settings: Any  # occupation_collection, exact, hnsw_ef


@dataclass
class OccupationIndex:
    """Labels and skills of every occupation in one collection, for exact-label lookups and coverage ranking.

    ``keys[label_key][uri]`` = the set of ``(language, kind)`` where the occupation has that label (kind:
    ``preferred``, ``alternative``, ``hidden``, ``gendered``). Skills are per occupation (the same in every
    language); ``skill_to_occupations[skill]`` = ``[(occupation number, essential?)]``.
    """

    uris: list[str] = field(default_factory=list)
    pos: dict[str, int] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # uri -> language -> preferred label
    keys: dict[str, dict[str, set[tuple[str, str]]]] = field(default_factory=dict)
    label_texts: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (uri, lang, key) -> label
    essential: list[tuple[str, ...]] = field(default_factory=list)
    optional: list[tuple[str, ...]] = field(default_factory=list)
    isco_groups: list[frozenset[str]] = field(default_factory=list)
    isco_group: list[str] = field(default_factory=list)
    skill_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> skill uri -> label
    skill_to_occupations: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    n_essential: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    n_optional: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    # skill -> (occupation numbers, essential flags) as arrays, and each occupation's rank by URI (ties)
    skill_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    uri_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def load(cls, store: Store, name: str) -> OccupationIndex:
        """Read the index from the collection's payloads (one scroll)."""
        ix = cls()
        inverted: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        langs: dict[str, None] = {}
        for p in store.scroll(name, with_payload=_INDEX_FIELDS):
            pl = p.payload
            uri, lang = pl.get(OccField.CONCEPT_URI, ""), pl.get(OccField.LANGUAGE, "")
            langs.setdefault(lang)
            i = ix.pos.get(uri)
            if i is None:
                i = ix.pos[uri] = len(ix.uris)
                ix.uris.append(uri)
                ess = tuple(pl.get(OccField.ESSENTIAL_SKILLS) or ())
                opt = tuple(pl.get(OccField.OPTIONAL_SKILLS) or ())
                ix.essential.append(ess)
                ix.optional.append(opt)
                for s in ess:
                    inverted[s].append((i, True))
                for s in opt:
                    inverted[s].append((i, False))
                ix.isco_groups.append(frozenset(pl.get(OccField.ISCO_GROUPS) or ()))
                ix.isco_group.append(pl.get(OccField.ISCO_GROUP, ""))
            pref = pl.get(OccField.PREFERRED_LABEL, "")
            ix.labels.setdefault(uri, {})[lang] = pref
            kinds: dict[str, str] = {}
            texts: dict[str, str] = {}
            groups = (("preferred", [pref]), ("alternative", pl.get(OccField.ALT_LABELS) or ()),
                      ("hidden", pl.get(OccField.HIDDEN_LABELS) or ()))
            for gendered in (False, True):  # a label as ESCO lists it beats the gendered form of another
                for kind, labels in groups:
                    for raw in labels:
                        for text in occupation_labels(raw)[1:] if gendered else [raw]:
                            key = label_key(text)
                            kinds.setdefault(key, "gendered" if gendered else kind)
                            texts.setdefault(key, text)
            for key in pl.get(OccField.LABEL_KEYS) or kinds.keys():
                ix.keys.setdefault(key, {}).setdefault(uri, set()).add((lang, kinds.get(key, "gendered")))
                ix.label_texts[(uri, lang, key)] = texts.get(key, key)
            sl = ix.skill_labels.setdefault(lang, {})
            for uris_f, labels_f in ((OccField.ESSENTIAL_SKILLS, OccField.ESSENTIAL_SKILL_LABELS),
                                     (OccField.OPTIONAL_SKILLS, OccField.OPTIONAL_SKILL_LABELS)):
                for s, lab in zip(pl.get(uris_f) or (), pl.get(labels_f) or ()):
                    sl.setdefault(s, lab)
        ix.languages = list(langs)
        ix.skill_to_occupations = dict(inverted)
        ix.n_essential = np.array([len(e) for e in ix.essential], np.int32)
        ix.n_optional = np.array([len(o) for o in ix.optional], np.int32)
        ix.skill_arrays = {s: (np.array([i for i, _e in rel], np.int64), np.array([e for _i, e in rel], bool))
                           for s, rel in ix.skill_to_occupations.items()}
        ix.uri_rank = np.argsort(np.argsort(np.array(ix.uris, dtype=object))).astype(np.int64)
        return ix

    def label(self, uri: str, language: str | None = None) -> str:
        """The occupation's preferred label in ``language`` (else in its first language)."""
        by_lang = self.labels.get(uri, {})
        if language and language in by_lang:
            return by_lang[language]
        return next(iter(by_lang.values()), "")

    def skill_label(self, skill: str, language: str | None) -> str:
        """A skill's label in ``language`` (else any), as the occupations collection records it."""
        for lang in ([language] if language else []) + self.languages:
            lab = self.skill_labels.get(lang, {}).get(skill)
            if lab:
                return lab
        return ""


#: Occupation points whose hit fields and passage vector a searcher keeps (3,007 occupations per language; 2.9 KiB
#: of fields each in English, and 4 bytes a dimension: 1.5 KiB with e5-small, 3 KiB with the 768-d model).
OCCUPATION_HIT_CACHE = 20_000


@dataclass
class OccupationState:
    """The collection an alias serves now, its metadata and index; ``at``: when the alias was last resolved."""

    target: str
    meta: dict[str, Any]
    index: OccupationIndex
    at: float = 0.0
    bm25: dict[str | None, Any] = field(default_factory=dict)  # hybrid: the query tokenizer per language asked
    # the hit fields and passage vector of this collection's points, read once (a served collection never changes)
    payloads: HitPayloads = field(default_factory=lambda: HitPayloads(OCCUPATION_HIT_CACHE, OCCUPATION_HIT_FIELDS,
                                                                      vector=PASSAGE))


#: Seconds an alias resolution is trusted (a switch is seen within this time; a search that meets the old
#: collection deleted resolves again at once). Resolving costs stats of the alias file on the embedded store.
ALIAS_TTL = 1.0


_STATES: weakref.WeakKeyDictionary[Any, OccupationState] = weakref.WeakKeyDictionary()
_PLAIN: dict[int, tuple[Any, OccupationState]] = {}  # searchers that take no weak reference (kept alive; few)
_LOCK = threading.Lock()


def _cached(searcher: Any) -> OccupationState | None:
    try:
        return _STATES.get(searcher)
    except TypeError:
        entry = _PLAIN.get(id(searcher))
        return entry[1] if entry is not None and entry[0] is searcher else None


def _remember(searcher: Any, state: OccupationState) -> None:
    try:
        _STATES[searcher] = state
    except TypeError:
        if len(_PLAIN) > 64:
            _PLAIN.clear()
        _PLAIN[id(searcher)] = (searcher, state)


def _alias(searcher: OccupationSearcher) -> str:
    return str(getattr(searcher.settings, "occupation_collection", None) or DEFAULT_OCCUPATION_ALIAS)


def occupation_state(searcher: OccupationSearcher, force: bool = False) -> OccupationState:
    """The occupations collection the searcher's alias serves now (re-read when the alias moves), checked
    against the searcher's encoder, with its index.

    Raises:
        OccupationsNotIngested: no such alias or collection.
        EncoderMismatch: the collection was written with another model.
    """
    store = searcher.store
    assert store is not None
    now = time.monotonic()
    state = _cached(searcher)
    if state is not None and not force and now - state.at < ALIAS_TTL:
        return state
    alias = _alias(searcher)
    target = store.resolve_alias(alias) or alias
    if state is not None and state.target == target:
        state.at = now
        return state
    with _LOCK:
        state = _cached(searcher)
        if state is not None and state.target == target:
            return state
        try:
            meta = store.get_metadata(target)
        except CollectionNotFound:
            raise OccupationsNotIngested(alias, store.describe()) from None
        if meta.get("kind") != COLLECTION_KIND:
            raise OccupationsNotIngested(alias, f"{store.describe()} ({target!r} holds no occupations: "
                                                f"kind {meta.get('kind')!r})")
        check = getattr(searcher.encoder, "check_compatible", None)
        where = target if target == alias else f"{alias} -> {target}"
        if check is not None:
            check(meta, where)
        elif meta.get("vector_size") not in (None, searcher.encoder.dimension):
            raise EncoderMismatch(f"occupations collection {where!r} holds {meta.get('vector_size')}-d vectors; "
                                  f"the encoder makes {searcher.encoder.dimension}-d")
        state = OccupationState(target, meta, OccupationIndex.load(store, target), now)
        _remember(searcher, state)
        return state
