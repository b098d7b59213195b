"""Occupation records of an ESCO release: one :class:`OccupationRecord` per occupation and language.

Read from ``occupations_<lang>.csv`` (labels, description, ISCO group, regulated-profession note), the
occupation-skill relations (essential and optional skills, labelled from ``skills_<lang>.csv``), and, where
the release has them, ``ISCOGroups_<lang>.csv`` (labels of the ISCO groups) and the broader relations of the
occupation pillar (``broaderRelationsOccPillar.csv`` in v1.1, ``broaderRelationsOccPillar_<lang>.csv`` in
v1.2: the broader occupations). Without those files the records still carry the ISCO codes of every
ancestor group (ISCO codes nest by prefix) but no group labels and no broader occupations, and
:attr:`OccupationRelease.warnings` says so.
"""

from __future__ import annotations


from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import EscoFormatError
from ingest.esco.files import Scan, layout_of, normalize_version, require, scan_inputs, version_of
from ingest.esco.graph import labels_of, read_relations
from ingest.esco.tables import Cleaner, Table, uri_cell
from search.errors import ConfigError
from search.occupations.schema import isco_ancestors
from search.schema import ESCO_LANGUAGES

__all__ = ["OccupationRecord", "OccupationRelease", "read_occupations", "isco_group_uri"]

_OCC_COLUMNS = ("conceptUri", "preferredLabel", "altLabels", "hiddenLabels", "status", "description", "iscoGroup")
_OCC_OPTIONAL = ("regulatedProfessionNote", "code")


def isco_group_uri(code: str) -> str:
    """The ESCO URI of an ISCO-08 group code (``2512`` -> ``http://data.europa.eu/esco/isco/C2512``)."""
    return f"http://data.europa.eu/esco/isco/C{code}"


@dataclass(frozen=True, slots=True)
class OccupationRecord:
    """One occupation in one language, cleaned and joined with its skills and ISCO groups.

    ``isco_groups`` lists the unit group's code and every ancestor's, broadest first; ``isco_group_labels``
    their labels in this language (``""`` where the release has no ISCOGroups file or no label).
    Skill tuples are sorted by URI; the ``*_labels`` tuples follow the order of their URI tuple.
    """

    concept_uri: str
    language: str
    preferred_label: str
    alt_labels: tuple[str, ...]
    hidden_labels: tuple[str, ...]
    description: str
    status: str
    code: str
    isco_group: str
    isco_groups: tuple[str, ...]
    isco_group_labels: tuple[str, ...]
    broader_occupations: tuple[str, ...]
    essential_skills: tuple[str, ...]
    optional_skills: tuple[str, ...]
    essential_skill_labels: tuple[str, ...]
    optional_skill_labels: tuple[str, ...]
    regulated_profession_note: str


