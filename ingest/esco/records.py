"""Skill records: one :class:`SkillRecord` per skill and language, joined with its relations, groups and
collections; :class:`Release` holds them all.

:func:`read_language` builds the records of one language in four steps: the skills file
(:func:`_read_skills`), the occupation-skill relations (:func:`_join_relations`), the collection files
(:func:`_read_collections`), and the join of all of it with the broader hierarchy (:func:`_records`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ingest.errors import EscoFormatError
from ingest.esco.files import Entry, Scan, require
from ingest.esco.graph import Broader, Relations, ancestors, labels_of
from ingest.esco.stats import MAX_WARNINGS_PER_KIND, ReadStats, Stats
from ingest.esco.tables import Cleaner, Table, uri_cell
from search.schema import COLLECTIONS, REUSE_LEVELS, SKILL_TYPES

__all__ = ["SkillRecord", "Release", "COLLECTION_FILES", "read_language"]


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



@dataclass(frozen=True)
class Release:
    """One release read in the languages asked for: its skills per language and what reading them counted."""

    esco_version: str
    layout: str  # "v1.1" or "v1.2" (see ingest.esco.files.layout_of)
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    skills: dict[str, list[SkillRecord]]
    stats: ReadStats


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


@dataclass
class _Skills:
    """The kept rows of skills_<lang>.csv (as SkillRecord fields) and every URI the file names."""

    file: str
    kept: dict[str, dict[str, Any]]
    seen_all: set[str]


def read_language(
    scan: Scan,
    lang: str,
    rel: Relations,
    broader: Broader,
    statuses: frozenset[str],
    limit: int | None,
    stats: Stats,
) -> list[SkillRecord]:
    """The skill records of one language, in the order of skills_<lang>.csv."""
    c = stats.lang(lang)
    clean = Cleaner(c)
    skills_entry = require(scan, f"skills_{lang}.csv", "the skills")
    occ_entry = require(scan, f"occupations_{lang}.csv", "occupation labels")
    groups_entry = require(scan, f"skillGroups_{lang}.csv", "skill-group labels")
    skills = _read_skills(skills_entry, lang, statuses, limit, stats, clean)

    # occupations and groups (labels in this language)
    occ_labels, c["occupations_read"], c["occupations_skipped_not_released"], occ_skipped = labels_of(
        occ_entry, clean, statuses
    )
    c["occupations_empty_label"] = sum(1 for v in occ_labels.values() if not v)
    group_labels, c["skill_groups_read"], _, _ = labels_of(groups_entry, clean)

    essential, optional = _join_relations(rel, skills, occ_labels, occ_skipped, lang, stats)
    c["broader_rows"] = broader.rows
    c["broader_cycles"] = len(broader.cycles)
    for child, parent in broader.cycles[:MAX_WARNINGS_PER_KIND]:
        stats.warn("cycle", lang, f"[{lang}] {broader.file}: the broader edge {child} -> {parent} closes a cycle; ignored")
    members = _read_collections(scan, lang, skills.seen_all, stats)
    return _records(skills, essential, optional, occ_labels, group_labels, broader, members, lang, stats,
                    groups_entry.display)


def _read_skills(entry: Entry, lang: str, statuses: frozenset[str], limit: int | None, stats: Stats,
                 clean: Cleaner) -> _Skills:
    """The skills file: rows kept by status, duplicates, empty labels and limit, counted and cleaned."""
    c = stats.lang(lang)
    tag = f"[{lang}]"
    table = Table(entry, _SKILL_COLUMNS)
    col = table.cols
    i_uri, i_label, i_alt, i_hidden = col["conceptUri"], col["preferredLabel"], col["altLabels"], col["hiddenLabels"]
    i_status, i_type, i_reuse, i_desc = col["status"], col["skillType"], col["reuseLevel"], col["description"]
    kept: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    seen_all: set[str] = set()
    status_counts: Counter[str] = Counter()
    for line, row in table.rows():
        c["skill_rows"] += 1
        uri = uri_cell(row[i_uri])
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
        first_line[uri] = line
        kept[uri] = {
            "concept_uri": uri,
            "language": lang,
            "preferred_label": label,
            "description": desc,
            "alt_labels": tuple(alts),
            "hidden_labels": tuple(hidden),
            "skill_type": values["skill_type"],
            "reuse_level": values["reuse_level"],
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
    return _Skills(table.file, kept, seen_all)


def _join_relations(rel: Relations, skills: _Skills, occ_labels: dict[str, str], occ_skipped: set[str],
                    lang: str, stats: Stats) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Skill -> occupations it is essential / optional for; unknown and skipped ends counted, a relation
    listed both ways kept as essential."""
    c = stats.lang(lang)
    essential: dict[str, set[str]] = defaultdict(set)
    optional: dict[str, set[str]] = defaultdict(set)

    def dropped(kind: str, uri: str, skipped: bool, line: int) -> None:
        """A relation whose ``kind`` end (skill or occupation) is not kept: skipped (filtered out) or unknown."""
        if skipped:
            c[f"relations_skipped_{kind}"] += 1
        else:
            c[f"relations_unknown_{kind}"] += 1
            stats.warn(f"relation_{kind}", lang,
                       f"[{lang}] {rel.file}, line {line}: unknown {kind} {uri}; relation dropped")

    for line, occ, rtype, skill in rel.rows:
        c["relation_rows"] += 1
        if skill not in skills.kept:
            dropped("skill", skill, skill in skills.seen_all, line)
            continue
        if occ not in occ_labels:
            dropped("occupation", occ, occ in occ_skipped, line)
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
    return essential, optional


def _read_collections(scan: Scan, lang: str, seen_all: set[str], stats: Stats) -> dict[str, set[str]]:
    """Collection key -> member URIs; absent collection files counted and named in one warning."""
    c = stats.lang(lang)
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
        t = Table(entry, ("conceptUri",))
        i = t.cols["conceptUri"]
        uris = {uri_cell(row[i]) for _line, row in t.rows()} - {""}
        members[key] = uris
        c["collection_members"] += len(uris)
        c["collection_members_unknown"] += len(uris - seen_all)
    if missing:
        c["collections_missing"] = len(missing)
        stats.warnings.append(
            f"[{lang}] collection files not in the release (their collections stay empty): {', '.join(missing)}"
        )
    return members


def _records(skills: _Skills, essential: dict[str, set[str]], optional: dict[str, set[str]],
             occ_labels: dict[str, str], group_labels: dict[str, str], broader: Broader,
             members: dict[str, set[str]], lang: str, stats: Stats, groups_file: str) -> list[SkillRecord]:
    """The kept skills joined with their occupations, ancestor groups (labelled), parents and collections."""
    c = stats.lang(lang)
    is_group = broader.typed_groups | group_labels.keys()
    unlabelled: set[str] = set()
    out: list[SkillRecord] = []
    for uri, f in skills.kept.items():
        ess = sorted(essential.get(uri, ()))
        opt = sorted(optional.get(uri, ()))
        groups = sorted(a for a in ancestors(uri, broader.parents) if a in is_group)
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
    for g in sorted(unlabelled)[:MAX_WARNINGS_PER_KIND]:
        stats.warn("group_label", lang, f"[{lang}] skill group {g} has no label in {groups_file}")
    return out
