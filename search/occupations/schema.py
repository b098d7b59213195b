"""The payload of an occupation point (one per occupation and language), written by the ingest and read by the
searcher: defined once, here.

Bottom layer of :mod:`search.occupations`: imports only :mod:`search.hybrid` (the exact-label key, the names of
the representations) and :mod:`search.text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from search.hybrid import BM25, LABEL_MEAN, PASSAGE, FusionParams, label_key
from search.text import clean_text

__all__ = [
    "OccField",
    "OCCUPATION_KEYWORD_FIELDS",
    "DEFAULT_OCCUPATION_ALIAS",
    "COLLECTION_KIND",
    "isco_ancestors",
    "gendered_forms",
    "occupation_labels",
    "occupation_label_keys",
    "OCCUPATION_REPRESENTATIONS",
    "OCCUPATION_FUSION",
    "OCCUPATION_BM25_AVG_LEN",
    "OCCUPATION_MAX_LABEL_ROWS",
    "occupation_label_rows",
    "is_hybrid",
    "OCCUPATION_HIT_FIELDS",
]

#: The alias services search for occupations unless the settings name another one.
DEFAULT_OCCUPATION_ALIAS: Final = "esco_occupations"
#: ``kind`` in the metadata of an occupations collection (skills collections carry none).
COLLECTION_KIND: Final = "occupations"


class OccField:
    """Payload keys of an occupation point."""

    CONCEPT_URI = "concept_uri"
    PREFERRED_LABEL = "preferred_label"
    ALT_LABELS = "alt_labels"
    HIDDEN_LABELS = "hidden_labels"
    DESCRIPTION = "description"
    LANGUAGE = "language"
    STATUS = "status"
    CODE = "code"  # the ESCO occupation code, e.g. 2512.1
    ISCO_GROUP = "isco_group"  # the ISCO-08 unit group code, e.g. 2512
    ISCO_GROUPS = "isco_groups"  # that code and every ancestor's: 2, 25, 251, 2512
    ISCO_GROUP_URIS = "isco_group_uris"  # the same as ESCO URIs (http://data.europa.eu/esco/isco/C2512)
    ISCO_GROUP_LABELS = "isco_group_labels"  # their labels in this language ("" where the release has none)
    BROADER_OCCUPATIONS = "broader_occupations"
    ESSENTIAL_SKILLS = "essential_skills"
    OPTIONAL_SKILLS = "optional_skills"
    SKILLS = "skills"  # both
    ESSENTIAL_SKILL_LABELS = "essential_skill_labels"
    OPTIONAL_SKILL_LABELS = "optional_skill_labels"
    REGULATED_PROFESSION_NOTE = "regulated_profession_note"
    LABEL_KEYS = "label_keys"  # search.hybrid.label_key of every label and gendered form
    ESCO_VERSION = "esco_version"
    PASSAGE = "passage"
    TEXT_HASH = "text_hash"
    LABELS_HASH = "labels_hash"  # hybrid: hash of the model, prompt and label rows (re-encoded when it changes)


#: The payload a title-search hit needs: the skill lists and label keys (most of a point's ~10 KB) stay in the store.
OCCUPATION_HIT_FIELDS: Final[tuple[str, ...]] = (
    OccField.CONCEPT_URI, OccField.PREFERRED_LABEL, OccField.LANGUAGE, OccField.DESCRIPTION, OccField.ALT_LABELS,
    OccField.ISCO_GROUP, OccField.ISCO_GROUPS, OccField.CODE, OccField.REGULATED_PROFESSION_NOTE,
    OccField.ESCO_VERSION,
)

#: Fields with a keyword payload index: everything a search may filter on.
OCCUPATION_KEYWORD_FIELDS: Final[tuple[str, ...]] = (
    OccField.CONCEPT_URI,
    OccField.LANGUAGE,
    OccField.STATUS,
    OccField.CODE,
    OccField.ISCO_GROUP,
    OccField.ISCO_GROUPS,
    OccField.ISCO_GROUP_URIS,
    OccField.BROADER_OCCUPATIONS,
    OccField.ESSENTIAL_SKILLS,
    OccField.OPTIONAL_SKILLS,
    OccField.SKILLS,
    OccField.REGULATED_PROFESSION_NOTE,
    OccField.LABEL_KEYS,
    OccField.ESCO_VERSION,
    OccField.TEXT_HASH,
)

_ISCO_CODE = re.compile(r"^\d{1,4}$")


def isco_ancestors(code: str) -> list[str]:
    """An ISCO-08 code and the codes of every group above it, broadest first (``"2512"`` -> ``2, 25, 251,
    2512``); ISCO codes nest by prefix. Empty for anything that is not 1 to 4 digits."""
    code = (code or "").strip()
    if not _ISCO_CODE.match(code):
        return []
    return [code[:i] for i in range(1, len(code) + 1)]


def gendered_forms(label: str) -> list[str]:
    """The gendered forms a label joins with a slash: ``"Bäcker/Bäckerin"`` -> ``["Bäcker", "Bäckerin"]``.

    Only where the parts share a stem of at least three letters (``Verkäufer/Verkäuferin``,
    ``Pflegefachfrau/Pflegefachmann``), so that ``"IT/software"``-like labels stay whole. Words around the
    slashed pair are kept on both forms: ``"leitender Bäcker/leitende Bäckerin"`` is not split (two slashed
    words), ``"Bäcker/Bäckerin (Handwerk)"`` gives ``"Bäcker (Handwerk)"`` and ``"Bäckerin (Handwerk)"``.
    """
    text = clean_text(label)
    if text.count("/") != 1 or " /" in text or "/ " in text:
        return []
    left, right = text.split("/")
    head, _, first = left.rpartition(" ")
    second, _, tail = right.partition(" ")
    if not first or not second:
        return []
    stem = 0
    for a, b in zip(first.casefold(), second.casefold()):
        if a != b:
            break
        stem += 1
    if stem < 3:
        return []
    pre = f"{head} " if head else ""
    post = f" {tail}" if tail else ""
    return [f"{pre}{first}{post}", f"{pre}{second}{post}"]


def occupation_labels(preferred: str, alternatives: Iterable[str] = (), hidden: Iterable[str] = ()) -> list[str]:
    """Every label of an occupation (cleaned, distinct by :func:`~search.hybrid.label_key`), preferred first,
    each followed by its gendered forms."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in (preferred, *alternatives, *hidden):
        for text in (clean_text(raw), *gendered_forms(raw)):
            key = label_key(text)
            if text and key not in seen:
                seen.add(key)
                out.append(text)
    return out


