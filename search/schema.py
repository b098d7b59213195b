"""The point and payload schema that the worker writes and the searcher reads: defined once, here."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Final

__all__ = [
    "SCHEMA_VERSION",
    "Field",
    "KEYWORD_FIELDS",
    "SKILL_TYPES",
    "REUSE_LEVELS",
    "RELATIONS",
    "COLLECTIONS",
    "STATUSES",
    "ESCO_LANGUAGES",
    "point_id",
    "passage_text",
    "text_hash",
    "collection_name",
]

SCHEMA_VERSION: Final = 1


class Field:
    """Payload keys of a skill point (one point per skill and language)."""

    CONCEPT_URI = "concept_uri"
    PREFERRED_LABEL = "preferred_label"
    DESCRIPTION = "description"
    ALT_LABELS = "alt_labels"
    HIDDEN_LABELS = "hidden_labels"
    SKILL_TYPE = "skill_type"
    REUSE_LEVEL = "reuse_level"
    LANGUAGE = "language"
    STATUS = "status"
    ESSENTIAL_FOR = "essential_for"
    OPTIONAL_FOR = "optional_for"
    OCCUPATIONS = "occupations"
    ESSENTIAL_FOR_LABELS = "essential_for_labels"
    OPTIONAL_FOR_LABELS = "optional_for_labels"
    SKILL_GROUPS = "skill_groups"
    SKILL_GROUP_LABELS = "skill_group_labels"
    BROADER = "broader"
    COLLECTIONS = "collections"
    ESCO_VERSION = "esco_version"
    PASSAGE = "passage"
    TEXT_HASH = "text_hash"


# Fields with a keyword payload index: everything a search may filter or group on.
KEYWORD_FIELDS: Final[tuple[str, ...]] = (
    Field.CONCEPT_URI,
    Field.SKILL_TYPE,
    Field.REUSE_LEVEL,
    Field.LANGUAGE,
    Field.STATUS,
    Field.ESSENTIAL_FOR,
    Field.OPTIONAL_FOR,
    Field.OCCUPATIONS,
    Field.SKILL_GROUPS,
    Field.COLLECTIONS,
    Field.ESCO_VERSION,
    Field.TEXT_HASH,
)

SKILL_TYPES: Final = ("skill/competence", "knowledge")
REUSE_LEVELS: Final = ("transversal", "cross-sector", "sector-specific", "occupation-specific")
RELATIONS: Final = ("essential", "optional", "any")
STATUSES: Final = ("released",)
# Skill collections of ESCO, keyed by the stem of their CSV file (``greenSkillsCollection_en.csv`` -> green).
COLLECTIONS: Final = ("digital", "green", "transversal", "language", "research", "digcomp", "ict")
# The 28 languages of ESCO v1.1/v1.2 (24 EU languages, Icelandic, Norwegian, Arabic, Ukrainian).
ESCO_LANGUAGES: Final = (
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "is", "it", "lt",
    "lv", "mt", "nl", "no", "pl", "pt", "ro", "sk", "sl", "sv", "uk", "ar",
)


def point_id(concept_uri: str, language: str) -> str:
    """Deterministic point id: ``uuid5(NAMESPACE_URL, "<conceptUri>|<language>")``.

    Stable across runs and releases, so a rerun or a retried batch overwrites and never duplicates.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{concept_uri}|{language}"))


def passage_text(preferred_label: str, description: str) -> str:
    """The passage body as the model was trained on it: ``<preferredLabel>: <description>``.

    The ``passage: `` prefix is added by the encoder's prompt, not here. A skill without a description
    is encoded by its label alone.
    """
    label = preferred_label.strip()
    desc = description.strip()
    return f"{label}: {desc}" if desc else label


def text_hash(model_id: str, prompt: str, text: str) -> str:
    """Content hash of what a vector encodes: the model, the prompt and the passage text.

    A new release reuses the stored vector of every point whose hash is unchanged.
    """
    h = hashlib.sha256()
    for part in (model_id, prompt, text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, max_len: int = 48) -> str:
    """Lower-case ``[a-z0-9-]`` form of a model name or version for collection names."""
    s = _SLUG.sub("-", text.lower()).strip("-")
    return s[-max_len:].strip("-") or "x"


def collection_name(alias: str, esco_version: str, model: str, stamp: str) -> str:
    """Name of a versioned collection: ``<alias>__<version>__<model>__<stamp>``."""
    model_tail = model.rstrip("/").split("/")[-1]
    return f"{alias}__{slug(esco_version)}__{slug(model_tail)}__{stamp}"
