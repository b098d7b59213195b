"""Evaluation through the index, and calibrated score thresholds.

What this module measures, and how:

* :func:`ir_metrics`: accuracy, precision, recall, MRR, NDCG and MAP at k, with exactly the definitions of
  sentence-transformers' ``InformationRetrievalEvaluator`` (the evaluator behind the model card), so the
  figures can be set beside the card's.
* :func:`load_labelled` reads a labelled set (JSONL with concept URIs, or CSV/TSV whose ESCO labels are
  resolved to URIs through the collection); :func:`build_labelled_set` makes one from ESCO itself (an
  alternative label of each sampled skill as the query, the skill as the answer).
* :func:`evaluate` ranks every query twice: through the collection, by the same
  ``SkillSearch.search_batch`` call a service makes, and by an exact brute-force search over the vectors
  stored in that collection. Both give the metrics; their ratio shows what the index loses (1.000 on an
  exact store; below 1 where an approximate index misses neighbours).
* :func:`calibrate` finds the score threshold of best F1 and the lowest one reaching a target precision;
  :func:`store_threshold` writes the chosen one into the collection's metadata, where
  ``SkillSearch.default_threshold`` reads it.

Example:
    >>> from search import SkillSearch
    >>> from search.evaluation import LabelIndex, evaluate, load_labelled, write_report   # doctest: +SKIP
    >>> with SkillSearch() as s:                                                           # doctest: +SKIP
    ...     labels = LabelIndex.from_store(s.store, s.collection)
    ...     labelled = load_labelled("labelled.csv", index=labels)
    ...     report = evaluate(s, labelled, limit=100)
    ...     write_report(report, "reports/eval")
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import ConfigError, InvalidQuery
from search.metrics import (  # noqa: F401  (re-exported)
    DEFAULT_ACCURACY_AT,
    DEFAULT_MAP_AT,
    DEFAULT_MRR_AT,
    DEFAULT_NDCG_AT,
    DEFAULT_PRECISION_RECALL_AT,
    METRIC_ORDER,
    ir_metrics,
    metric_names,
)
from search.schema import Field
from search.service import build_filter, clean_query
from search.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from search.service import SkillSearch

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_CARD",
    "METRIC_ORDER",
    "LabelledSetError",
    "LabelledQuery",
    "LabelledSet",
    "LabelIndex",
    "Calibration",
    "EvalReport",
    "ir_metrics",
    "metric_names",
    "LabelledRows",
    "read_labelled",
    "load_labelled",
    "build_labelled_set",
    "write_labelled_jsonl",
    "exact_rankings",
    "evaluate",
    "calibrate",
    "plot_calibration",
    "write_report",
    "store_threshold",
]

#: What the model card of ``isy-thl/multilingual-e5-base-learning-outcome-skill-tuned`` reports
#: (InformationRetrievalEvaluator, cosine), for reference beside our figures. Its labelled set is the
#: model authors' (learning outcomes -> skills), not ours: the numbers are not expected to agree.
MODEL_CARD: dict[str, float] = {
    "accuracy@1": 0.8582,
    "accuracy@3": 0.9546,
    "accuracy@5": 0.9716,
    "accuracy@10": 0.983,
    "precision@1": 0.8582,
    "precision@3": 0.3963,
    "precision@5": 0.2556,
    "precision@10": 0.1359,
    "recall@1": 0.7239,
    "recall@3": 0.8962,
    "recall@5": 0.9324,
    "recall@10": 0.9639,
    "ndcg@5": 0.8942,
    "ndcg@10": 0.9054,
    "mrr@10": 0.9092,
    "map@100": 0.8753,
}

_URI = re.compile(r"^https?://\S+$")
_SEPARATORS = re.compile(r"[|;]")


# ======================================================================================================
# Labelled sets
# ======================================================================================================
class LabelledSetError(InvalidQuery):
    """A labelled set that cannot be read or used; names the file and, where it applies, the line."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        where = ", ".join(x for x in (self.file, f"line {line}" if line is not None else None) if x)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class LabelledQuery:
    """One query and the concept URIs that count as correct answers.

    Attributes:
        query: the query text.
        relevant: ESCO concept URIs of the relevant skills.
        line: line of the source file it came from (None when built in memory).
    """

    query: str
    relevant: frozenset[str]
    line: int | None = None