def occupation_label_keys(preferred: str, alternatives: Iterable[str] = (), hidden: Iterable[str] = ()) -> list[str]:
    """The ``label_keys`` payload: :func:`~search.hybrid.label_key` of every label and gendered form."""
    return [label_key(t) for t in occupation_labels(preferred, alternatives, hidden)]


#: The named vectors of a hybrid occupations collection (``ESCO_REPRESENTATIONS=hybrid``, the default): the
#: passage (dense), ``label_mean`` (dense: the normalised mean of the vectors of every label and gendered form,
#: query prompt) and BM25 over the labels (sparse, the engine's IDF). Measured in docs/occupations.md: the mean
#: ranks held-out titles within 0.02 MRR@10 of every label as a row at the cost of one dense leg (a MaxSim over
#: every row made the engine's request alone 0.84 ms against the 1 ms goal).
OCCUPATION_REPRESENTATIONS: Final[tuple[str, ...]] = (PASSAGE, LABEL_MEAN, BM25)
#: At most this many labels per occupation go into the mean (11 with gendered forms on average).
OCCUPATION_MAX_LABEL_ROWS: Final = 64
#: BM25 length normalisation: the mean length of an occupation's label document (English v1.1.1: 10.5 terms;
#: the skills' is 7.3). A constant, so that a point's BM25 vector changes only when its labels do.
OCCUPATION_BM25_AVG_LEN: Final = 10.5
#: The fused title request: RRF (k = 10, the skills' weights) over the passage, the label mean and BM25, each
#: the top 100 under the filter; exact labels are put first by the occupation index instead of an engine boost
#: (they include gendered forms, and the matched label is reported).
OCCUPATION_FUSION: Final = FusionParams(representations=OCCUPATION_REPRESENTATIONS, labels_candidates=(),
                                        promote_exact=False)


def occupation_label_rows(labels: list[str]) -> list[str]:
    """The labels encoded for the ``labels`` mean: the first :data:`OCCUPATION_MAX_LABEL_ROWS`."""
    return list(labels[:OCCUPATION_MAX_LABEL_ROWS])


def is_hybrid(metadata: Mapping[str, Any]) -> bool:
    """True when an occupations collection holds every one of :data:`OCCUPATION_REPRESENTATIONS`."""
    reps = metadata.get("representations") or {}
    return all(r in reps for r in OCCUPATION_REPRESENTATIONS)
