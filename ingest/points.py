"""The points an ingest writes: one per skill and language, with its payload, passage and text hash.

A point's text hash covers the model (its name, backend, precision and a probe embedding of its weights),
the passage prompt and the passage: an unchanged hash means the stored vector can be reused.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest.esco import Release, SkillRecord
from search import hybrid
from search.encoding import Encoder
from search.schema import SCHEMA_VERSION, Field, passage_text, point_id, text_hash

__all__ = [
    "PendingPoint", "payload_of", "model_key", "build_points", "build_key", "count_truncated", "batches",
    "request_chunks", "REQUEST_BUDGET_BYTES",
]

# Qdrant servers refuse requests over 32 MB by default (service.max_request_size_mb): an upsert request
# is kept under half of that, whatever ESCO_UPSERT_BATCH_SIZE says.
REQUEST_BUDGET_BYTES = 16 * 1024 * 1024
_JSON_BYTES_PER_FLOAT = 24  # a float32 as JSON text with its separator, at most ("-0.012345678901234567,")


@dataclass
class PendingPoint:
    """A point to write: its vectors come from the old collection or from the encoder."""

    id: str
    text: str
    payload: dict[str, Any]
    vector: list[float] | np.ndarray | None = None
    _payload_bytes: int | None = field(default=None, repr=False, compare=False)
    # hybrid collections (ingest.representations): the label texts, their rows, the BM25 vector
    labels: list[str] = field(default_factory=list, repr=False)
    label_rows: np.ndarray | None = field(default=None, repr=False)
    sparse: Any = field(default=None, repr=False)

    def vector_rows(self) -> int:
        """Dense rows this point stores: the passage, or with labels the passage, pref and its label rows (an upper
        bound for occupations, which store no pref)."""
        if self.label_rows is not None:
            return 2 + len(self.label_rows)
        return 2 + len(hybrid.label_rows(self.labels)) if self.labels else 1

    def payload_size(self) -> int:
        """Bytes of the payload as JSON (computed once)."""
        if self._payload_bytes is None:
            self._payload_bytes = len(json.dumps(self.payload, ensure_ascii=False).encode())
        return self._payload_bytes

    def vector_list(self) -> list[float] | None:
        """The vector as a list of floats, as the stores take it."""
        v = self.vector
        return v.astype(np.float32).tolist() if isinstance(v, np.ndarray) else v


def payload_of(rec: SkillRecord, esco_version: str, passage: str, thash: str) -> dict[str, Any]:
    """The payload of one skill point, as a person reads it in the Qdrant dashboard."""
    return {
        Field.CONCEPT_URI: rec.concept_uri,
        Field.PREFERRED_LABEL: rec.preferred_label,
        Field.DESCRIPTION: rec.description,
        Field.ALT_LABELS: list(rec.alt_labels),
        Field.HIDDEN_LABELS: list(rec.hidden_labels),
        Field.SKILL_TYPE: rec.skill_type,
        Field.REUSE_LEVEL: rec.reuse_level,
        Field.LANGUAGE: rec.language,
        Field.STATUS: rec.status,
        Field.ESSENTIAL_FOR: list(rec.essential_for),
        Field.OPTIONAL_FOR: list(rec.optional_for),
        Field.OCCUPATIONS: sorted(set(rec.essential_for) | set(rec.optional_for)),
        Field.ESSENTIAL_FOR_LABELS: list(rec.essential_for_labels),
        Field.OPTIONAL_FOR_LABELS: list(rec.optional_for_labels),
        Field.SKILL_GROUPS: list(rec.skill_groups),
        Field.SKILL_GROUP_LABELS: list(rec.skill_group_labels),
        Field.BROADER: list(rec.broader),
        Field.COLLECTIONS: list(rec.collections),
        Field.ESCO_VERSION: esco_version,
        Field.PASSAGE: passage,
        Field.TEXT_HASH: thash,
    }


def model_key(encoder: Encoder) -> str:
    """What the text hash uses to identify the model: its name and its probe embedding (the weights)."""
    desc = encoder.describe()
    probe = ",".join(f"{x:.3f}" for x in desc.get("probe", []))
    digest = hashlib.sha256(probe.encode()).hexdigest()[:16]
    return f"{desc['model']}|{desc.get('backend', 'torch')}|{desc.get('precision', 'fp32')}|{digest}"


def records_points(languages: Sequence[str], records: Mapping[str, Sequence[Any]], esco_version: str, mkey: str,
                   passage_prompt: str, payload: Callable[[Any, str, str, str], dict[str, Any]]) -> list[PendingPoint]:
    """One point per record (``concept_uri``, ``preferred_label``, ``description``) and language, in release
    order; ``payload(record, esco_version, passage, text_hash)`` makes its payload."""
    out: list[PendingPoint] = []
    for lang in languages:
        for rec in records.get(lang, []):
            text = passage_text(rec.preferred_label, rec.description)
            thash = text_hash(mkey, passage_prompt, text)
            out.append(PendingPoint(point_id(rec.concept_uri, lang), text, payload(rec, esco_version, text, thash)))
    return out


def build_points(release: Release, mkey: str, passage_prompt: str) -> list[PendingPoint]:
    """One point per skill and language, in release order."""
    return records_points(release.languages, release.skills, release.esco_version, mkey, passage_prompt, payload_of)


def build_key(alias: str, mkey: str, points: Sequence[PendingPoint]) -> str:
    """Identifies one input: the same release, languages, model and alias give the same key (for resume)."""
    h = hashlib.sha256(f"{alias}|{mkey}|{SCHEMA_VERSION}".encode())
    for p in points:
        h.update(p.id.encode())
        h.update(json.dumps(p.payload, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:24]


def count_truncated(enc: Encoder, texts: Sequence[str]) -> int:
    """How many passages are longer than the model's token limit (their ends are not encoded).

    Only texts that can be that long are tokenized: a token covers at least one byte of the (NFKC-normalized)
    text, so a text whose bytes, with the prompt and a margin for special tokens, fit the limit cannot be cut.
    """
    limit = enc.max_seq_length
    prompt = len(enc.passage_prompt.encode())

    def size(text: str) -> int:
        return max(len(text.encode()), len(unicodedata.normalize("NFKC", text).encode()))

    long = [t for t in texts if size(t) + prompt + 16 > limit]
    if not long:
        return 0
    return sum(1 for n in enc.token_counts(long, enc.passage_prompt) if n > limit)


def batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``items`` in consecutive slices of ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def request_chunks(points: Sequence[PendingPoint], max_points: int, dim: int,
                   budget: int = REQUEST_BUDGET_BYTES) -> list[Sequence[PendingPoint]]:
    """``points`` in upsert requests of at most ``max_points`` points and about ``budget`` bytes of JSON
    each (vector and payload estimated from above); a single point over the budget goes alone."""
    out: list[Sequence[PendingPoint]] = []
    start, size = 0, 0
    for i, p in enumerate(points):
        n = dim * p.vector_rows() * _JSON_BYTES_PER_FLOAT + p.payload_size() + 48 * len(p.sparse or ()) + 64
        if i > start and (i - start >= max_points or size + n > budget):
            out.append(points[start:i])
            start, size = i, 0
        size += n
    if start < len(points):
        out.append(points[start:])
    return out