@dataclass
class LabelledSet:
    """Queries with their relevant skills, and what happened while reading them.

    Attributes:
        name: a short name (the file's name, or ``esco-alt-labels``).
        queries: the usable queries.
        source: where they came from (a path, or how they were built).
        resolved_by_alt_label: labels found among alternative labels only (not as a preferred label).
        ambiguous_labels: labels naming several skills (all of them count as relevant), with the count.
        unresolved: labels or URIs found nowhere in the collection: ``[{"line", "label"}]``.
        dropped_queries: queries left without any relevant skill (and so not evaluated).
        info: anything else worth reporting (how a built set was sampled, ...).
    """

    name: str
    queries: list[LabelledQuery]
    source: str = ""
    resolved_by_alt_label: list[dict[str, Any]] = field(default_factory=list)
    ambiguous_labels: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    dropped_queries: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)

    def summary(self, examples: int = 5) -> dict[str, Any]:
        """Counts and a few examples of what resolving the set did (for reports)."""
        return {
            "name": self.name,
            "source": self.source,
            "queries": len(self.queries),
            "dropped_queries": self.dropped_queries,
            "unresolved": len(self.unresolved),
            "unresolved_examples": self.unresolved[:examples],
            "resolved_by_alt_label": len(self.resolved_by_alt_label),
            "resolved_by_alt_label_examples": self.resolved_by_alt_label[:examples],
            "ambiguous_labels": len(self.ambiguous_labels),
            "ambiguous_label_examples": self.ambiguous_labels[:examples],
            **({"info": {k: v for k, v in self.info.items() if k != "preferred_labels"}} if self.info else {}),
        }


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class LabelIndex:
    """The labels of a collection's skills, read in one scroll: resolves labels to concept URIs.

    Attributes:
        uris: every concept URI in the collection.
        preferred: folded preferred label -> URIs.
        alt: folded alternative label -> URIs.
        records: per point ``(concept_uri, language, preferred_label, alt_labels)``, in scroll order.
        languages: languages whose labels were read.
    """

    uris: set[str]
    preferred: dict[str, set[str]]
    alt: dict[str, set[str]]
    records: list[tuple[str, str, str, tuple[str, ...]]]
    languages: tuple[str, ...] = ()

    @classmethod
    def from_store(cls, store: Store, collection: str, languages: Sequence[str] | None = None) -> LabelIndex:
        """Scroll the payloads of ``collection`` once (labels of ``languages``; default all of them)."""
        fields = [Field.CONCEPT_URI, Field.LANGUAGE, Field.PREFERRED_LABEL, Field.ALT_LABELS]
        want = set(languages) if languages else None
        records = []
        for p in store.scroll(collection, with_payload=fields):
            pl = p.payload
            lang = str(pl.get(Field.LANGUAGE, ""))
            if want is not None and lang not in want:
                continue
            records.append((
                str(pl.get(Field.CONCEPT_URI, "")), lang, str(pl.get(Field.PREFERRED_LABEL, "")),
                tuple(str(a) for a in pl.get(Field.ALT_LABELS) or ()),
            ))
        return cls.from_records(records)

    @classmethod
    def from_records(cls, records: Sequence[tuple[str, str, str, Sequence[str]]]) -> LabelIndex:
        """Build from ``(concept_uri, language, preferred_label, alt_labels)`` tuples."""
        uris: set[str] = set()
        preferred: dict[str, set[str]] = {}
        alt: dict[str, set[str]] = {}
        recs = []
        for uri, lang, pref, alts in records:
            if not uri:
                continue
            uris.add(uri)
            recs.append((uri, lang, pref, tuple(alts)))
            if pref.strip():
                preferred.setdefault(_fold(pref), set()).add(uri)
            for a in alts:
                if a.strip():
                    alt.setdefault(_fold(a), set()).add(uri)
        langs = tuple(sorted({r[1] for r in recs}))
        return cls(uris, preferred, alt, recs, langs)

    def resolve(self, label: str) -> tuple[set[str], str]:
        """The URIs a label names and how: ``uri``, ``preferred``, ``alt`` or ``unresolved``."""
        label = label.strip()
        if _URI.match(label):
            return ({label}, "uri") if label in self.uris else (set(), "unresolved")
        key = _fold(label)
        if key in self.preferred:
            return set(self.preferred[key]), "preferred"
        if key in self.alt:
            return set(self.alt[key]), "alt"
        return set(), "unresolved"


