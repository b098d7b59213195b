"""CSV tables of an ESCO release, and the cleaning of their cells.

:class:`Table` maps a header by column name and yields rows with the line each starts on; every problem
(encoding, a broken quote, a missing column, a short row) is an :class:`~ingest.errors.EscoFormatError`
naming the file, line and column. Text cells are cleaned by the one rule of :mod:`search.text`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence

from ingest.errors import EscoFormatError
from ingest.esco.files import Entry
from search.text import clean_text
from search.text import clean_text_flagged as _clean

__all__ = ["Table", "Cleaner", "uri_cell", "split_labels"]

_LABEL_SEP = " | "

_FIELD_LIMIT = 2**31 - 1  # some ESCO cells (conceptSchemes' hasTopConcept) exceed csv's default 128 KiB


def _raise_field_limit() -> None:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


class Table:
    """One CSV file: header mapped by name, rows yielded with the line each starts on."""

    def __init__(self, entry: Entry, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        _raise_field_limit()
        self.entry = entry
        self.file = entry.display
        data = entry.read_bytes()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        head = data[:200]
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 8 and head.count(b"\x00") * 3 > len(head)):
            raise EscoFormatError(
                "looks like UTF-16 (NUL bytes between the characters); ESCO CSV files are UTF-8: "
                "download the file again or re-save it as UTF-8", file=self.file, line=1,
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self._decode_error(data, e) from None
        self._reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(self._reader, None)
        except csv.Error as e:
            raise EscoFormatError(f"unreadable CSV header ({e})", file=self.file, line=1) from None
        if not header or not any(h.strip() for h in header):
            raise EscoFormatError("the file is empty: no CSV header", file=self.file, line=1)
        self.header = [h.strip().lstrip("\ufeff") for h in header]
        self.width = len(self.header)
        index: dict[str, int] = {}
        for i, h in enumerate(self.header):
            index.setdefault(h, i)
        self.cols: dict[str, int] = {}
        for col in required:
            if col not in index:
                raise EscoFormatError(
                    f"required column {col!r} not found; columns found: {', '.join(self.header)}",
                    file=self.file, line=1, column=col,
                )
            self.cols[col] = index[col]
        for col in optional:
            if col in index:
                self.cols[col] = index[col]

    def _decode_error(self, data: bytes, e: UnicodeDecodeError) -> EscoFormatError:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        column = None
        try:  # which CSV column: parse the valid text before the bad byte
            rows = list(csv.reader(io.StringIO(data[: e.start].decode("utf-8"), newline="")))
            if rows and len(rows) > 1:
                header = [h.strip() for h in rows[0]]
                pos = max(len(rows[-1]) - 1, 0)
                column = header[pos] if pos < len(header) else None
        except (csv.Error, UnicodeDecodeError):
            pass
        return EscoFormatError(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} at byte {e.start - line_start + 1} of the line); "
            "ESCO CSV files are UTF-8: download the file again or re-save it as UTF-8",
            file=self.file, line=line, column=column,
        )

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Data rows, each with the line it starts on; blank lines skipped, short or long rows refused."""
        reader = self._reader
        width = self.width
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise EscoFormatError(
                    f"malformed CSV ({e}); the record starts on line {start}: the file may be truncated or a "
                    "quote is not closed",
                    file=self.file, line=reader.line_num,
                ) from None
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    start = reader.line_num + 1
                    continue  # blank line
                raise EscoFormatError(
                    f"expected {width} fields as in the header, found {len(row)}; the file may be "
                    "truncated or a quote is not closed",
                    file=self.file, line=start,
                )
            yield start, row
            start = reader.line_num + 1


def uri_cell(s: str) -> str:
    """A URI cell: stripped; cleaned like text when it holds anything unusual."""
    s = s.strip()
    return s if s.isascii() and s.isprintable() else clean_text(s)


def _split_labels(cell: str) -> tuple[list[str], int, bool]:
    """Labels of a cell, how many repeats were dropped, and whether invisible characters were removed."""
    out: list[str] = []
    seen: set[str] = set()
    dropped = 0
    any_removed = False
    if not cell:
        return out, 0, False
    for line in cell.splitlines():
        line, removed = _clean(line)
        any_removed |= removed
        if not line:
            continue
        for part in line.split(_LABEL_SEP) if _LABEL_SEP in line else (line,):
            if not part:
                continue
            if part in seen:
                dropped += 1
                continue
            seen.add(part)
            out.append(part)
    return out, dropped, any_removed


def split_labels(cell: str) -> list[str]:
    """A label-list cell as cleaned labels: newline-separated (``skills_<lang>.csv``) or ``' | '``-separated
    (collection files); empty labels dropped, repeats dropped (case-sensitive), first order kept."""
    return _split_labels(cell)[0]


class Cleaner:
    """clean_text that counts the cells it removed invisible characters from."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def __call__(self, s: str) -> str:
        t, removed = _clean(s)
        if removed:
            self.counts["invisible_chars_removed"] += 1
        return t

    def labels(self, cell: str) -> tuple[list[str], int]:
        """A label-list cell as cleaned labels, and how many repeats were dropped."""
        labels, dropped, removed = _split_labels(cell)
        if removed:
            self.counts["invisible_chars_removed"] += 1
        return labels, dropped
