"""Reader of official ESCO CSV releases: skills with their relations, groups and collections.

Pure: no model, no Qdrant, no network. ``read_release`` takes the zips and/or folders of one release and
returns a :class:`Release` holding one :class:`SkillRecord` per skill and language, plus a
:class:`ReadStats` counting everything it skipped or repaired.

Two layouts are read (``Release.layout``):

* ``"v1.1"`` (ESCO v1.0.x/v1.1.x): ``esco_v1.1.1_classification_<lang>_csv.zip`` with ``skills_<lang>.csv``,
  ``occupations_<lang>.csv``, ``skillGroups_<lang>.csv``, ``*SkillsCollection_<lang>.csv``, and the
  language-independent ``esco_v1.1.1_relations_csv.zip`` with ``occupationSkillRelations.csv`` and
  ``broaderRelationsSkillPillar.csv``;
* ``"v1.2"`` (ESCO v1.2.x): one zip or folder per download whose files all end with ``_<lang>.csv``,
  relation files included (those may carry extra label columns; only the needed columns are read, by
  header name).

Files are found by their base name anywhere inside the given folders and zips (also zips inside folders,
and zips whose files sit in a top-level folder). Every user-caused problem raises
:class:`~search.errors.EscoFormatError` (naming the file, and the line and column where they apply) or
:class:`~search.errors.ConfigError`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search.errors import ConfigError, EscoFormatError
from search.schema import COLLECTIONS, ESCO_LANGUAGES, REUSE_LEVELS, SKILL_TYPES
from search.text import clean_text
from search.text import clean_text_flagged as _clean

_LABEL_SEP = " | "

__all__ = [
    "SkillRecord",
    "ReadStats",
    "Release",
    "STAT_KEYS",
    "COLLECTION_FILES",
    "read_release",
    "detect_version",
    "normalize_version",
    "clean_text",
    "split_labels",
]

# --------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class SkillRecord:
    """One skill in one language, cleaned and joined with its relations.

    Tuples are sorted and de-duplicated, except the label lists (original order kept) and the ``*_labels``
    tuples (same order as the URI tuple they belong to).
    """

    concept_uri: str
    language: str
    preferred_label: str
    description: str
    alt_labels: tuple[str, ...]
    hidden_labels: tuple[str, ...]
    skill_type: str
    reuse_level: str
    status: str
    essential_for: tuple[str, ...]
    optional_for: tuple[str, ...]
    essential_for_labels: tuple[str, ...]
    optional_for_labels: tuple[str, ...]
    skill_groups: tuple[str, ...]
    skill_group_labels: tuple[str, ...]
    broader: tuple[str, ...]
    collections: tuple[str, ...]


# Every counter of ReadStats (each present, 0 when nothing happened), per language.
STAT_KEYS: tuple[str, ...] = (
    "skill_rows",  # data rows in skills_<lang>.csv
    "skills_read",  # records kept
    "skipped_not_released",  # status not in `statuses`
    "skipped_duplicate_uri",  # URI already kept: the first row wins
    "skipped_empty_label",  # preferred label empty after cleaning
    "skipped_empty_uri",
    "skipped_over_limit",  # beyond `limit`
    "empty_description",  # kept, with description ""
    "unknown_skill_type",  # kept, value not in search.schema.SKILL_TYPES (and not empty)
    "unknown_reuse_level",  # kept, value not in search.schema.REUSE_LEVELS (and not empty)
    "empty_skill_type",
    "empty_reuse_level",
    "alt_labels_deduplicated",  # alt labels dropped as repeats of an earlier alt label
    "alt_labels_preferred_removed",  # alt labels dropped as equal to the preferred label
    "hidden_labels_deduplicated",  # hidden labels dropped as repeats or equal to the preferred label
    "occupations_read",
    "occupations_skipped_not_released",
    "occupations_empty_label",
    "relation_rows",  # data rows in occupationSkillRelations
    "relations_kept",
    "relations_unknown_occupation",  # occupation not in occupations_<lang>.csv
    "relations_skipped_occupation",  # occupation in the file but not released
    "relations_unknown_skill",  # skill not in skills_<lang>.csv at all
    "relations_skipped_skill",  # skill in the file but not kept (status, duplicate, empty label, limit)
    "relations_duplicate",  # same occupation, skill and relation type again
    "relations_conflicting",  # listed as essential and optional: essential kept
    "skill_groups_read",
    "broader_rows",
    "broader_cycles",  # back edges found in the broader graph (ignored when walking it)
    "skill_group_label_missing",  # ancestor groups with no label in skillGroups_<lang>.csv
    "collections_missing",  # collection files absent from the release
    "collection_members",
    "collection_members_unknown",  # member URI not in skills_<lang>.csv
    "invisible_chars_removed",  # cells from which invisible characters were removed
)


@dataclass(frozen=True)
class ReadStats:
    """Counts of everything read, skipped or repaired, by reason (:data:`STAT_KEYS`) and language."""

    counts: dict[str, dict[str, int]]
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, language: str | None = None) -> int:
        """One counter for one language, or summed over all languages."""
        if key not in STAT_KEYS:
            raise KeyError(f"unknown stats key {key!r}")
        if language is not None:
            return self.counts.get(language, {}).get(key, 0)
        return sum(c.get(key, 0) for c in self.counts.values())

    def as_dict(self) -> dict[str, object]:
        return {"counts": {lang: dict(c) for lang, c in self.counts.items()}, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Release:
    esco_version: str
    layout: str
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    skills: dict[str, list[SkillRecord]]
    stats: ReadStats


def _uri(s: str) -> str:
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


# --------------------------------------------------------------------------------------------------
# Versions

_VERSION_RE = re.compile(
    r"(?:(?<![0-9A-Za-z])[vV]|(?i:esco)[ _-]*[vV]?)(\d{1,2})\.(\d{1,3})(?:\.(\d{1,3}))?(?![0-9])(?!\.\d)"
)


def normalize_version(version: str) -> str:
    """``"1.1.1"``, ``"v1.1.1"``, ``"V1.2"`` -> ``"v1.1.1"``, ``"v1.2.0"``; anything else: ConfigError."""
    m = re.fullmatch(r"\s*[vV]?(\d{1,2})\.(\d{1,3})(?:\.(\d{1,3}))?\s*", version or "")
    if not m:
        raise ConfigError(f"invalid ESCO version {version!r}; expected a version like v1.1.1 or 1.2.0")
    return f"v{int(m[1])}.{int(m[2])}.{int(m[3] or 0)}"


def _versions_in(name: str) -> set[str]:
    return {f"v{int(m[1])}.{int(m[2])}.{int(m[3] or 0)}" for m in _VERSION_RE.finditer(name)}


# --------------------------------------------------------------------------------------------------
# Finding the files of a release


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # base name, as spelled in the release
    display: str  # where it is, for messages
    path: Path  # the file itself, or the zip holding it
    member: str | None = None  # name inside the zip

    def read_bytes(self) -> bytes:
        if self.member is None:
            try:
                return self.path.read_bytes()
            except OSError as e:
                raise EscoFormatError(f"cannot read the file: {e.strerror or e}", file=self.display) from e
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise EscoFormatError(
                f"the zip archive is corrupt or truncated ({e}); download it again", file=self.display
            ) from e
        except (RuntimeError, NotImplementedError) as e:  # encrypted, unsupported compression
            raise EscoFormatError(
                f"cannot read the member from the zip archive ({e}); unpack it and pass the folder",
                file=self.display,
            ) from e


@dataclass
class _Scan:
    sources: list[str] = field(default_factory=list)
    entries: dict[str, _Entry] = field(default_factory=dict)  # by lower-case base name
    version_hits: dict[str, list[str]] = field(default_factory=dict)  # version -> names that say so

    def add(self, entry: _Entry) -> None:
        key = entry.name.lower()
        other = self.entries.get(key)
        if other is not None:
            raise EscoFormatError(
                f"{entry.name} found twice: in {other.display} and in {entry.display}; pass the files of "
                "one release once (either the zips or the unpacked folders, not both)"
            )
        self.entries[key] = entry

    def note_name(self, name: str, where: str) -> None:
        for v in _versions_in(name):
            hits = self.version_hits.setdefault(v, [])
            if where not in hits:
                hits.append(where)

    def names_found(self, limit: int = 40) -> str:
        names = sorted((e.name for e in self.entries.values()), key=str.lower)
        if not names:
            return "no CSV file at all"
        more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _scan_zip(path: Path, scan: _Scan) -> None:
    scan.note_name(path.name, str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise EscoFormatError(f"not a readable zip archive ({e}); it may be truncated: download it again",
                              file=path) from e
    for info in infos:
        if info.is_dir():
            continue
        parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
        if not parts or any(_hidden(p) for p in parts):
            continue
        for d in parts[:-1]:
            scan.note_name(d, f"{path}!{'/'.join(parts[:-1])}")
        if parts[-1].lower().endswith(".csv"):
            scan.add(_Entry(parts[-1], f"{path}!{info.filename}", path, info.filename))


def _scan_path(raw: str | Path, scan: _Scan) -> None:
    path = Path(raw).expanduser()
    if not path.exists():
        raise ConfigError(f"ESCO release not found: {path} does not exist")
    path = path.resolve()
    scan.sources.append(str(path))
    if path.is_dir():
        scan.note_name(path.name, str(path))
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            here = Path(root)
            if here != path:
                scan.note_name(here.name, str(here))
            for name in sorted(files):
                if _hidden(name):
                    continue
                low = name.lower()
                if low.endswith(".csv"):
                    scan.add(_Entry(name, str(here / name), here / name))
                elif low.endswith(".zip"):
                    _scan_zip(here / name, scan)
    elif path.suffix.lower() == ".csv":
        scan.add(_Entry(path.name, str(path), path))
    elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        _scan_zip(path, scan)
    else:
        raise ConfigError(f"{path} is neither a folder, a zip archive nor a CSV file of an ESCO release")


def _scan(paths: Sequence[str | Path] | str | Path) -> _Scan:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ConfigError("no ESCO release given: pass the release's zips or folder")
    scan = _Scan()
    for p in paths:
        _scan_path(p, scan)
    return scan


def _version_of(scan: _Scan) -> str | None:
    if not scan.version_hits:
        return None
    if len(scan.version_hits) > 1:
        parts = [f"{v} (from {hits[0]})" for v, hits in sorted(scan.version_hits.items())]
        raise EscoFormatError(
            "the inputs name different ESCO versions: " + " and ".join(parts)
            + "; pass the files of one release only"
        )
    return next(iter(scan.version_hits))


def detect_version(paths: Sequence[str | Path] | str | Path) -> str | None:
    """The ESCO version named by the inputs' file and folder names (``esco_v1.1.1_...``,
    ``ESCO dataset - v1.2.0 - ...``, ``v1.2.0``), normalised to ``"v1.1.1"``; ``None`` when no name
    carries one. Names that disagree raise :class:`EscoFormatError` naming both."""
    return _version_of(_scan(paths))


# --------------------------------------------------------------------------------------------------
# CSV tables


_FIELD_LIMIT = 2**31 - 1  # some ESCO cells (conceptSchemes' hasTopConcept) exceed csv's default 128 KiB


def _raise_field_limit() -> None:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


class _Table:
    """One CSV file: header mapped by name, rows yielded with the line each starts on."""

    def __init__(self, entry: _Entry, required: Sequence[str], optional: Sequence[str] = ()) -> None:
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


# --------------------------------------------------------------------------------------------------
# Reading


# Collection file stem -> key in search.schema.COLLECTIONS.
COLLECTION_FILES: dict[str, str] = {
    "digitalSkillsCollection": "digital",
    "greenSkillsCollection": "green",
    "transversalSkillsCollection": "transversal",
    "languageSkillsCollection": "language",
    "researchSkillsCollection": "research",
    "digCompSkillsCollection": "digcomp",
    "ictSkillsCollection": "ict",
}
assert set(COLLECTION_FILES.values()) == set(COLLECTIONS), "COLLECTION_FILES out of step with the schema"

_SKILL_COLUMNS = (
    "conceptUri", "preferredLabel", "altLabels", "hiddenLabels", "status", "skillType", "reuseLevel",
    "description",
)  # fmt: skip
_RELATION_TYPES = ("essential", "optional")
_MAX_WARNINGS_PER_KIND = 10


class _Stats:
    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.warnings: list[str] = []
        self._warned: Counter[tuple[str, str]] = Counter()

    def lang(self, language: str) -> dict[str, int]:
        return self.counts.setdefault(language, dict.fromkeys(STAT_KEYS, 0))

    def warn(self, kind: str, language: str, message: str) -> None:
        self._warned[(kind, language)] += 1
        if self._warned[(kind, language)] <= _MAX_WARNINGS_PER_KIND:
            self.warnings.append(message)

    def freeze(self) -> ReadStats:
        for (kind, language), n in sorted(self._warned.items()):
            if n > _MAX_WARNINGS_PER_KIND:
                self.warnings.append(
                    f"[{language}] ... and {n - _MAX_WARNINGS_PER_KIND} more warnings of the kind {kind!r}"
                )
        return ReadStats(counts=self.counts, warnings=self.warnings)


class _Cleaner:
    """clean_text that counts the cells it removed invisible characters from."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def __call__(self, s: str) -> str:
        t, removed = _clean(s)
        if removed:
            self.counts["invisible_chars_removed"] += 1
        return t

    def labels(self, cell: str) -> tuple[list[str], int]:
        labels, dropped, removed = _split_labels(cell)
        if removed:
            self.counts["invisible_chars_removed"] += 1
        return labels, dropped