def _split_labels(cell: str) -> list[str]:
    return [p.strip() for p in _SEPARATORS.split(cell) if p.strip()]


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise LabelledSetError("no such file (give a .jsonl, .csv or .tsv labelled set)", file=path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelledSetError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from exc


@dataclass(frozen=True)
class LabelledRows:
    """A labelled set as read, before its labels are resolved: ``(line, query, labels)`` rows."""

    path: Path
    rows: list[tuple[int, str, list[str]]]


def read_labelled(
    path: str | Path, *, query_column: str | None = None, label_column: str | None = None
) -> LabelledRows:
    """Read and check a labelled set's file without resolving anything (see :func:`load_labelled`).

    Raises:
        LabelledSetError: the file is missing, unreadable or malformed (with the line), or lacks the columns.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(p, query_column or "query", label_column or "relevant")
    elif suffix in (".csv", ".tsv", ".txt"):
        rows = _csv_rows(p, "\t" if suffix == ".tsv" else None, query_column, label_column)
    else:
        raise LabelledSetError(f"unknown file type {suffix!r}: use .jsonl, .csv or .tsv", file=p)
    if not rows:
        raise LabelledSetError("the labelled set holds no query", file=p)
    return LabelledRows(p, rows)


def load_labelled(
    path: str | Path | LabelledRows,
    *,
    index: LabelIndex | None = None,
    query_column: str | None = None,
    label_column: str | None = None,
) -> LabelledSet:
    """Read a labelled set: JSONL (``.jsonl``/``.json``) or CSV/TSV (``.csv``/``.tsv``).

    * JSONL: one object a line, ``{"query": "...", "relevant": ["http://data.europa.eu/esco/skill/...", ...]}``
      (``relevant`` may also hold one string; blank lines are skipped; other keys are ignored).
    * CSV/TSV: a header row with a query column (default ``query``) and a label column (default
      ``relevant``, else ``label``); a label cell holds one or several ESCO preferred labels (or URIs)
      separated by ``|`` or ``;``. Labels are matched exactly, ignoring case and repeated blanks, against
      the preferred labels of the collection's languages, then against alternative labels (reported).

    With ``index``, URIs and labels are checked against the collection: labels or URIs found nowhere
    are reported in :attr:`LabelledSet.unresolved` and left out, and a query left with no relevant
    skill is dropped (counted in :attr:`LabelledSet.dropped_queries`); nothing is dropped silently
    (every drop is also logged as a warning).

    Args:
        path: the file, or what :func:`read_labelled` read from it.

    Raises:
        LabelledSetError: the file is missing, unreadable, malformed (with the line), lacks the columns,
            holds labels but no ``index`` was given, or no query is left.
    """
    read = path if isinstance(path, LabelledRows) else read_labelled(
        path, query_column=query_column, label_column=label_column)
    p = read.path
    out = LabelledSet(name=p.name, queries=[], source=str(p))
    for line, query, labels in read.rows:
        rel: set[str] = set()
        for label in labels:
            if index is None:
                if not _URI.match(label):
                    raise LabelledSetError(
                        f"{label!r} is a label, not a concept URI: labels need the collection to resolve them "
                        f"(pass index=LabelIndex.from_store(...))", file=p, line=line,
                    )
                rel.add(label)
                continue
            uris, how = index.resolve(label)
            if how == "unresolved":
                out.unresolved.append({"line": line, "label": label})
                continue
            if how == "alt":
                out.resolved_by_alt_label.append({"line": line, "label": label, "uris": sorted(uris)})
            if len(uris) > 1:
                out.ambiguous_labels.append({"line": line, "label": label, "uris": sorted(uris)})
            rel |= uris
        if not rel:
            out.dropped_queries += 1
            continue
        out.queries.append(LabelledQuery(query, frozenset(rel), line))
    if out.unresolved:
        ex = "; ".join(f"line {u['line']}: {u['label']!r}" for u in out.unresolved[:5])
        logger.warning("%s: %d labels or URIs not found in the collection (%s); %d queries dropped",
                       p, len(out.unresolved), ex, out.dropped_queries)
    if out.resolved_by_alt_label:
        logger.warning("%s: %d labels matched only an alternative label", p, len(out.resolved_by_alt_label))
    if not out.queries:
        hint = f"; {len(out.unresolved)} labels could not be resolved, e.g. {out.unresolved[0]['label']!r}" \
            if out.unresolved else ""
        raise LabelledSetError(f"no usable query in the labelled set{hint}", file=p)
    return out


def _jsonl_rows(p: Path, qkey: str, rkey: str) -> list[tuple[int, str, list[str]]]:
    rows = []
    for n, raw in enumerate(_read_text(p).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LabelledSetError(f"invalid JSON ({exc.msg}, column {exc.colno})", file=p, line=n) from exc
        if not isinstance(obj, dict):
            raise LabelledSetError(f"expected a JSON object like {{\"{qkey}\": ..., \"{rkey}\": [...]}}, "
                                   f"got {type(obj).__name__}", file=p, line=n)
        query = obj.get(qkey)
        if not isinstance(query, str) or not query.strip():
            raise LabelledSetError(f"{qkey!r} must be a non-empty string, got {query!r:.60}", file=p, line=n)
        rel = obj.get(rkey)
        if isinstance(rel, str):
            rel = [rel]
        if not isinstance(rel, list) or not rel or not all(isinstance(r, str) and r.strip() for r in rel):
            raise LabelledSetError(f"{rkey!r} must be a non-empty list of concept URIs, got {rel!r:.80}",
                                   file=p, line=n)
        rows.append((n, query.strip(), [r.strip() for r in rel]))
    return rows


def _csv_rows(p: Path, delimiter: str | None, qcol: str | None,
              lcol: str | None) -> list[tuple[int, str, list[str]]]:
    text = _read_text(p)
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise LabelledSetError("the file is empty (expected a header row)", file=p) from None
    except csv.Error as exc:
        raise LabelledSetError(f"malformed CSV: {exc}", file=p, line=1) from exc
    names = [h.strip() for h in header]
    folded = [h.casefold() for h in names]

    def find(wanted: Sequence[str], what: str) -> int:
        for w in wanted:
            if w.casefold() in folded:
                return folded.index(w.casefold())
        raise LabelledSetError(
            f"no {what} column {' or '.join(repr(w) for w in wanted)} in the header; columns are "
            f"{', '.join(repr(n) for n in names)} (choose with --query-column / --label-column)", file=p, line=1,
        )

    qi = find([qcol] if qcol else ["query"], "query")
    li = find([lcol] if lcol else ["relevant", "label", "labels"], "label")
    rows = []
    try:
        for row in reader:
            n = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) <= max(qi, li):
                raise LabelledSetError(
                    f"{len(row)} fields, expected {len(names)} (columns {names[qi]!r} and {names[li]!r} needed)",
                    file=p, line=n,
                )
            query, cell = row[qi].strip(), row[li]
            if not query:
                raise LabelledSetError(f"empty {names[qi]!r}", file=p, line=n)
            labels = _split_labels(cell)
            if not labels:
                raise LabelledSetError(f"no label in {names[li]!r} (separate several with | or ;)", file=p, line=n)
            rows.append((n, query, labels))
    except csv.Error as exc:
        raise LabelledSetError(f"malformed CSV: {exc}", file=p, line=reader.line_num) from exc
    return rows


def build_labelled_set(
    store: Store,
    collection: str,
    n: int = 500,
    seed: int = 0,
    language: str | None = None,
    *,
    index: LabelIndex | None = None,
) -> LabelledSet:
    """A labelled set made from ESCO itself: an alternative label of each sampled skill as the query.

    For ``n`` skills sampled (with ``seed``) among those with a usable alternative label in ``language``
    (default: ``en`` when indexed, else the collection's first language), one alternative label is the
    query and the skill's concept URI the only relevant answer. An alternative label is usable when it
    differs from the skill's preferred label (ignoring case) and names no other skill (as a preferred or
    alternative label): such a query would have several right answers.

    Raises:
        LabelledSetError: the language is not in the collection, or no skill has a usable label.
    """
    idx = index or LabelIndex.from_store(store, collection)
    langs = sorted({r[1] for r in idx.records})
    if language is None:
        language = "en" if "en" in langs else (langs[0] if langs else "en")
    if language not in langs:
        raise LabelledSetError(
            f"language {language!r} is not in collection {collection!r} (it holds {', '.join(langs) or 'nothing'})"
        )
    # Which concepts each folded label names, over the chosen language.
    names: dict[str, set[str]] = {}
    for uri, lang, pref, alts in idx.records:
        if lang != language:
            continue
        for lab in (pref, *alts):
            if lab.strip():
                names.setdefault(_fold(lab), set()).add(uri)
    candidates: list[tuple[str, str, list[str]]] = []
    ambiguous = 0
    for uri, lang, pref, alts in sorted(r for r in idx.records if r[1] == language):
        usable = []
        for a in dict.fromkeys(a.strip() for a in alts if a.strip()):
            if _fold(a) == _fold(pref):
                continue
            if names.get(_fold(a), set()) != {uri}:
                ambiguous += 1
                continue
            usable.append(a)
        if usable:
            candidates.append((uri, pref, sorted(usable)))
    if not candidates:
        raise LabelledSetError(f"no skill of collection {collection!r} in {language!r} has a usable alternative label")
    rng = random.Random(seed)
    if n >= len(candidates):
        if n > len(candidates):
            logger.warning("only %d skills have a usable alternative label; the set has %d queries, not %d",
                           len(candidates), len(candidates), n)
        chosen = list(candidates)
    else:
        chosen = rng.sample(candidates, n)
    queries = []
    for i, (uri, pref, usable) in enumerate(chosen, start=1):
        queries.append(LabelledQuery(rng.choice(usable), frozenset({uri}), i))
    skills_in_lang = len({r[0] for r in idx.records if r[1] == language})
    return LabelledSet(
        name=f"esco-alt-labels-{language}-n{len(queries)}-seed{seed}",
        queries=queries,
        source=f"collection {collection!r}, alternative labels in {language!r}",
        info={"language": language, "seed": seed, "skills": skills_in_lang,
              "skills_with_usable_alt_label": len(candidates), "alt_labels_skipped_as_ambiguous": ambiguous,
              "preferred_labels": {q.line: c[1] for q, c in zip(queries, chosen)}},
    )


def write_labelled_jsonl(labelled: LabelledSet, path: str | Path) -> Path:
    """Write a labelled set as JSONL (``{"query", "relevant", ...}``), readable by :func:`load_labelled`."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefs = labelled.info.get("preferred_labels", {})
    with out.open("w", encoding="utf-8") as f:
        for q in labelled.queries:
            obj: dict[str, Any] = {"query": q.query, "relevant": sorted(q.relevant)}
            if q.line in prefs:
                obj["preferred_label"] = prefs[q.line]
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return out


# ======================================================================================================
# Rankings: through the index, and exact
# ======================================================================================================
FILTER_KEYS = ("skill_type", "reuse_level", "occupation", "relation", "skill_group", "collection",
               "language", "status")


def _dedupe(hits: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
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


def exact_rankings(
    store: Store,
    collection: str,
    query_vectors: np.ndarray,
    *,
    filters: Mapping[str, Any] | None = None,
    languages_available: Sequence[str] | None = None,
    limit: int = 100,
    batch_size: int = 256,
) -> list[list[tuple[str, float]]]:
    """Exact (brute-force) rankings over the vectors stored in ``collection``.

    Scrolls every point with its vector once, keeps those the filter (the same :func:`build_filter`
    the searcher uses, evaluated with ``Filter.matches``) accepts, scores them by cosine (dot product of
    normalised vectors) and keeps the best point of each concept: ``limit`` ``(concept_uri, score)``
    per query, best first.
    """
    flt = build_filter(**dict(filters or {}), languages_available=languages_available)
    fields = sorted({Field.CONCEPT_URI, *(c.field for c in flt.must)})
    uris: list[str] = []
    vecs: list[list[float]] = []
    for p in store.scroll(collection, with_vectors=True, with_payload=fields):
        if p.vector is None or not flt.matches(p.payload):
            continue
        uris.append(str(p.payload.get(Field.CONCEPT_URI, "")))
        vecs.append(p.vector)
    nq = len(query_vectors)
    if not vecs:
        return [[] for _ in range(nq)]
    m = np.asarray(vecs, dtype=np.float64)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    q = np.asarray(query_vectors, dtype=np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    out: list[list[tuple[str, float]]] = []
    for start in range(0, nq, batch_size):
        scores = q[start:start + batch_size] @ m.T
        for row in scores:
            order = np.argsort(-row, kind="stable")
            out.append(_dedupe(((uris[i], float(row[i])) for i in order), limit))
    return out


# ======================================================================================================
# Calibration
# ======================================================================================================
@dataclass
class Calibration:
    """Precision, recall and F1 of "every hit scoring at least t is relevant", over thresholds t.

    Counted over all query/hit pairs within the first ``k`` hits of each query (micro-average); recall
    is relative to all relevant skills of all queries (found in the top k or not).

    Attributes:
        k: hits per query considered (the service's ``limit``).
        step: spacing of the thresholds.
        thresholds, precision, recall, f1, predicted, true_positives: one entry per threshold, ascending;
            precision is None where no hit reaches the threshold.
        total_relevant: relevant skills over all queries (the recall denominator).
        best_f1_threshold, best_f1, best_f1_precision, best_f1_recall: the threshold of best F1 (the
            lowest of equals).
        target_precision: the precision asked for.
        target_threshold, target_recall, target_f1, target_precision_reached: the lowest threshold
            whose precision reaches ``target_precision`` (None when none does).
        relevant_scores, other_scores: scores of relevant and of other hits within the top k.
    """

    k: int
    step: float
    thresholds: list[float]
    precision: list[float | None]
    recall: list[float]
    f1: list[float]
    predicted: list[int]
    true_positives: list[int]
    total_relevant: int
    best_f1_threshold: float
    best_f1: float
    best_f1_precision: float
    best_f1_recall: float
    target_precision: float
    target_threshold: float | None
    target_recall: float | None
    target_f1: float | None
    target_precision_reached: float | None
    relevant_scores: list[float]
    other_scores: list[float]

    def summary(self) -> dict[str, Any]:
        """The recommended thresholds, without the curves."""
        return {
            "k": self.k,
            "step": self.step,
            "pairs": len(self.relevant_scores) + len(self.other_scores),
            "relevant_pairs": len(self.relevant_scores),
            "total_relevant": self.total_relevant,
            "best_f1": {"threshold": self.best_f1_threshold, "f1": self.best_f1,
                        "precision": self.best_f1_precision, "recall": self.best_f1_recall},
            "target_precision": {"target": self.target_precision, "threshold": self.target_threshold,
                                 "precision": self.target_precision_reached, "recall": self.target_recall,
                                 "f1": self.target_f1},
        }

    def rows(self) -> list[dict[str, Any]]:
        """One dict per threshold (the calibration table)."""
        return [
            {"threshold": t, "predicted": n, "true_positives": tp, "precision": p, "recall": r, "f1": f}
            for t, n, tp, p, r, f in zip(self.thresholds, self.predicted, self.true_positives, self.precision,
                                         self.recall, self.f1)
        ]


def calibrate(
    rankings: Sequence[Sequence[tuple[str, float]]],
    relevant: Sequence[Iterable[str]],
    *,
    k: int = 10,
    step: float = 0.005,
    target_precision: float = 0.9,
) -> Calibration:
    """Calibrate a score threshold on ranked, scored hits.

    Args:
        rankings: per query, ``(concept_uri, score)`` best first (one per concept).
        relevant: per query, the relevant concept URIs.
        k: only the first k hits of each query count (what a service shows).
        step: threshold spacing; thresholds run over multiples of ``step`` from the lowest to the
            highest observed score.
        target_precision: the precision the ``target`` threshold must reach.

    Raises:
        ValueError: bad arguments, or no hit at all.
    """
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} relevant sets")
    if k < 1 or not step > 0 or not 0 < target_precision <= 1:
        raise ValueError("k >= 1, step > 0 and 0 < target_precision <= 1 are needed")
    rel_scores: list[float] = []
    other: list[float] = []
    total_relevant = 0
    for hits, rel in zip(rankings, relevant):
        rel = set(rel)
        total_relevant += len(rel)
        for uri, score in list(hits)[:k]:
            (rel_scores if uri in rel else other).append(float(score))
    if not rel_scores and not other:
        raise ValueError("no hit to calibrate on")
    allsc = np.asarray(rel_scores + other)
    lo = math.floor(round(float(allsc.min()) / step, 9))
    hi = math.ceil(round(float(allsc.max()) / step, 9))
    grid = [round(i * step, 10) for i in range(lo, hi + 1)]
    rs = np.sort(np.asarray(rel_scores))
    os_ = np.sort(np.asarray(other))
    precision: list[float | None] = []
    recall: list[float] = []
    f1: list[float] = []
    predicted: list[int] = []
    tps: list[int] = []
    for t in grid:
        tp = int(len(rs) - np.searchsorted(rs, t, side="left"))
        fp = int(len(os_) - np.searchsorted(os_, t, side="left"))
        n = tp + fp
        p = tp / n if n else None
        r = tp / total_relevant if total_relevant else 0.0
        f = 2 * p * r / (p + r) if p is not None and p + r > 0 else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(f)
        predicted.append(n)
        tps.append(tp)
    best = max(range(len(grid)), key=lambda i: (f1[i], -i))
    target = next((i for i in range(len(grid)) if precision[i] is not None
                   and precision[i] >= target_precision), None)  # type: ignore[operator]
    return Calibration(
        k=k, step=step, thresholds=grid, precision=precision, recall=recall, f1=f1, predicted=predicted,
        true_positives=tps, total_relevant=total_relevant,
        best_f1_threshold=grid[best], best_f1=f1[best], best_f1_precision=precision[best] or 0.0,
        best_f1_recall=recall[best], target_precision=target_precision,
        target_threshold=grid[target] if target is not None else None,
        target_recall=recall[target] if target is not None else None,
        target_f1=f1[target] if target is not None else None,
        target_precision_reached=precision[target] if target is not None else None,
        relevant_scores=rel_scores, other_scores=other,
    )


def plot_calibration(cal: Calibration, out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``score_distributions.png`` and ``threshold_curves.png`` into ``out_dir``.

    Raises:
        ConfigError: matplotlib is not installed (``pip install 'esco-skill-search[eval]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - a dev and eval dependency
        raise ConfigError("the plots need matplotlib: pip install 'esco-skill-search[eval]'") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marks = [(cal.best_f1_threshold, f"best F1 {cal.best_f1:.3f} at {cal.best_f1_threshold:.3f}", "tab:red")]
    if cal.target_threshold is not None:
        marks.append((cal.target_threshold,
                      f"precision >= {cal.target_precision:g} from {cal.target_threshold:.3f}", "tab:purple"))

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo, hi = cal.thresholds[0], cal.thresholds[-1]
    bins = np.linspace(lo, hi, max(10, min(80, len(cal.thresholds))))
    ax.hist(cal.other_scores, bins=bins, alpha=0.6, label=f"other hits ({len(cal.other_scores)})", color="tab:gray")
    ax.hist(cal.relevant_scores, bins=bins, alpha=0.7, label=f"relevant hits ({len(cal.relevant_scores)})",
            color="tab:green")
    for t, lab, col in marks:
        ax.axvline(t, color=col, linestyle="--", label=lab)
    ax.set_xlabel("cosine score")
    ax.set_ylabel(f"hits (top {cal.k} of each query)")
    ax.set_title(title or "score distributions")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p1 = out / "score_distributions.png"
    fig.savefig(p1, dpi=110)

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    prec = [np.nan if p is None else p for p in cal.precision]
    ax.plot(cal.thresholds, prec, label="precision")
    ax.plot(cal.thresholds, cal.recall, label="recall")
    ax.plot(cal.thresholds, cal.f1, label="F1")
    for t, lab, col in marks:
        ax.axvline(t, color=col, linestyle="--", label=lab)
    ax.set_xlabel("score threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"precision / recall / F1 against the threshold (top {cal.k})")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p2 = out / "threshold_curves.png"
    fig.savefig(p2, dpi=110)
    return [p1, p2]


# ======================================================================================================
# Evaluation
# ======================================================================================================
@dataclass
class EvalReport:
    """What :func:`evaluate` measured.

    Attributes:
        collection: the alias or collection searched, and ``resolved`` the collection behind it.
        index: metrics of the rankings through the collection (the service's search path).
        exact: the same metrics from an exact brute-force search over the stored vectors (None if skipped).
        ratio: index / exact for every metric (1.0 where both are 0; None where only exact is 0).
        overlap_at_10: mean share of the exact top 10 concepts that the index also returned in its top 10.
        calibration: the threshold calibration on the index rankings.
        labelled: summary of the labelled set (name, queries, unresolved labels, ...).
        limit, filters, model, esco_version, languages, seconds: how it was run.
        per_query: per query the rank of the first relevant skill (index and exact) and the top hit.
    """

    collection: str
    resolved: str | None
    n_queries: int
    limit: int
    filters: dict[str, Any]
    index: dict[str, float]
    exact: dict[str, float] | None
    ratio: dict[str, float | None] | None
    overlap_at_10: float | None
    calibration: Calibration
    labelled: dict[str, Any]
    model: str = ""
    esco_version: str = ""
    languages: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    per_query: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""

    def to_dict(self, *, curves: bool = False, per_query: bool = False) -> dict[str, Any]:
        """A JSON-able summary: metric keys as in the model card (``accuracy@1``, ``ndcg@10``, ...)."""
        d: dict[str, Any] = {
            "collection": self.collection,
            "resolved_collection": self.resolved,
            "model": self.model,
            "esco_version": self.esco_version,
            "languages": self.languages,
            "n_queries": self.n_queries,
            "limit": self.limit,
            "filters": self.filters,
            "metrics": self.index,
            "exact": self.exact,
            "ratio": self.ratio,
            "overlap_at_10": self.overlap_at_10,
            "model_card": MODEL_CARD,
            "calibration": self.calibration.summary(),
            "labelled_set": self.labelled,
            "seconds": self.seconds,
            "created_at": self.created_at,
        }
        if curves:
            d["calibration"]["table"] = self.calibration.rows()
        if per_query:
            d["per_query"] = self.per_query
        return d


def _ratio(index: Mapping[str, float], exact: Mapping[str, float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, iv in index.items():
        ev = exact.get(key)
        if ev is None:
            out[key] = None
        elif ev == 0:
            out[key] = 1.0 if iv == 0 else None
        else:
            out[key] = iv / ev
    return out


def _first_rank(ranking: Sequence[str], rel: frozenset[str]) -> int | None:
    return next((i + 1 for i, uri in enumerate(ranking) if uri in rel), None)


def evaluate(
    searcher: SkillSearch,
    labelled: LabelledSet,
    *,
    limit: int = 100,
    exact: bool = True,
    calibration_k: int = 10,
    target_precision: float = 0.9,
    step: float = 0.005,
    batch_size: int = 64,
    progress: bool = False,
    **filters: Any,
) -> EvalReport:
    """Evaluate a labelled set through the collection, against an exact reference.

    Every query is searched with ``searcher.search_batch`` (the path services take) with the threshold
    disabled (-1.0), ``limit`` hits, one hit per concept and the given filters. With ``exact``, the same
    query embeddings are also ranked by brute force over the collection's stored vectors
    (:func:`exact_rankings`). A searcher over another store and encoder is built with
    ``SkillSearch(settings, store=store, encoder=encoder)``.

    Args:
        searcher: the searcher (its store, collection and encoder are used).
        labelled: the queries and their relevant concept URIs.
        limit: hits per query (100 covers ``map@100``).
        exact: also compute the exact reference and the index/exact ratio.
        calibration_k: hits per query the threshold calibration considers (a service's ``limit``).
        target_precision: precision the ``target`` threshold must reach.
        step: spacing of the calibration thresholds.
        batch_size: queries per search request.
        progress: show a progress bar.
        **filters: the filters of :meth:`SkillSearch.search` (``skill_type``, ``reuse_level``,
            ``occupation``, ``relation``, ``skill_group``, ``collection``, ``language``, ``status``).

    Raises:
        InvalidQuery, InvalidFilter: a bad query, limit or filter; CollectionNotFound, QdrantUnavailable.
    """
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise TypeError(f"unknown filter arguments: {', '.join(sorted(unknown))}")
    filters = {k: v for k, v in filters.items() if v is not None and not (k == "relation" and v == "any")}
    if not labelled.queries:
        raise LabelledSetError("the labelled set holds no query", file=labelled.source or None)
    meta = searcher.info()
    languages = list(meta.get("languages") or [])
    queries = [clean_query(q.query) for q in labelled.queries]
    relevant = [q.relevant for q in labelled.queries]
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    index_hits: list[list[tuple[str, float]]] = []
    top: list[tuple[str, str, float]] = []
    for start in tqdm(range(0, len(queries), batch_size), disable=not progress, desc="search", unit="batch"):
        batch = queries[start:start + batch_size]
        for hits in searcher.search_batch(batch, limit=limit, threshold=-1.0, one_per_concept=True, **filters):
            index_hits.append(_dedupe(((h.concept_uri, h.score) for h in hits), limit))
            top.append((hits[0].concept_uri, hits[0].preferred_label, hits[0].score) if hits else ("", "", 0.0))
    t_index = time.perf_counter() - t0
    index_rank = [[u for u, _ in hits] for hits in index_hits]
    index_metrics = ir_metrics(index_rank, relevant)

    exact_metrics = ratio = None
    overlap = None
    exact_rank: list[list[str]] | None = None
    t_exact = 0.0
    if exact:
        t1 = time.perf_counter()
        vecs = searcher.encoder.encode_queries(queries)  # the searcher's embeddings (cached)
        ex_hits = exact_rankings(searcher.store, searcher.collection, vecs, filters=filters,
                                 languages_available=languages, limit=limit)
        t_exact = time.perf_counter() - t1
        exact_rank = [[u for u, _ in hits] for hits in ex_hits]
        exact_metrics = ir_metrics(exact_rank, relevant)
        ratio = _ratio(index_metrics, exact_metrics)
        shares = []
        for a, b in zip(index_rank, exact_rank):
            ref = set(b[:10])
            if ref:
                shares.append(len(ref & set(a[:10])) / len(ref))
        overlap = float(np.mean(shares)) if shares else None
    cal = calibrate(index_hits, relevant, k=calibration_k, step=step, target_precision=target_precision)
    per_query = []
    for i, q in enumerate(labelled.queries):
        per_query.append({
            "line": q.line, "query": q.query, "relevant": sorted(q.relevant),
            "rank": _first_rank(index_rank[i], q.relevant),
            "exact_rank": _first_rank(exact_rank[i], q.relevant) if exact_rank is not None else None,
            "top_uri": top[i][0], "top_label": top[i][1], "top_score": round(top[i][2], 6),
        })
    return EvalReport(
        collection=searcher.collection,
        resolved=searcher.store.resolve_alias(searcher.collection) or searcher.collection,
        n_queries=len(queries), limit=limit, filters={k: v for k, v in filters.items()},
        index=index_metrics, exact=exact_metrics, ratio=ratio, overlap_at_10=overlap, calibration=cal,
        labelled=labelled.summary(), model=str(meta.get("model", "")), esco_version=str(meta.get("esco_version", "")),
        languages=languages, seconds={"index": round(t_index, 3), "exact": round(t_exact, 3)},
        per_query=per_query, created_at=_now(),
    )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``calibration.csv``, ``queries.csv`` and the two plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["metrics"] = out / "metrics.json"
    paths["metrics"].write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["calibration"] = out / "calibration.csv"
    with paths["calibration"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threshold", "predicted", "true_positives", "precision", "recall", "f1"])
        for r in report.calibration.rows():
            w.writerow([f"{r['threshold']:.3f}", r["predicted"], r["true_positives"],
                        "" if r["precision"] is None else f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                        f"{r['f1']:.4f}"])
    paths["queries"] = out / "queries.csv"
    with paths["queries"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "query", "relevant", "rank", "exact_rank", "top_label", "top_score", "top_uri"])
        for q in report.per_query:
            w.writerow([q["line"], q["query"], "|".join(q["relevant"]), q["rank"] or "", q["exact_rank"] or "",
                        q["top_label"], q["top_score"], q["top_uri"]])
    title = f"{report.labelled.get('name', '')} on {report.resolved or report.collection}"
    p1, p2 = plot_calibration(report.calibration, out, title=title[:90])
    paths["score_distributions"], paths["threshold_curves"] = p1, p2
    return paths


def store_threshold(store: Store, alias: str, threshold: float, details: Mapping[str, Any] | None = None) -> str:
    """Record ``threshold`` as the collection's calibrated ``score_threshold`` (SkillSearch's default).

    Writes ``score_threshold`` and a ``calibration`` dict (``details`` plus the date) into the metadata of
    the collection ``alias`` points to (or of ``alias`` itself when it is a collection). A later ingest
    writes a new collection, which needs calibrating again.

    Returns:
        The collection whose metadata was updated.

    Raises:
        InvalidQuery: the threshold is not a cosine score in [-1, 1].
        CollectionNotFound: neither an alias nor a collection of that name exists.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold) \
            or not -1.0 <= threshold <= 1.0:
        raise InvalidQuery(f"a score threshold is a cosine score from -1 to 1, got {threshold!r}")
    target = store.resolve_alias(alias) or alias
    store.get_metadata(target)  # raises CollectionNotFound
    info = {**dict(details or {}), "threshold": float(threshold), "date": _now()}
    store.update_metadata(target, {"score_threshold": float(threshold), "calibration": info})
    return target
