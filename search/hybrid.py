"""Hybrid retrieval: the representations of a skill point, its BM25 terms and exact-label keys, and the fusion
parameters (design and figures: ``docs/hybrid.md``; the numpy reference: :mod:`search.hybrid_reference`).

A point (one per skill and language) carries four named vectors and a keyword payload field:

* ``passage`` (dense): ``passage: <preferred label>: <description>``, today's trained form;
* ``pref`` (dense): the preferred label, ``query: <label>`` (labels are short, like queries);
* ``labels`` (multivector, MaxSim): the first :data:`MAX_LABEL_ROWS` distinct labels (:func:`label_rows`: the
  preferred label, then alternatives), ``query: <label>``;
* ``bm25`` (sparse, the engine's IDF modifier): BM25 weights of every label by Qdrant's own tokenizer;
* ``label_keys``: :func:`label_key` of every label, for exact-label promotion.

Modes: ``dense`` (the passage alone, today's search) and ``hybrid`` (one Query API request: a prefetch per
representation under the same filter, weighted RRF in the engine, exact label matches first; ``score``
stays a cosine, :func:`display_score`). Imports numpy, ``search.text`` and ``search.schema`` only;
``qdrant_edge.Bm25`` (client-side, no model) is imported when the first BM25 vector is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from search.schema import text_hash
from search.text import clean_text

__all__ = [
    "DENSE", "HYBRID", "MODES", "DEFAULT_MODE",
    "PASSAGE", "PREF", "LABELS", "LABEL_MEAN", "BM25", "LABEL_KEYS_FIELD", "REPRESENTATIONS", "LABELS_PROMPT",
    "FusionParams", "HYBRID_FUSION", "PROMOTION_BOOST",
    "check_mode", "missing_representations", "mode_refusal",
    "label_key", "skill_labels", "label_rows", "MAX_LABEL_ROWS", "label_keys", "bm25_document",
    "SparseTerms", "Bm25Terms", "bm25_language", "bm25_metadata", "query_bm25", "idf",
    "representation_hash", "rrf_position_score", "rrf_fuse", "display_score", "unit_rows",
]

# --- modes and representations ------------------------------------------------------------------------
DENSE: Final = "dense"
HYBRID: Final = "hybrid"
MODES: Final[tuple[str, ...]] = (DENSE, HYBRID)
DEFAULT_MODE: Final = HYBRID

PASSAGE: Final = "passage"  # named dense vector: the trained passage
PREF: Final = "pref"  # named dense vector: the preferred label (LABELS_PROMPT)
LABELS: Final = "labels"  # named multivector (MaxSim): one row per distinct label
LABEL_MEAN: Final = "label_mean"  # named dense vector: the normalised mean of the label rows (occupations)
BM25: Final = "bm25"  # named sparse vector (Modifier.IDF): BM25 weights of the labels
LABEL_KEYS_FIELD: Final = "label_keys"  # keyword payload: label_key() of every label
# The prompt of the label rows: labels are short like queries, and "query: " beat "passage: " (docs/hybrid.md).
LABELS_PROMPT: Final = "query: "

# What each mode needs the collection to hold.
REPRESENTATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    DENSE: (PASSAGE,),
    HYBRID: (PASSAGE, PREF, LABELS, BM25),
}


@dataclass(frozen=True)
class FusionParams:
    """How the engine fuses the prefetches of a hybrid query.

    ``weights`` are in the order of ``representations``; the fused score of a point is Qdrant's weighted RRF
    ``sum_r 1 / ((position_r + 1) / weight_r + k - 1)`` over the representations whose top ``prefetch_limit``
    hold it (position from 0; with weight 1 that is ``1 / (position + k)``, the paper's RRF with its constant
    ``k - 1``). ``labels_candidates``: the ``labels`` leg rescores (MaxSim) only the union of these legs' top
    ``prefetch_limit`` instead of scanning every point's label rows (a full MaxSim scan is ~40x a dense scan on
    the edge store); empty: full scan. ``promote_exact``: skills with a label equal to the query come first.
    """

    representations: tuple[str, ...] = (PASSAGE, LABELS, BM25)
    # The passage and BM25 legs' candidates (not the pref leg's too): as good on every set and one dense scan
    # less, 1.3 ms of the engine's 4.4 ms (docs/hybrid.md)
    labels_candidates: tuple[str, ...] = (PASSAGE, BM25)
    k: int = 10  # Qdrant k (the paper's 9): 5..20 hold on every set, 60 loses on courses and alt labels
    # Equal in effect (docs/hybrid.md: no weighting wins on every set); the steps of 0.001 only order points
    # whose equal-weight sums would tie (a swap of positions between legs), passage first: the engine orders
    # tied fused scores differently from one process to the next, and the reference could not follow it.
    weights: tuple[float, ...] = (1.0, 0.999, 0.998)
    prefetch_limit: int = 100
    promote_exact: bool = True

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.representations):
            raise ValueError(f"{len(self.weights)} weights for {len(self.representations)} representations")
        if self.k < 1:
            raise ValueError(f"RRF k must be >= 1 (Qdrant's minimum), got {self.k}")
        if any(w <= 0 for w in self.weights):
            raise ValueError(f"RRF weights must be > 0, got {self.weights}")
        if LABELS in self.labels_candidates:
            raise ValueError("the labels leg cannot be its own candidate leg")
        if self.prefetch_limit < 1:
            raise ValueError(f"prefetch_limit must be >= 1, got {self.prefetch_limit}")

    def as_dict(self) -> dict[str, Any]:
        return {"method": "rrf", "representations": list(self.representations),
                "labels_candidates": list(self.labels_candidates), "k": self.k,
                "weights": list(self.weights), "prefetch_limit": self.prefetch_limit,
                "promote_exact": self.promote_exact}


HYBRID_FUSION: Final = FusionParams()
# Added to the fused score of a skill whose label_keys hold the query's key: above any RRF sum (< 1 per
# representation), so promoted skills come first and keep their fused order among themselves.
PROMOTION_BOOST: Final = 1000.0


def check_mode(mode: object) -> str:
    """The mode name, validated; raises ValueError naming the valid modes."""
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)} (ESCO_SEARCH_MODE or mode=)")
    return mode.strip().lower()


def missing_representations(mode: str, metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The representations ``mode`` needs that the collection's metadata does not record.

    A collection written before hybrid search records none: it has the passage vector only.
    """
    have = set((metadata.get("representations") or {PASSAGE: {}}).keys())
    return tuple(r for r in REPRESENTATIONS[check_mode(mode)] if r not in have)


