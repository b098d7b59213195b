"""Reading labelled sets from files: JSONL with concept URIs, or CSV/TSV whose ESCO labels are resolved.

:func:`read_labelled` reads and checks a file (no store needed, so a malformed line fails before any model
loads); :func:`load_labelled` resolves what it read against a :class:`~search.evaluation.labelled.LabelIndex`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from search.evaluation.labelled import LabelIndex, LabelledQuery, LabelledSet, LabelledSetError, is_uri

logger = logging.getLogger(__name__)

__all__ = ["LabelledRows", "read_labelled", "load_labelled"]

_SEPARATORS = re.compile(r"[|;]")


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

    Rows with the same query text are one query whose relevant skills are the union of theirs (sets with a
    row per labelled span, like the job-ad sets, repeat a sentence once per span); they are counted in
    :attr:`LabelledSet.merged_rows`.

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
    merged: dict[str, tuple[int, set[str]]] = {}  # query text -> (first line, relevant URIs), in file order
    for line, query, labels in read.rows:
        rel: set[str] = set()
        for label in labels:
            if index is None:
                if not is_uri(label):
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
        if query in merged:  # one row per labelled span (the job-ad sets): the query's skills are the union
            merged[query][1].update(rel)
            out.merged_rows += 1
        else:
            merged[query] = (line, rel)
    for query, (line, rel) in merged.items():
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
