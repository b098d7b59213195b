"""What reading a release skipped or repaired: counters by reason and language, and capped warnings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["STAT_KEYS", "ReadStats", "Stats", "MAX_WARNINGS_PER_KIND"]

MAX_WARNINGS_PER_KIND = 10

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
        """Plain dicts and lists, for JSON."""
        return {"counts": {lang: dict(c) for lang, c in self.counts.items()}, "warnings": list(self.warnings)}


class Stats:
    """The counters and warnings being collected while a release is read (:meth:`freeze` ends it)."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.warnings: list[str] = []
        self._warned: Counter[tuple[str, str]] = Counter()

    def lang(self, language: str) -> dict[str, int]:
        return self.counts.setdefault(language, dict.fromkeys(STAT_KEYS, 0))

    def warn(self, kind: str, language: str, message: str) -> None:
        self._warned[(kind, language)] += 1
        if self._warned[(kind, language)] <= MAX_WARNINGS_PER_KIND:
            self.warnings.append(message)

    def freeze(self) -> ReadStats:
        for (kind, language), n in sorted(self._warned.items()):
            if n > MAX_WARNINGS_PER_KIND:
                self.warnings.append(
                    f"[{language}] ... and {n - MAX_WARNINGS_PER_KIND} more warnings of the kind {kind!r}"
                )
        return ReadStats(counts=self.counts, warnings=self.warnings)
