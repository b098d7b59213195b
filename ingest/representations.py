"""The representations a build writes per point, their text hashes, and what a release upgrade reuses.

``ESCO_REPRESENTATIONS=dense``: one unnamed vector, the trained passage (collections as before hybrid search).
``hybrid`` (the default; design: docs/hybrid.md): four named vectors per point (:mod:`search.hybrid`):

* ``passage`` (dense): the passage, its text hash in ``text_hash`` as before;
* ``labels`` (multivector, MaxSim, no HNSW): the first ``search.hybrid.MAX_LABEL_ROWS`` distinct labels
  (:func:`search.hybrid.label_rows`), one row each, encoded with the query prompt; its hash (of those rows'
  texts) in ``labels_hash``;
* ``pref`` (dense): the preferred label, the first ``labels`` row (same text, same prompt, same vector);
* ``bm25`` (sparse, the engine's IDF): BM25 weights of every label by Qdrant's own tokenizer, per language;
  no model, recomputed at every build (its hash in ``bm25_hash`` says what changed).

A release upgrade keeps a stored passage vector whose ``text_hash`` is unchanged and stored label rows whose
``labels_hash`` is unchanged, and encodes only the rest. The collection's metadata records all of it under
``representations``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ingest.points import PendingPoint
from search import hybrid
from search.encoding import Encoder
from search.schema import KEYWORD_FIELDS, Field
from search.stores import VectorSpec

__all__ = ["LABELS_HASH", "BM25_HASH", "Representations", "stored_vectors"]

LABELS_HASH = "labels_hash"  # payload: the labels representation's hash (model, prompt, label texts)
BM25_HASH = "bm25_hash"  # payload: the bm25 representation's hash (tokenizer, document)


@dataclass
class Representations:
    """What a build writes per point: ``kind`` ``dense`` (one unnamed vector) or ``hybrid``."""

    kind: Literal["dense", "hybrid"]
    bm25: dict[str, hybrid.Bm25Terms]  # per language (hybrid only)

    @classmethod
    def for_release(cls, kind: str, points: Sequence[PendingPoint], mkey: str, enc: Encoder) -> Representations:
        """Choose, and give every point its labels, hashes and BM25 vector (``hybrid``)."""
        if kind not in ("dense", "hybrid"):
            raise ValueError(f"ESCO_REPRESENTATIONS must be dense or hybrid, not {kind!r}")
        reps = cls(kind, {})  # type: ignore[arg-type]
        if kind == "hybrid":
            reps._annotate(points, mkey, enc)
        return reps

    @property
    def hybrid(self) -> bool:
        return self.kind == "hybrid"

    @property
    def names(self) -> tuple[str, ...]:
        """The named vectors written (``("passage",)`` for an unnamed dense collection)."""
        return hybrid.REPRESENTATIONS[hybrid.HYBRID] if self.hybrid else (hybrid.PASSAGE,)

    def _annotate(self, points: Sequence[PendingPoint], mkey: str, enc: Encoder) -> None:
        by_lang: dict[str, list[PendingPoint]] = {}
        for p in points:
            pl = p.payload
            p.labels = hybrid.skill_labels(pl[Field.PREFERRED_LABEL], pl[Field.ALT_LABELS], pl[Field.HIDDEN_LABELS])
            by_lang.setdefault(pl[Field.LANGUAGE], []).append(p)
        for lang, group in by_lang.items():
            docs = [hybrid.bm25_document(p.labels) for p in group]
            # avg_len: search.hybrid's constant, not re-measured per release, so that a point's BM25 vector
            # changes only when its labels do
            terms = self.bm25[lang] = hybrid.Bm25Terms(lang)
            tokenizer = {k: v for k, v in terms.describe().items() if k != "avg_len"}
            tkey = "|".join(f"{k}={tokenizer[k]}" for k in sorted(tokenizer))
            for p, doc in zip(group, docs):
                p.sparse = terms.document(doc, tie_break=p.id)
                p.payload[hybrid.LABEL_KEYS_FIELD] = hybrid.label_keys(p.labels)
                p.payload[LABELS_HASH] = hybrid.representation_hash(mkey, hybrid.LABELS, hybrid.label_rows(p.labels),
                                                                    enc.query_prompt)
                p.payload[BM25_HASH] = hybrid.representation_hash(tkey, hybrid.BM25, [doc])

    def vector_specs(self) -> dict[str, VectorSpec]:
        """The named vectors of a new collection (empty: one unnamed dense vector)."""
        if not self.hybrid:
            return {}
        return {
            hybrid.PASSAGE: VectorSpec("dense"),
            hybrid.PREF: VectorSpec("dense"),
            hybrid.LABELS: VectorSpec("multivector", index=False),
            hybrid.BM25: VectorSpec("sparse", idf=True),
        }

    def keyword_fields(self) -> tuple[str, ...]:
        """Payload fields with a keyword index."""
        return (*KEYWORD_FIELDS, hybrid.LABEL_KEYS_FIELD) if self.hybrid else tuple(KEYWORD_FIELDS)

    def metadata(self, enc: Encoder) -> dict[str, Any]:
        """What the collection's metadata records about its representations."""
        reps: dict[str, Any] = {
            hybrid.PASSAGE: {"kind": "dense", "prompt": enc.passage_prompt, "size": enc.dimension,
                             "text": "preferred label: description", "hash_field": Field.TEXT_HASH},
        }
        if self.hybrid:
            reps[hybrid.PREF] = {"kind": "dense", "prompt": enc.query_prompt, "size": enc.dimension,
                                 "text": "the preferred label (the first labels row)", "hash_field": LABELS_HASH}
            reps[hybrid.LABELS] = {"kind": "multivector", "comparator": "max_sim", "prompt": enc.query_prompt,
                                   "size": enc.dimension, "hnsw": False, "hash_field": LABELS_HASH,
                                   "max_rows": hybrid.MAX_LABEL_ROWS,
                                   "text": "the first labels, distinct by label_key: preferred, then alternative"}
            reps[hybrid.BM25] = {"kind": "sparse", "modifier": "idf", "text": "the labels, joined",
                                 "hash_field": BM25_HASH,
                                 "languages": {lang: t.describe() for lang, t in sorted(self.bm25.items())}}
        out: dict[str, Any] = {"representations": reps}
        if self.hybrid:
            out["label_keys_field"] = hybrid.LABEL_KEYS_FIELD
        return out

    def needs(self, p: PendingPoint, old: Mapping[str, str] | None) -> tuple[bool, bool]:
        """(passage to encode, labels to encode) for ``p`` given the source collection's hashes of that point."""
        old = old or {}
        passage = old.get(Field.TEXT_HASH) != p.payload[Field.TEXT_HASH]
        labels = self.hybrid and old.get(LABELS_HASH) != p.payload[LABELS_HASH]
        return passage, labels

    def hash_fields(self) -> list[str]:
        """The payload fields holding representation hashes."""
        return [Field.TEXT_HASH, LABELS_HASH, BM25_HASH] if self.hybrid else [Field.TEXT_HASH]

    def take_stored(self, p: PendingPoint, stored: Any, passage: bool, labels: bool) -> None:
        """Copy the reused vectors (``passage``/``labels`` True: reuse that one) from a stored point."""
        named = getattr(stored, "vectors", None) or {}
        if passage:
            p.vector = named.get(hybrid.PASSAGE, stored.vector)
        if labels and hybrid.LABELS in named:
            p.label_rows = np.asarray(named[hybrid.LABELS], dtype=np.float32)

    def encode(self, enc: Encoder, batch: Sequence[PendingPoint], passages: Sequence[PendingPoint],
               batch_size: int) -> None:
        """Encode the passages of ``passages`` and the label rows of the points of ``batch`` that lack them."""
        if passages:
            vecs = enc.encode_passages([p.text for p in passages], batch_size=batch_size)
            for p, v in zip(passages, vecs):
                p.vector = v
        if not self.hybrid:
            return
        need = [p for p in batch if p.label_rows is None]
        per_point = [hybrid.label_rows(p.labels) for p in need]
        texts = [t for rows in per_point for t in rows]
        if not texts:
            return
        rows = enc.encode_queries(texts)
        i = 0
        for p, own in zip(need, per_point):
            p.label_rows = rows[i : i + len(own)]
            i += len(own)


def stored_vectors(p: PendingPoint, hybrid_kind: bool) -> dict[str, Any] | None:
    """The named vectors of ``p`` as the store takes them (None for an unnamed dense collection)."""
    if not hybrid_kind:
        return None
    assert p.label_rows is not None and p.sparse is not None, p.id
    rows = np.asarray(p.label_rows, dtype=np.float32)
    return {
        hybrid.PASSAGE: p.vector_list(),
        hybrid.PREF: rows[0].tolist(),
        hybrid.LABELS: rows.tolist(),
        hybrid.BM25: p.sparse,
    }