def _require(scan: _Scan, name: str, what: str) -> _Entry:
    entry = scan.entries.get(name.lower())
    if entry is None:
        raise EscoFormatError(
            f"required file ({what}) not found in {', '.join(scan.sources)}; "
            f"CSV files found: {scan.names_found()}",
            file=name,
        )
    return entry


@dataclass
class _Relations:
    """occupationSkillRelations rows: (line, occupation URI, relation type, skill URI)."""

    file: str
    rows: list[tuple[int, str, str, str]]


def _read_relations(entry: _Entry) -> _Relations:
    table = _Table(entry, ("occupationUri", "relationType", "skillUri"))
    i_occ, i_rel, i_skill = (table.cols[c] for c in ("occupationUri", "relationType", "skillUri"))
    out: list[tuple[int, str, str, str]] = []
    for line, row in table.rows():
        rel = row[i_rel].strip().lower()
        if rel not in _RELATION_TYPES:
            raise EscoFormatError(
                f"relation type {row[i_rel]!r} is neither of {', '.join(_RELATION_TYPES)}",
                file=table.file, line=line, column="relationType",
            )
        out.append((line, _uri(row[i_occ]), rel, _uri(row[i_skill])))
    return _Relations(table.file, out)


@dataclass
class _Broader:
    file: str
    parents: dict[str, list[str]]  # concept -> direct broader concepts, file order, unique
    typed_groups: set[str]  # URIs that the file types as SkillGroup
    rows: int
    cycles: list[tuple[str, str]]  # back edges (child, parent)


