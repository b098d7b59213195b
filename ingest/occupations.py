"""The occupations collection: one point per occupation and language, versioned behind its own alias.

:func:`occupation_points` turns an :class:`~ingest.esco.occupations.OccupationRelease` into points (passage
``<preferredLabel>: <description>`` in the model's passage form, payload of
:class:`search.occupations.schema.OccField`); :func:`build_occupations` writes them with the lifecycle of the
skills collection, built from the same public helpers of :mod:`ingest.collections`, :mod:`ingest.ownership`,
:mod:`ingest.points` and :mod:`ingest.collections`:

* the alias's one-writer lock (:class:`~ingest.ownership.IngestLock`) and the heartbeat;
* representations (``ESCO_REPRESENTATIONS``): ``hybrid`` (the default) writes the named vectors of
  :data:`~search.occupations.schema.OCCUPATION_REPRESENTATIONS` (the passage, the mean of every label's vector,
  BM25 over the labels) for the fused title search; ``dense`` the passage alone;
* incremental: a point whose text hash (model + prompt + passage) and labels hash (model + prompt + label
  rows) are unchanged keeps the vectors of the collection the alias serves; only the others are encoded;
* resumable: the unfinished build of the same input (same build key) is taken over, skipping what it holds;
* verified (point count, a probe search) before the alias is switched in one step; complete collections
  beyond ``keep_collections`` pruned.

The alias is ``settings.occupation_collection`` when the settings have that field, else
:data:`~search.occupations.schema.DEFAULT_OCCUPATION_ALIAS` (``esco_occupations``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ingest.collections import collection_params, delete_collections, prune_complete, verify
from ingest.errors import VerificationFailed
from ingest.esco.occupations import OccupationRecord, OccupationRelease, isco_group_uri, read_occupations
from ingest.ownership import (STATUS_BUILDING, STATUS_COMPLETE, Heartbeat, IngestLock, claim_builds,
                              heartbeat_interval, owner_fields)
from ingest.points import (PendingPoint, batches, build_key, count_truncated, model_key, records_points,
                           request_chunks)
from ingest.summary import OccupationIngestSummary
import numpy as np

from search import hybrid
from search.encoding import Encoder, load_encoder
from search.errors import SearchError
from search.occupations.schema import (COLLECTION_KIND, DEFAULT_OCCUPATION_ALIAS, OCCUPATION_BM25_AVG_LEN,
                                       OCCUPATION_KEYWORD_FIELDS, OCCUPATION_MAX_LABEL_ROWS,
                                       OCCUPATION_REPRESENTATIONS, OccField, occupation_label_keys,
                                       occupation_label_rows, occupation_labels)
from search.stores import VectorSpec
from search.schema import SCHEMA_VERSION, collection_name
from search.stores import Store, StoredPoint, open_store

logger = logging.getLogger(__name__)

__all__ = ["OccupationIngestSummary", "occupation_alias", "occupation_payload", "occupation_points",
           "build_occupations", "run_occupations", "label_mean"]


def occupation_alias(settings: Any) -> str:
    """The alias of the occupations collection the settings name (``esco_occupations`` by default)."""
    return str(getattr(settings, "occupation_collection", None) or DEFAULT_OCCUPATION_ALIAS)


def occupation_payload(rec: OccupationRecord, esco_version: str, passage: str, thash: str) -> dict[str, Any]:
    """The payload of one occupation point, as a person reads it in the Qdrant dashboard."""
    return {
        OccField.CONCEPT_URI: rec.concept_uri,
        OccField.PREFERRED_LABEL: rec.preferred_label,
        OccField.ALT_LABELS: list(rec.alt_labels),
        OccField.HIDDEN_LABELS: list(rec.hidden_labels),
        OccField.DESCRIPTION: rec.description,
        OccField.LANGUAGE: rec.language,
        OccField.STATUS: rec.status,
        OccField.CODE: rec.code,
        OccField.ISCO_GROUP: rec.isco_group,
        OccField.ISCO_GROUPS: list(rec.isco_groups),
        OccField.ISCO_GROUP_URIS: [isco_group_uri(g) for g in rec.isco_groups],
        OccField.ISCO_GROUP_LABELS: list(rec.isco_group_labels),
        OccField.BROADER_OCCUPATIONS: list(rec.broader_occupations),
        OccField.ESSENTIAL_SKILLS: list(rec.essential_skills),
        OccField.OPTIONAL_SKILLS: list(rec.optional_skills),
        OccField.SKILLS: sorted(set(rec.essential_skills) | set(rec.optional_skills)),
        OccField.ESSENTIAL_SKILL_LABELS: list(rec.essential_skill_labels),
        OccField.OPTIONAL_SKILL_LABELS: list(rec.optional_skill_labels),
        OccField.REGULATED_PROFESSION_NOTE: rec.regulated_profession_note,
        OccField.LABEL_KEYS: occupation_label_keys(rec.preferred_label, rec.alt_labels, rec.hidden_labels),
        OccField.ESCO_VERSION: esco_version,
        OccField.PASSAGE: passage,
        OccField.TEXT_HASH: thash,
    }


def occupation_points(release: OccupationRelease, mkey: str, passage_prompt: str) -> list[PendingPoint]:
    """One point per occupation and language, in release order."""
    return records_points(release.languages, release.occupations, release.esco_version, mkey, passage_prompt,
                          occupation_payload)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _hashes(store: Store, name: str | None) -> dict[str, tuple[str, str]]:
    """(text hash, labels hash) of every point of a collection (the labels hash empty in a dense one)."""
    if not name:
        return {}
    return {p.id: (str(p.payload.get(OccField.TEXT_HASH, "")), str(p.payload.get(OccField.LABELS_HASH, "")))
            for p in store.scroll(name, with_payload=[OccField.TEXT_HASH, OccField.LABELS_HASH])}


def _state(p: PendingPoint) -> tuple[str, str]:
    return str(p.payload[OccField.TEXT_HASH]), str(p.payload.get(OccField.LABELS_HASH, ""))


def _annotate(points: Sequence[PendingPoint], mkey: str, encoder: Encoder) -> dict[str, hybrid.Bm25Terms]:
    """Give every point its labels, labels hash and BM25 vector (hybrid); returns the BM25 terms per language."""
    terms: dict[str, hybrid.Bm25Terms] = {}
    for p in points:
        pl = p.payload
        p.labels = occupation_labels(pl[OccField.PREFERRED_LABEL], pl[OccField.ALT_LABELS], pl[OccField.HIDDEN_LABELS])
        lang = pl[OccField.LANGUAGE]
        if lang not in terms:
            terms[lang] = hybrid.Bm25Terms(lang, avg_len=OCCUPATION_BM25_AVG_LEN)
        p.sparse = terms[lang].document(hybrid.bm25_document(p.labels), tie_break=p.id)
        pl[OccField.LABELS_HASH] = hybrid.representation_hash(mkey, hybrid.LABEL_MEAN, occupation_label_rows(p.labels),
                                                              encoder.query_prompt)
    return terms


def label_mean(rows: np.ndarray) -> np.ndarray:
    """The ``label_mean`` representation of an occupation: the normalised mean of its label vectors (one row).

    On 3,007 occupations it ranks held-out titles within 0.02 MRR@10 of every label as a row (docs/occupations.md)
    at the cost of one dense vector: the title search stays under 1 ms.
    """
    m = np.asarray(rows, dtype=np.float32).mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12))[None, :].astype(np.float32)


def _vectors(p: PendingPoint) -> dict[str, Any]:
    assert p.label_rows is not None and p.sparse is not None, p.id
    return {hybrid.PASSAGE: p.vector_list(), hybrid.LABEL_MEAN: np.asarray(p.label_rows, np.float32)[0].tolist(),
            hybrid.BM25: p.sparse}


def _representations(encoder: Encoder, terms: dict[str, hybrid.Bm25Terms]) -> dict[str, Any]:
    """The collection metadata's ``representations`` of a hybrid occupations collection."""
    return {
        hybrid.PASSAGE: {"kind": "dense", "prompt": encoder.passage_prompt, "size": encoder.dimension,
                         "text": "preferred label: description", "hash_field": OccField.TEXT_HASH},
        hybrid.LABEL_MEAN: {"kind": "dense", "prompt": encoder.query_prompt, "size": encoder.dimension,
                            "hash_field": OccField.LABELS_HASH, "max_labels": OCCUPATION_MAX_LABEL_ROWS,
                            "text": "the normalised mean of the vectors of every label and gendered form, distinct "
                                    "by label_key (preferred, alternative, hidden)"},
        hybrid.BM25: {"kind": "sparse", "modifier": "idf", "text": "the labels, joined",
                      "languages": {lang: t.describe() for lang, t in sorted(terms.items())}},
    }