@dataclass(frozen=True)
class OccupationRelease:
    """The occupations of one release in the languages asked for, and what reading them counted."""

    esco_version: str
    layout: str
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    occupations: dict[str, list[OccupationRecord]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per language
    warnings: tuple[str, ...] = ()


def read_occupations(
    paths: Sequence[str | Path] | str | Path,
    languages: Sequence[str] = ("en",),
    esco_version: str | None = None,
    *,
    statuses: Sequence[str] = ("released",),
) -> OccupationRelease:
    """Read the occupations of one ESCO release (v1.1 or v1.2 layout) in the given languages.

    Only occupations and skills of the given ``statuses`` are kept; a relation to a skill that is not kept is
    dropped and counted. Raises :class:`~ingest.errors.EscoFormatError` (naming file, line and column) for a
    broken release and :class:`~search.errors.ConfigError` for a bad argument.
    """
    langs = [lang.strip().lower() for lang in ([languages] if isinstance(languages, str) else languages)]
    for lang in langs:
        if lang not in ESCO_LANGUAGES:
            raise ConfigError(f"unknown language code {lang!r}; the ESCO languages are: {', '.join(ESCO_LANGUAGES)}")
    if not langs:
        raise ConfigError("no language given; the ESCO languages are: " + ", ".join(ESCO_LANGUAGES))
    status_set = frozenset([statuses] if isinstance(statuses, str) else statuses)
    scan = scan_inputs(paths)
    named = version_of(scan)
    version = normalize_version(esco_version) if esco_version is not None else named
    if version is None:
        raise EscoFormatError(
            f"cannot tell the ESCO version: no file or folder name in {', '.join(scan.sources)} carries one "
            "(like esco_v1.1.1_...); pass it with --esco-version (esco_version=...)"
        )
    layout = layout_of(scan)
    warnings: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    out: dict[str, list[OccupationRecord]] = {}
    shared_rel = read_relations(require(scan, "occupationSkillRelations.csv", "occupation-skill relations")) \
        if layout == "v1.1" else None
    shared_broader = _broader_file(scan, "broaderRelationsOccPillar.csv") if layout == "v1.1" else None
    for lang in langs:
        rel = shared_rel or read_relations(
            require(scan, f"occupationSkillRelations_{lang}.csv", "occupation-skill relations"))
        broader = shared_broader if layout == "v1.1" else _broader_file(scan, f"broaderRelationsOccPillar_{lang}.csv")
        c: Counter[str] = Counter()
        out[lang] = _read_language(scan, lang, rel.rows, broader, status_set, c, warnings)
        counts[lang] = dict(c)
    return OccupationRelease(version, layout, tuple(langs), tuple(scan.sources), out, counts, tuple(warnings))


def _broader_file(scan: Scan, name: str) -> dict[str, list[str]] | None:
    """Occupation -> its broader occupations, from the occupation pillar's broader relations; None if absent."""
    entry = scan.entries.get(name.lower())
    if entry is None:
        return None
    table = Table(entry, ("conceptUri", "broaderUri"), ("conceptType", "broaderType"))
    i_c, i_b, i_bt = table.cols["conceptUri"], table.cols["broaderUri"], table.cols.get("broaderType")
    parents: dict[str, list[str]] = defaultdict(list)
    for _line, row in table.rows():
        child, parent = uri_cell(row[i_c]), uri_cell(row[i_b])
        is_occ = row[i_bt].strip() == "Occupation" if i_bt is not None else "/occupation/" in parent
        if child and parent and is_occ and parent not in parents[child]:
            parents[child].append(parent)
    return dict(parents)


def _isco_labels(scan: Scan, lang: str, clean: Cleaner) -> dict[str, str] | None:
    entry = scan.entries.get(f"iscogroups_{lang}.csv")
    if entry is None:
        return None
    table = Table(entry, ("code", "preferredLabel"))
    i_code, i_label = table.cols["code"], table.cols["preferredLabel"]
    return {row[i_code].strip(): clean(row[i_label]) for _line, row in table.rows() if row[i_code].strip()}


def _read_language(scan: Scan, lang: str, relations: list[tuple[int, str, str, str]],
                   broader: dict[str, list[str]] | None, statuses: frozenset[str], c: Counter[str],
                   warnings: list[str]) -> list[OccupationRecord]:
    clean = Cleaner(c)  # type: ignore[arg-type]
    skill_labels, _n, _skipped, _uris = labels_of(require(scan, f"skills_{lang}.csv", "the skills"), clean, statuses)
    isco = _isco_labels(scan, lang, clean)
    if isco is None:
        warnings.append(f"[{lang}] no ISCOGroups_{lang}.csv in the release: ISCO groups carry their codes, no labels")
    if broader is None:
        name = "broaderRelationsOccPillar.csv" if layout_of(scan) == "v1.1" else f"broaderRelationsOccPillar_{lang}.csv"
        warnings.append(f"[{lang}] no {name} in the release: occupations carry no broader occupations")
    essential: dict[str, set[str]] = defaultdict(set)
    optional: dict[str, set[str]] = defaultdict(set)
    for _line, occ, rtype, skill in relations:
        if skill not in skill_labels:
            c["relations_skipped_skill"] += 1
            continue
        (essential if rtype == "essential" else optional)[occ].add(skill)
    entry = require(scan, f"occupations_{lang}.csv", "the occupations")
    table = Table(entry, _OCC_COLUMNS, _OCC_OPTIONAL)
    col = table.cols
    records: list[OccupationRecord] = []
    seen: set[str] = set()
    for line, row in table.rows():
        c["occupation_rows"] += 1
        uri = uri_cell(row[col["conceptUri"]])
        status = row[col["status"]].strip()
        if not uri or status not in statuses:
            c["occupations_skipped_not_released" if uri else "occupations_skipped_empty_uri"] += 1
            continue
        if uri in seen:
            c["occupations_skipped_duplicate"] += 1
            warnings.append(f"[{lang}] {table.file}, line {line}: duplicate occupation {uri} skipped")
            continue
        label = clean(row[col["preferredLabel"]])
        if not label:
            c["occupations_skipped_empty_label"] += 1
            warnings.append(f"[{lang}] {table.file}, line {line}: occupation {uri} has no preferredLabel; skipped")
            continue
        seen.add(uri)
        alts = [a for a in clean.labels(row[col["altLabels"]])[0] if a != label]
        hidden = [h for h in clean.labels(row[col["hiddenLabels"]])[0] if h != label]
        code = row[col["iscoGroup"]].strip()
        groups = isco_ancestors(code)
        if code and not groups:
            c["isco_group_invalid"] += 1
            warnings.append(f"[{lang}] {table.file}, line {line}: iscoGroup {code!r} is not an ISCO-08 code; kept, no ancestors")
        ess = essential.pop(uri, set())
        opt = optional.pop(uri, set()) - ess
        c["relations_kept"] += len(ess) + len(opt)
        records.append(OccupationRecord(
            concept_uri=uri, language=lang, preferred_label=label, alt_labels=tuple(alts), hidden_labels=tuple(hidden),
            description=clean(row[col["description"]]), status=status,
            code=row[col["code"]].strip() if "code" in col else "",
            isco_group=code, isco_groups=tuple(groups),
            isco_group_labels=tuple((isco or {}).get(g, "") for g in groups),
            broader_occupations=tuple(sorted((broader or {}).get(uri, ()))),
            essential_skills=tuple(sorted(ess)), optional_skills=tuple(sorted(opt)),
            essential_skill_labels=tuple(skill_labels[s] for s in sorted(ess)),
            optional_skill_labels=tuple(skill_labels[s] for s in sorted(opt)),
            regulated_profession_note=uri_cell(row[col["regulatedProfessionNote"]]) if "regulatedProfessionNote" in col else "",
        ))
    c["occupations_read"] = len(records)
    c["relations_unknown_occupation"] = sum(len(v) for v in essential.values()) + sum(len(v) for v in optional.values())
    if isco is not None:
        c["isco_group_label_missing"] = len({g for r in records for g, lab in zip(r.isco_groups, r.isco_group_labels) if not lab})
    if not records:
        raise EscoFormatError("no occupation kept: the file holds no released occupation", file=table.file)
    return records