def mode_refusal(mode: str, metadata: Mapping[str, Any], collection: str) -> str | None:
    """Why ``collection`` cannot be searched in ``mode`` (a message naming the fix), or None when it can."""
    missing = missing_representations(mode, metadata)
    if not missing:
        return None
    return (f"collection {collection!r} was built without the {', '.join(missing)} representation"
            f"{'s' if len(missing) > 1 else ''} that search mode {mode!r} needs: search with mode='dense' "
            f"(ESCO_SEARCH_MODE=dense, --mode dense), or re-ingest the release with this version "
            f"(`esco-ingest run ...`) to write every representation")


# --- labels ---------------------------------------------------------------------------------------------
def label_key(text: str) -> str:
    """The exact-match key of a label or a query: the passages' cleaning rule (:func:`clean_text`), casefolded."""
    return clean_text(text).casefold()


def skill_labels(preferred: str, alternatives: Iterable[str] = (), hidden: Iterable[str] = ()) -> list[str]:
    """The distinct labels of a skill (cleaned), preferred first: one row each in the ``labels`` multivector."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in (preferred, *alternatives, *hidden):
        text = clean_text(raw)
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


# Label rows encoded per skill (the labels multivector): the first three distinct labels. Three or four rows score
# within noise of every label on job-ad sentences, course texts and held-out alt labels, and encode 40 % of the
# rows (7.2 labels a skill on average): the hybrid ingest stays under 2x the dense one (docs/hybrid.md). BM25 and
# the exact-label keys keep every label: they cost no encoding.
MAX_LABEL_ROWS: Final = 3


def label_rows(labels: Sequence[str]) -> list[str]:
    """The labels encoded as rows of the ``labels`` multivector: the first :data:`MAX_LABEL_ROWS` of
    :func:`skill_labels` (the preferred label, then alternatives in ESCO's order; hidden labels come last)."""
    return list(labels[:MAX_LABEL_ROWS])


def label_keys(labels: Iterable[str]) -> list[str]:
    """The ``label_keys`` payload of a skill: :func:`label_key` of each label, distinct, in order."""
    return list(dict.fromkeys(k for k in map(label_key, labels) if k))


def bm25_document(labels: Sequence[str]) -> str:
    """The text BM25 indexes for a skill: its labels, joined (the description did not help: docs/hybrid.md)."""
    return " ; ".join(labels)


# --- BM25 -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SparseTerms:
    """A sparse vector: term ids (hashes) and weights, as the stores take them."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.indices)


# ESCO language -> Snowball stemmer/stopword language of Qdrant's BM25; other languages are lowercased and
# tokenized (multilingual tokenizer) without stemming or stopwords.
_BM25_LANGUAGES: Final = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english", "es": "spanish",
    "fi": "finnish", "fr": "french", "hu": "hungarian", "it": "italian", "nl": "dutch", "no": "norwegian",
    "pt": "portuguese", "ro": "romanian", "sv": "swedish",
}
# BM25's average document length: a constant (distinct terms per English label document of v1.1.1), not
# re-measured per release, so a point's BM25 vector changes only when its labels do.
DEFAULT_AVG_LEN: Final = 7.3
TIE_BREAK: Final = 1e-4  # relative spread of BM25 weights across points (Bm25Terms.document)
BM25_K: Final = 1.2
BM25_B: Final = 0.75


def bm25_language(language: str) -> str | None:
    """The stemmer language of Qdrant's BM25 for an ESCO language code, or None (no stemming)."""
    return _BM25_LANGUAGES.get(language)


class Bm25Terms:
    """BM25 sparse vectors of documents and queries in one language, by Qdrant's client-side ``Bm25``.

    Documents get BM25 term-frequency weights (``k``, ``b``, ``avg_len``); queries weight each distinct term
    1.0; the store multiplies by IDF (``Modifier.IDF``), so a query scores ``sum idf(t) * w_doc(t)``.
    Term ids are hashes of the stemmed tokens: the searcher must build queries with the configuration the
    ingest recorded (:meth:`describe`).
    """

    def __init__(self, language: str = "en", avg_len: float = DEFAULT_AVG_LEN,
                 k: float = BM25_K, b: float = BM25_B) -> None:
        if not avg_len > 0:
            raise ValueError(f"avg_len must be > 0, got {avg_len!r}")
        import qdrant_edge as qe  # the engine's tokenizer; no model download

        self.language = language
        self.avg_len = float(avg_len)
        self.k = float(k)
        self.b = float(b)
        stem = bm25_language(language)
        if stem is not None:
            config = qe.Bm25Config(k=self.k, b=self.b, avg_len=self.avg_len, language=stem)
        else:
            config = qe.Bm25Config(k=self.k, b=self.b, avg_len=self.avg_len, tokenizer=qe.TokenizerType.Multilingual,
                                   stemmer=qe.DisabledStemmer(), stopwords=qe.StopwordsSet(custom=set()))
        self._model = qe.Bm25(config)

    def document(self, text: str, tie_break: str = "") -> SparseTerms:
        """The BM25 vector of a skill's :func:`bm25_document`.

        ``tie_break`` (the point id): scales the weights by ``1 + 1e-4 * u`` with ``u`` in [0, 1) from a hash of
        it. Skills with the same label words would tie on BM25 and the engine orders ties arbitrarily; with this
        they never tie, the scores move by at most 0.01 %, and the numpy reference ranks exactly like the engine.
        """
        sv = self._model.embed_document(clean_text(text))
        scale = np.float32(1.0 + TIE_BREAK * _unit_hash(tie_break)) if tie_break else np.float32(1.0)
        return SparseTerms(tuple(int(i) for i in sv.indices), tuple(float(np.float32(v) * scale) for v in sv.values))

    def query(self, text: str) -> SparseTerms:
        """The BM25 vector of a query (may be empty: only stopwords)."""
        sv = self._model.embed_query(clean_text(text))
        return SparseTerms(tuple(int(i) for i in sv.indices), tuple(float(v) for v in sv.values))

    def token_count(self, text: str) -> int:
        """Distinct terms of a text, to measure a release's average document length."""
        return len(self._model.embed_query(clean_text(text)).indices)

    def describe(self) -> dict[str, Any]:
        """What the collection's metadata records, and the searcher checks, about these term vectors."""
        return {"tokenizer": "qdrant_edge.Bm25", "language": self.language, "stemmer": bm25_language(self.language),
                "k": self.k, "b": self.b, "avg_len": self.avg_len,
                "probe": list(self.query("Repairing bicycles and managing C++ projects").indices)}


def bm25_metadata(languages: Sequence[str], avg_len: float = DEFAULT_AVG_LEN) -> dict[str, Any]:
    """What ingest records as ``metadata["representations"]["bm25"]``: the tokenizer of each language."""
    per = {lang: Bm25Terms(lang, avg_len) for lang in languages}
    return {"kind": "sparse", "modifier": "idf", "tokenizer": "qdrant_edge.Bm25", "avg_len": float(avg_len),
            "k": BM25_K, "b": BM25_B,
            "languages": {lang: {"stemmer": t.describe()["stemmer"], "probe": t.describe()["probe"]}
                          for lang, t in per.items()}}


def query_bm25(metadata: Mapping[str, Any], language: str | None = None) -> Bm25Terms:
    """The tokenizer of a query's BM25 terms, as the collection's metadata records it.

    ``language``: the search's language (its filter when it names one language); default the collection's
    first language. Raises ValueError when the language is not in the collection, or when this version's
    tokenizer hashes terms differently from the one that wrote it (re-ingest).
    """
    spec = (metadata.get("representations") or {}).get(BM25)
    if not spec:
        raise ValueError("the collection has no bm25 representation: re-ingest it, or search with mode='dense'")
    langs = spec.get("languages") or {}
    lang = language or next(iter(langs), "en")
    if lang not in langs:
        raise ValueError(f"the collection has BM25 terms for {', '.join(langs) or 'no language'}, not {lang!r}")
    terms = Bm25Terms(lang, float(spec.get("avg_len", DEFAULT_AVG_LEN)), float(spec.get("k", BM25_K)),
                      float(spec.get("b", BM25_B)))
    if list(langs[lang].get("probe") or []) != terms.describe()["probe"]:
        raise ValueError(f"the BM25 tokenizer of this version (qdrant-edge-py) hashes terms differently from the one "
                         f"that wrote the collection: re-ingest it, or search with mode='dense'")
    return terms


def idf(df: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    """Qdrant's IDF modifier: ``ln(1 + (n - df + 0.5) / (df + 0.5))`` over ``n`` points with the vector."""
    d = np.asarray(df, dtype=np.float64)
    return np.log1p((n - d + 0.5) / (d + 0.5)).astype(np.float32)


# --- text hashes ------------------------------------------------------------------------------------------
def representation_hash(model_key: str, representation: str, texts: Sequence[str], prompt: str = "") -> str:
    """Content hash of one representation of a point: re-encode it only when this changes.

    ``texts``: the passage (one text), the labels (one per row) or the BM25 document; for ``bm25`` pass the
    tokenizer's :meth:`Bm25Terms.describe` (without avg_len) as ``model_key``.
    """
    return text_hash(f"{model_key}|{representation}", prompt, "\x1f".join(texts))


# --- the numpy reference ------------------------------------------------------------------------------------
def rrf_position_score(position: int, k: int, weight: float = 1.0) -> float:
    """Qdrant's weighted RRF term of a point at ``position`` (from 0): ``1 / ((position + 1) / weight + k - 1)``."""
    if weight <= 0:
        return 0.0
    return float(np.float32(1.0) / (np.float32(position + 1) / np.float32(weight) + np.float32(k) - np.float32(1.0)))


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int, weights: Sequence[float] | None = None) -> dict[str, float]:
    """Fused RRF score of every id in any ranking (best first each), summed in float32 as the engine does."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    out: dict[str, np.float32] = {}
    for ranking, w in zip(rankings, weights):
        for pos, pid in enumerate(ranking):
            out[pid] = np.float32(out.get(pid, np.float32(0.0)) + np.float32(rrf_position_score(pos, k, w)))
    return {pid: float(s) for pid, s in out.items()}


def display_score(passage_cosine: float, labels_cosine: float | None) -> float:
    """The ``score`` of a hybrid hit: the best cosine of the query with the passage and with any label."""
    return float(passage_cosine if labels_cosine is None else max(passage_cosine, labels_cosine))


def _unit_hash(text: str) -> float:
    """A number in [0, 1) from a text, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") / 2.0**64


def unit_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), float32."""
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return (a / np.where(n == 0, 1, n)).astype(np.float32)
