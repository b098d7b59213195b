"""Reader of official ESCO CSV releases: skills with their relations, groups and collections.

Pure: no model, no Qdrant, no network. :func:`read_release` takes the zips and/or folders of one release
and returns a :class:`Release` holding one :class:`SkillRecord` per skill and language, plus a
:class:`ReadStats` counting everything it skipped or repaired.

Two layouts are read (``Release.layout``):

* ``"v1.1"`` (ESCO v1.0.x/v1.1.x): ``esco_v1.1.1_classification_<lang>_csv.zip`` with ``skills_<lang>.csv``,
  ``occupations_<lang>.csv``, ``skillGroups_<lang>.csv``, ``*SkillsCollection_<lang>.csv``, and the
  language-independent ``esco_v1.1.1_relations_csv.zip`` with ``occupationSkillRelations.csv`` and
  ``broaderRelationsSkillPillar.csv``;
* ``"v1.2"`` (ESCO v1.2.x): one zip or folder per download whose files all end with ``_<lang>.csv``,
  relation files included (those may carry extra label columns; only the needed columns are read, by
  header name).

The parts: :mod:`.files` (finding the files, the version), :mod:`.tables` (CSV tables, cell cleaning),
:mod:`.graph` (relations, hierarchy, labels of occupations and groups), :mod:`.records` (the records),
:mod:`.stats` (the counters). Every user-caused problem raises :class:`~ingest.errors.EscoFormatError`
(naming the file, and the line and column where they apply) or :class:`~search.errors.ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import EscoFormatError
from ingest.esco.files import detect_version, layout_of, normalize_version, require, scan_inputs, version_of
from ingest.esco.graph import Broader, Relations, read_broader, read_relations
from ingest.esco.records import COLLECTION_FILES, Release, SkillRecord, read_language
from ingest.esco.stats import STAT_KEYS, ReadStats, Stats
from ingest.esco.tables import split_labels
from search.errors import ConfigError
from search.schema import ESCO_LANGUAGES
from search.text import clean_text

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

    scan = scan_inputs(paths)
    stats = Stats()
    named = version_of(scan)
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

    layout = layout_of(scan)
    present = sorted(
        m[1] for e in scan.entries.values() if (m := re.fullmatch(r"skills_([a-z]{2,3})\.csv", e.name.lower()))
    )
    for lang in langs:
        if lang not in present:
            raise EscoFormatError(
                f"language {lang!r} is not in this release (no skills_{lang}.csv in {', '.join(scan.sources)}); "
                f"languages present: {', '.join(present) if present else 'none'}"
            )

    shared_rel: Relations | None = None
    shared_broader: Broader | None = None
    if layout == "v1.1":
        # read the language-independent files once, checked before any per-language work
        shared_rel = read_relations(require(scan, "occupationSkillRelations.csv", "occupation-skill relations"))
        shared_broader = read_broader(
            require(scan, "broaderRelationsSkillPillar.csv", "broader relations of the skill pillar")
        )

    skills: dict[str, list[SkillRecord]] = {}
    for lang in langs:
        if layout == "v1.1":
            assert shared_rel is not None and shared_broader is not None
            rel, broader = shared_rel, shared_broader
        else:
            rel = read_relations(
                require(scan, f"occupationSkillRelations_{lang}.csv", "occupation-skill relations")
            )
            broader = read_broader(
                require(scan, f"broaderRelationsSkillPillar_{lang}.csv", "broader relations of the skill pillar")
            )
        skills[lang] = read_language(scan, lang, rel, broader, status_set, limit, stats)

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

