"""Finding the files of one ESCO release among the zips and folders given, and its version.

Files are found by their base name anywhere inside the given folders and zips (also zips inside folders,
and zips whose files sit in a top-level folder). The release's version comes from the names of its files
and folders (``esco_v1.1.1_...``, ``ESCO dataset - v1.2.0 - ...``).
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import EscoFormatError
from search.errors import ConfigError

__all__ = ["Entry", "Scan", "scan_inputs", "require", "layout_of", "version_of", "detect_version",
           "normalize_version"]

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
class Entry:
    """One CSV file of the release: a file on disk or a member of a zip."""

    name: str  # base name, as spelled in the release
    display: str  # where it is, for messages
    path: Path  # the file itself, or the zip holding it
    member: str | None = None  # name inside the zip

    def read_bytes(self) -> bytes:
        """The file's bytes; EscoFormatError naming the file when it cannot be read."""
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
class Scan:
    """What the inputs hold: their CSV files by lower-case base name, and the versions their names carry."""

    sources: list[str] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)  # by lower-case base name
    version_hits: dict[str, list[str]] = field(default_factory=dict)  # version -> names that say so

    def add(self, entry: Entry) -> None:
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


def _scan_zip(path: Path, scan: Scan) -> None:
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
            scan.add(Entry(parts[-1], f"{path}!{info.filename}", path, info.filename))


def _scan_path(raw: str | Path, scan: Scan) -> None:
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
                    scan.add(Entry(name, str(here / name), here / name))
                elif low.endswith(".zip"):
                    _scan_zip(here / name, scan)
    elif path.suffix.lower() == ".csv":
        scan.add(Entry(path.name, str(path), path))
    elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        _scan_zip(path, scan)
    else:
        raise ConfigError(f"{path} is neither a folder, a zip archive nor a CSV file of an ESCO release")


def scan_inputs(paths: Sequence[str | Path] | str | Path) -> Scan:
    """Every CSV file in the given zips, folders and files (ConfigError for a path that is none of them)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ConfigError("no ESCO release given: pass the release's zips or folder")
    scan = Scan()
    for p in paths:
        _scan_path(p, scan)
    return scan


def version_of(scan: Scan) -> str | None:
    """The one version the names carry, None when none does; EscoFormatError when they disagree."""
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
    return version_of(scan_inputs(paths))


def require(scan: Scan, name: str, what: str) -> Entry:
    """The file ``name`` (any case) of the release; EscoFormatError listing the files found when absent."""
    entry = scan.entries.get(name.lower())
    if entry is None:
        raise EscoFormatError(
            f"required file ({what}) not found in {', '.join(scan.sources)}; "
            f"CSV files found: {scan.names_found()}",
            file=name,
        )
    return entry


def layout_of(scan: Scan) -> str:
    """``"v1.1"`` (one language-independent relations file) or ``"v1.2"`` (relations per language)."""
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
