"""Labelled sets in memory: queries with the concept URIs that count as right answers, and the label index.

A labelled set is read from a file by :mod:`search.evaluation.reading` or built from ESCO itself by
:mod:`search.evaluation.building`; :class:`LabelIndex` resolves ESCO labels to concept URIs through one
scroll of a collection's payloads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import InvalidQuery
from search.schema import Field
from search.stores import Store

__all__ = ["LabelledSetError", "LabelledQuery", "LabelledSet", "LabelIndex", "fold_label", "is_uri"]

_URI = re.compile(r"^https?://\S+$")


def is_uri(text: str) -> bool:
    """True when ``text`` looks like a concept URI (``http(s)://`` and no blank)."""
    return bool(_URI.match(text))


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
        merged_rows: rows whose query text an earlier row had: their skills were added to that query's.
        info: anything else worth reporting (how a built set was sampled, ...).
    """

    name: str
    queries: list[LabelledQuery]
    source: str = ""
    resolved_by_alt_label: list[dict[str, Any]] = field(default_factory=list)
    ambiguous_labels: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    dropped_queries: int = 0
    merged_rows: int = 0
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
            "merged_rows": self.merged_rows,
            "unresolved": len(self.unresolved),
            "unresolved_examples": self.unresolved[:examples],
            "resolved_by_alt_label": len(self.resolved_by_alt_label),
            "resolved_by_alt_label_examples": self.resolved_by_alt_label[:examples],
            "ambiguous_labels": len(self.ambiguous_labels),
            "ambiguous_label_examples": self.ambiguous_labels[:examples],
            **({"info": {k: v for k, v in self.info.items() if k != "preferred_labels"}} if self.info else {}),
        }


def fold_label(text: str) -> str:
    """A label as compared: blanks collapsed, case folded."""
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
                preferred.setdefault(fold_label(pref), set()).add(uri)
            for a in alts:
                if a.strip():
                    alt.setdefault(fold_label(a), set()).add(uri)
        langs = tuple(sorted({r[1] for r in recs}))
        return cls(uris, preferred, alt, recs, langs)

    def resolve(self, label: str) -> tuple[set[str], str]:
        """The URIs a label names and how: ``uri``, ``preferred``, ``alt`` or ``unresolved``."""
        label = label.strip()
        if is_uri(label):
            return ({label}, "uri") if label in self.uris else (set(), "unresolved")
        key = fold_label(label)
        if key in self.preferred:
            return set(self.preferred[key]), "preferred"
        if key in self.alt:
            return set(self.alt[key]), "alt"
        return set(), "unresolved"