def build_occupations(
    settings: Any,
    release: OccupationRelease,
    store: Store,
    encoder: Encoder,
    *,
    alias: str | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> OccupationIngestSummary:
    """Write the occupations of ``release`` into a new versioned collection and switch the alias to it.

    Args:
        settings: the worker's :class:`~ingest.settings.IngestSettings` (batching, lock folder, retention).
        release: what :func:`~ingest.esco.occupations.read_occupations` read.
        store: an open store (left open).
        encoder: the loaded model (the one the skills collection uses).
        alias: the alias to switch (default: :func:`occupation_alias` of the settings).
        after_batch: called with the number of points written so far after each write.

    Raises:
        IngestLocked, QdrantUnavailable, VerificationFailed, SearchError (the alias is a plain collection).
    """
    t0 = time.perf_counter()
    alias = alias or occupation_alias(settings)
    mkey = model_key(encoder)
    points = occupation_points(release, mkey, encoder.passage_prompt)
    if not points:
        raise VerificationFailed("the release holds no occupation to ingest in the languages asked for")
    hyb = getattr(settings, "representations", "hybrid") == "hybrid"
    terms = _annotate(points, mkey, encoder) if hyb else {}
    key = build_key(alias, mkey, points)
    summary = OccupationIngestSummary(
        collection="", alias=alias, esco_version=release.esco_version, languages=list(release.languages),
        occupations_read={lang: len(release.occupations.get(lang, [])) for lang in release.languages},
        points=len(points), warnings=list(release.warnings),
    )
    with IngestLock(settings.lock_folder, alias):
        served = store.resolve_alias(alias)
        if served is None and store.collection_exists(alias):
            raise SearchError(f"{alias!r} is a collection, not an alias, in {store.describe()}: occupations are "
                              "written to versioned collections behind an alias. Rename that collection or set "
                              "ESCO_OCCUPATION_COLLECTION to another alias")
        source = served if served and store.get_metadata(served).get("vector_size") == encoder.dimension else None
        claim = claim_builds(store, alias, key, settings.lock_stale_seconds)
        target, resumed = _open_target(settings, release, store, encoder, alias, mkey, key, served, claim.resume,
                                       len(points), _representations(encoder, terms) if hyb else None)
        summary.collection, summary.previous_collection = target, served
        done = _hashes(store, target) if resumed else {}
        old = _hashes(store, source)
        for p in points:
            h = old.get(p.id)
            if h is None:
                summary.new += 1
            elif h == _state(p):
                summary.unchanged += 1
            else:
                summary.changed += 1
        ids = {p.id for p in points}
        summary.removed = sum(1 for i in old if i not in ids)
        todo = [p for p in points if done.get(p.id) != _state(p)]
        summary.resumed_points = written = len(points) - len(todo)
        with Heartbeat(store, target, heartbeat_interval(settings.lock_stale_seconds)):
            pruned = delete_collections(store, claim.abandoned)

            def write(chunk: Sequence[PendingPoint]) -> None:
                nonlocal written
                for part in request_chunks(chunk, settings.upsert_batch_size, encoder.dimension):
                    store.upsert(target, [StoredPoint(p.id, p.payload, None, _vectors(p)) if hyb else
                                          StoredPoint(p.id, p.payload, p.vector_list()) for p in part])
                written += len(chunk)
                if after_batch:
                    after_batch(written)

            encode = [p for p in todo if old.get(p.id) != _state(p)]
            for chunk in batches([p for p in todo if old.get(p.id) == _state(p)], 512):
                got = {sp.id: sp for sp in store.retrieve(source or "", [p.id for p in chunk], with_vectors=True,
                                                          with_payload=False)}
                for p in chunk:
                    sp = got.get(p.id)
                    mean = (sp.vectors or {}).get(hybrid.LABEL_MEAN) if sp is not None and hyb else None
                    # both vectors, or none (the point vanished from the served collection meanwhile): encoded
                    p.vector = sp.vector if sp is not None and (mean or not hyb) else None
                    p.label_rows = np.asarray([mean], np.float32) if mean and p.vector is not None else None
                encode.extend(p for p in chunk if p.vector is None)
                ready = [p for p in chunk if p.vector is not None]
                write(ready)
                summary.reused += len(ready)
            t = time.perf_counter()
            summary.truncated_passages = count_truncated(encoder, [p.text for p in encode])
            # sorted by length (deterministic batches: a resumed run gets bit-identical vectors)
            ordered = sorted(encode, key=lambda p: (len(p.text), p.id))
            buffer: list[PendingPoint] = []
            for batch in batches(ordered, settings.batch_size):
                vecs = encoder.encode_passages([p.text for p in batch], batch_size=settings.batch_size)
                for p, v in zip(batch, vecs):
                    p.vector = v
                if hyb:  # every label of the batch in one call, with the query prompt; stored: their mean
                    per_point = [occupation_label_rows(p.labels) for p in batch]
                    rows = encoder.encode_queries([t for r in per_point for t in r])
                    i = 0
                    for p, own in zip(batch, per_point):
                        p.label_rows, i = label_mean(rows[i:i + len(own)]), i + len(own)
                buffer.extend(batch)
                summary.encoded += len(batch)
                if len(buffer) >= settings.upsert_batch_size:
                    write(buffer)
                    buffer = []
            write(buffer)
            summary.seconds["encode_write"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            store.optimize(target)
            verify(store, target, [p.id for p in points])
            store.update_metadata(target, {"status": STATUS_COMPLETE, "completed_at": _now(),
                                           "completed_ts": time.time(), "points": len(points)})
            store.switch_alias(alias, target)
            summary.seconds["verify_switch"] = round(time.perf_counter() - t, 3)
            summary.pruned = pruned + prune_complete(store, alias, settings.keep_collections)
    summary.seconds["total"] = round(time.perf_counter() - t0, 3)
    return summary


def _open_target(settings: Any, release: OccupationRelease, store: Store, encoder: Encoder, alias: str, mkey: str,
                 key: str, served: str | None, resume: str | None, n_points: int,
                 representations: dict[str, Any] | None) -> tuple[str, bool]:
    """The unfinished build of the same input to resume, or a new collection."""
    if resume is not None:
        store.update_metadata(resume, owner_fields())
        logger.info("resuming unfinished occupations collection %s", resume)
        return resume, True
    meta = {
        **encoder.describe(),
        "kind": COLLECTION_KIND,
        "schema_version": SCHEMA_VERSION,
        "alias": alias,
        "esco_version": release.esco_version,
        "languages": list(release.languages),
        "layout": release.layout,
        "sources": [os.path.basename(str(s)) for s in release.sources],
        "model_key": mkey,
        "build_key": key,
        "points_expected": n_points,
        "status": STATUS_BUILDING,
        "created_at": _now(),
        "created_ts": time.time(),
        **owner_fields(),
        "previous": served,
        **({"representations": representations} if representations else {}),
    }
    stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
    target = collection_name(alias, release.esco_version, encoder.model_name, stamp)
    n = 1
    while store.collection_exists(target):
        n += 1
        target = collection_name(alias, release.esco_version, encoder.model_name, f"{stamp}-{n}")
    vectors = {hybrid.PASSAGE: VectorSpec("dense"), hybrid.LABEL_MEAN: VectorSpec("dense"),
               hybrid.BM25: VectorSpec("sparse", idf=True)} if representations else None
    assert vectors is None or set(vectors) == set(OCCUPATION_REPRESENTATIONS)
    store.create_collection(target, collection_params(settings, encoder.dimension, vectors, points=n_points), meta,
                            OCCUPATION_KEYWORD_FIELDS)
    logger.info("writing new occupations collection %s", target)
    return target, False


def run_occupations(
    settings: Any,
    releases: Sequence[str] | Sequence[Any],
    languages: Sequence[str] = ("en",),
    *,
    esco_version: str | None = None,
    encoder: Encoder | None = None,
    store: Store | None = None,
) -> OccupationIngestSummary:
    """Read the occupations of a release and build their collection (:func:`build_occupations`); opens the
    settings' store and loads their model where none is given (pass the skills ingest's to load it once)."""
    release = read_occupations(releases, languages, esco_version)
    own = store is None
    store = store or open_store(settings)
    try:
        return build_occupations(settings, release, store, encoder or load_encoder(settings))
    finally:
        if own:
            store.close()