def _read_broader(entry: _Entry) -> _Broader:
    table = _Table(entry, ("conceptUri", "broaderUri"), ("conceptType", "broaderType"))
    i_c, i_b = table.cols["conceptUri"], table.cols["broaderUri"]
    i_ct, i_bt = table.cols.get("conceptType"), table.cols.get("broaderType")
    parents: dict[str, list[str]] = defaultdict(list)
    groups: set[str] = set()
    n = 0
    for _line, row in table.rows():
        n += 1
        child, parent = _uri(row[i_c]), _uri(row[i_b])
        if not child or not parent:
            continue
        if i_ct is not None and row[i_ct].strip() == "SkillGroup":
            groups.add(child)
        if i_bt is not None and row[i_bt].strip() == "SkillGroup":
            groups.add(parent)
        ps = parents[child]
        if parent not in ps:
            ps.append(parent)
    return _Broader(table.file, dict(parents), groups, n, _back_edges(parents))


def _back_edges(parents: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Edges that close a cycle (iterative three-colour DFS)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: list[tuple[str, str]] = []
    for root in parents:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(parents.get(root, ())))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            s = state.get(nxt)
            if s == 1:
                back.append((node, nxt))
            elif s is None:
                state[nxt] = 1
                stack.append((nxt, iter(parents.get(nxt, ()))))
    return back


def _ancestors(uri: str, parents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(parents.get(uri, ()))
    while todo:
        u = todo.pop()
        if u in seen or u == uri:
            continue
        seen.add(u)
        todo.extend(parents.get(u, ()))
    return seen


def _labels_of(entry: _Entry, clean: _Cleaner, statuses: frozenset[str] | None = None,
               ) -> tuple[dict[str, str], int, int, set[str]]:
    """URI -> preferred label of an occupations/skillGroups file; (labels, rows, skipped, skipped URIs)."""
    table = _Table(entry, ("conceptUri", "preferredLabel"), ("status",))
    i_uri, i_label, i_status = table.cols["conceptUri"], table.cols["preferredLabel"], table.cols.get("status")
    labels: dict[str, str] = {}
    skipped: set[str] = set()
    n = 0
    for _line, row in table.rows():
        uri = _uri(row[i_uri])
        if not uri:
            continue
        n += 1
        if statuses is not None and i_status is not None and row[i_status].strip() not in statuses:
            skipped.add(uri)
            continue
        labels.setdefault(uri, clean(row[i_label]))
    return labels, n, len(skipped), skipped


def read_release(
    paths: Sequence[str | Path] | str | Path,
    languages: Sequence[str] = ("en",),
    esco_version: str | None = None,
    *,
    statuses: Sequence[str] = ("released",),
    limit: int | None = None,
) -> Release:
    """Read the skills of one ESCO release in the given languages.

    ``paths``: the release's zips and/or folders (a folder may hold the zips). ``esco_version`` overrides
    the version the names carry (needed when none does). ``statuses``: the skill statuses kept.
    ``limit``: keep only the first N kept skills per language (quick runs); relations follow.
    """
    langs = _check_languages(languages)
    if isinstance(statuses, str):
        statuses = (statuses,)
    status_set = frozenset(s.strip() for s in statuses if s and s.strip())
    if not status_set:
        raise ConfigError("statuses must name at least one skill status, e.g. released")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive whole number, not {limit!r}")

    scan = _scan(paths)
    stats = _Stats()
    named = _version_of(scan)
    if esco_version is not None:
        version = normalize_version(esco_version)
        if named is not None and named != version:
            stats.warnings.append(
                f"ESCO version {version} given; the file names say {named} ({scan.version_hits[named][0]})"
            )
    elif named is not None:
        version = named
    else:
        raise EscoFormatError(
            f"cannot tell the ESCO version: no file or folder name in {', '.join(scan.sources)} carries one "
            "(like esco_v1.1.1_...); pass it with --esco-version (esco_version=...)"
        )

    layout = _layout_of(scan)
    present = sorted(
        m[1] for e in scan.entries.values() if (m := re.fullmatch(r"skills_([a-z]{2,3})\.csv", e.name.lower()))
    )
    for lang in langs:
        if lang not in present:
            raise EscoFormatError(
                f"language {lang!r} is not in this release (no skills_{lang}.csv in {', '.join(scan.sources)}); "
                f"languages present: {', '.join(present) if present else 'none'}"
            )

    shared_rel: _Relations | None = None
    shared_broader: _Broader | None = None
    if layout == "v1.1":
        # read the language-independent files once, checked before any per-language work
        shared_rel = _read_relations(_require(scan, "occupationSkillRelations.csv", "occupation-skill relations"))
        shared_broader = _read_broader(
            _require(scan, "broaderRelationsSkillPillar.csv", "broader relations of the skill pillar")
        )

    skills: dict[str, list[SkillRecord]] = {}
    for lang in langs:
        if layout == "v1.1":
            assert shared_rel is not None and shared_broader is not None
            rel, broader = shared_rel, shared_broader
        else:
            rel = _read_relations(
                _require(scan, f"occupationSkillRelations_{lang}.csv", "occupation-skill relations")
            )
            broader = _read_broader(
                _require(scan, f"broaderRelationsSkillPillar_{lang}.csv", "broader relations of the skill pillar")
            )
        skills[lang] = _read_language(scan, lang, rel, broader, status_set, limit, stats)

    return Release(
        esco_version=version,
        layout=layout,
        languages=tuple(langs),
        sources=tuple(scan.sources),
        skills=skills,
        stats=stats.freeze(),
    )


def _check_languages(languages: Sequence[str]) -> list[str]:
    if isinstance(languages, str):
        languages = [languages]
    out: list[str] = []
    for raw in languages:
        lang = (raw or "").strip().lower()
        if lang not in ESCO_LANGUAGES:
            raise ConfigError(
                f"unknown language code {raw!r}; the ESCO languages are: {', '.join(sorted(ESCO_LANGUAGES))}"
            )
        if lang not in out:
            out.append(lang)
    if not out:
        raise ConfigError("no language given; the ESCO languages are: " + ", ".join(sorted(ESCO_LANGUAGES)))
    return out


def _layout_of(scan: _Scan) -> str:
    names = scan.entries.keys()
    v11 = "occupationskillrelations.csv" in names
    v12 = any(re.fullmatch(r"occupationskillrelations_[a-z]{2,3}\.csv", n) for n in names)
    if v11 and v12:
        a = scan.entries["occupationskillrelations.csv"].display
        b = next(scan.entries[n].display for n in names if n.startswith("occupationskillrelations_"))
        raise EscoFormatError(
            f"the inputs mix the v1.1 layout ({a}) and the v1.2 layout ({b}); pass the files of one release"
        )
    if v11:
        return "v1.1"
    if v12:
        return "v1.2"
    raise EscoFormatError(
        "required file (occupation-skill relations; occupationSkillRelations_<lang>.csv in the v1.2 layout) "
        f"not found in {', '.join(scan.sources)}; CSV files found: {scan.names_found()}",
        file="occupationSkillRelations.csv",
    )


def _read_language(
    scan: _Scan,
    lang: str,
    rel: _Relations,
    broader: _Broader,
    statuses: frozenset[str],
    limit: int | None,
    stats: _Stats,
) -> list[SkillRecord]:
    c = stats.lang(lang)
    clean = _Cleaner(c)
    tag = f"[{lang}]"

    skills_entry = _require(scan, f"skills_{lang}.csv", "the skills")
    occ_entry = _require(scan, f"occupations_{lang}.csv", "occupation labels")
    groups_entry = _require(scan, f"skillGroups_{lang}.csv", "skill-group labels")

    # ---- skills
    table = _Table(skills_entry, _SKILL_COLUMNS)
    col = table.cols
    i_uri, i_label, i_alt, i_hidden = col["conceptUri"], col["preferredLabel"], col["altLabels"], col["hiddenLabels"]
    i_status, i_type, i_reuse, i_desc = col["status"], col["skillType"], col["reuseLevel"], col["description"]
    kept: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    seen_all: set[str] = set()
    status_counts: Counter[str] = Counter()
    for line, row in table.rows():
        c["skill_rows"] += 1
        uri = _uri(row[i_uri])
        if not uri:
            c["skipped_empty_uri"] += 1
            stats.warn("empty_uri", lang, f"{tag} {table.file}, line {line}: skill row without conceptUri skipped")
            continue
        seen_all.add(uri)
        status = row[i_status].strip()
        status_counts[status] += 1
        if status not in statuses:
            c["skipped_not_released"] += 1
            continue
        if uri in kept:
            c["skipped_duplicate_uri"] += 1
            stats.warn(
                "duplicate_uri", lang,
                f"{tag} {table.file}, line {line}: duplicate conceptUri {uri} skipped (first on line {first_line[uri]})",
            )
            continue
        label = clean(row[i_label])
        if not label:
            c["skipped_empty_label"] += 1
            stats.warn("empty_label", lang, f"{tag} {table.file}, line {line}: skill {uri} has no preferredLabel; skipped")
            continue
        if limit is not None and len(kept) >= limit:
            c["skipped_over_limit"] += 1
            continue
        desc = clean(row[i_desc])
        if not desc:
            c["empty_description"] += 1
        alts, dups = clean.labels(row[i_alt])
        c["alt_labels_deduplicated"] += dups
        if label in alts:
            alts.remove(label)
            c["alt_labels_preferred_removed"] += 1
        hidden, hdups = clean.labels(row[i_hidden])
        if label in hidden:
            hidden.remove(label)
            hdups += 1
        c["hidden_labels_deduplicated"] += hdups
        values = {}
        for key, column, col_i, valid in (("skill_type", "skillType", i_type, SKILL_TYPES),
                                          ("reuse_level", "reuseLevel", i_reuse, REUSE_LEVELS)):
            value = values[key] = clean(row[col_i])
            if not value:
                c[f"empty_{key}"] += 1
            elif value not in valid:  # kept, counted and named: a new ESCO value must not drop skills
                c[f"unknown_{key}"] += 1
                stats.warn(key, lang, f"{tag} {table.file}, line {line}: unknown {column} {value!r} kept")
        skill_type, reuse = values["skill_type"], values["reuse_level"]
        first_line[uri] = line
        kept[uri] = {
            "concept_uri": uri,
            "language": lang,
            "preferred_label": label,
            "description": desc,
            "alt_labels": tuple(alts),
            "hidden_labels": tuple(hidden),
            "skill_type": skill_type,
            "reuse_level": reuse,
            "status": status,
        }
    if c["skill_rows"] == 0:
        raise EscoFormatError("no skill rows: the release is empty", file=table.file)
    if not kept:
        found = ", ".join(f"{s or '(empty)'}: {n}" for s, n in status_counts.most_common()) or "none"
        raise EscoFormatError(
            f"no skill kept out of {c['skill_rows']} rows (statuses kept: {', '.join(sorted(statuses))}; "
            f"statuses found: {found})",
            file=table.file,
        )
    c["skills_read"] = len(kept)

    # ---- occupations and groups (labels in this language)
    occ_labels, c["occupations_read"], c["occupations_skipped_not_released"], occ_skipped = _labels_of(
        occ_entry, clean, statuses
    )
    c["occupations_empty_label"] = sum(1 for v in occ_labels.values() if not v)
    group_labels, c["skill_groups_read"], _, _ = _labels_of(groups_entry, clean)

    # ---- occupation-skill relations
    essential: dict[str, set[str]] = defaultdict(set)
    optional: dict[str, set[str]] = defaultdict(set)
    for line, occ, rtype, skill in rel.rows:
        c["relation_rows"] += 1
        if skill not in kept:
            if skill in seen_all:
                c["relations_skipped_skill"] += 1
            else:
                c["relations_unknown_skill"] += 1
                stats.warn("relation_skill", lang, f"{tag} {rel.file}, line {line}: unknown skill {skill}; relation dropped")
            continue
        if occ not in occ_labels:
            if occ in occ_skipped:
                c["relations_skipped_occupation"] += 1
            else:
                c["relations_unknown_occupation"] += 1
                stats.warn("relation_occupation", lang,
                           f"{tag} {rel.file}, line {line}: unknown occupation {occ}; relation dropped")
            continue
        target = essential if rtype == "essential" else optional
        if occ in target[skill]:
            c["relations_duplicate"] += 1
            continue
        target[skill].add(occ)
        c["relations_kept"] += 1
    for skill, occs in optional.items():
        both = occs & essential.get(skill, set())
        if both:
            c["relations_conflicting"] += len(both)
            c["relations_kept"] -= len(both)
            occs -= both

    # ---- broader relations and groups
    c["broader_rows"] = broader.rows
    c["broader_cycles"] = len(broader.cycles)
    for child, parent in broader.cycles[:_MAX_WARNINGS_PER_KIND]:
        stats.warn("cycle", lang, f"{tag} {broader.file}: the broader edge {child} -> {parent} closes a cycle; ignored")
    is_group = broader.typed_groups | group_labels.keys()
    unlabelled: set[str] = set()

    # ---- collections
    members: dict[str, set[str]] = {}
    missing: list[str] = []
    present = {key for stem, key in COLLECTION_FILES.items() if f"{stem}_{lang}.csv".lower() in scan.entries}
    for stem, key in COLLECTION_FILES.items():
        entry = scan.entries.get(f"{stem}_{lang}.csv".lower())
        if entry is None:
            # v1.1.0 ships an ICT collection, later releases a digital one: either alone is complete.
            if not ({key} & {"ict", "digital"} and present & {"ict", "digital"}):
                missing.append(f"{stem}_{lang}.csv")
            continue
        t = _Table(entry, ("conceptUri",))
        i = t.cols["conceptUri"]
        uris = {_uri(row[i]) for _line, row in t.rows()} - {""}
        members[key] = uris
        c["collection_members"] += len(uris)
        c["collection_members_unknown"] += len(uris - seen_all)
    if missing:
        c["collections_missing"] = len(missing)
        stats.warnings.append(
            f"{tag} collection files not in the release (their collections stay empty): {', '.join(missing)}"
        )

    out: list[SkillRecord] = []
    for uri, f in kept.items():
        ess = sorted(essential.get(uri, ()))
        opt = sorted(optional.get(uri, ()))
        groups = sorted(a for a in _ancestors(uri, broader.parents) if a in is_group)
        glabels = []
        for g in groups:
            lab = group_labels.get(g)
            if lab is None:
                unlabelled.add(g)
                lab = ""
            glabels.append(lab)
        out.append(
            SkillRecord(
                **f,
                essential_for=tuple(ess),
                optional_for=tuple(opt),
                essential_for_labels=tuple(occ_labels[o] for o in ess),
                optional_for_labels=tuple(occ_labels[o] for o in opt),
                skill_groups=tuple(groups),
                skill_group_labels=tuple(glabels),
                broader=tuple(sorted(broader.parents.get(uri, ()))),
                collections=tuple(sorted(k for k, m in members.items() if uri in m)),
            )
        )
    c["skill_group_label_missing"] = len(unlabelled)
    for g in sorted(unlabelled)[:_MAX_WARNINGS_PER_KIND]:
        stats.warn("group_label", lang, f"{tag} skill group {g} has no label in {groups_entry.display}")
    return out
