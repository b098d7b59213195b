"""The ingest job: read a release, encode what changed, write a new versioned collection, switch the alias.

Phases of :func:`run` (each a function below):

1. read the release (:mod:`ingest.esco`), one point per skill and language (:mod:`ingest.points`);
2. take the one-writer lock of the alias (:mod:`ingest.ownership`);
3. :func:`_served_state`: the collection the alias serves now; every point whose text hash (model +
   prompt + passage) is unchanged keeps its stored vector, only new and changed passages are encoded;
4. :func:`_open_target`: a new collection ``<alias>__<version>__<model>__<stamp>``, or the unfinished build
   of the same input to resume (skipping every point already written); abandoned builds of other inputs
   are pruned;
5. :func:`_write_reused` and :func:`_encode_and_write`: reused vectors first, then batches sorted by
   length, encoded while the previous chunk is upserted;
6. :func:`_finish`: optimize, verify (point count, a probe search), mark complete and switch the alias in
   one atomic step, prune complete collections beyond ``keep_collections``.

A :class:`~ingest.ownership.Heartbeat` runs through phases 5 and 6. Services keep searching the old
collection until phase 6; a worker killed anywhere resumes at phase 5.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.collections import collection_params, delete_collections, prune_complete, verify
from ingest.errors import VerificationFailed
from ingest.esco import Release, read_release
from ingest.ownership import (
    STATUS_BUILDING,
    STATUS_COMPLETE,
    Heartbeat,
    IngestLock,
    claim_builds,
    heartbeat_interval,
    owner_fields,
)
from ingest import space
from ingest.points import PendingPoint, batches, build_key, build_points, count_truncated, model_key, request_chunks
from ingest.representations import Representations, stored_vectors
from ingest.settings import IngestSettings
from ingest.space import SpaceGuard
from ingest.summary import IngestSummary
from search.encoding import Encoder, load_encoder
from search.errors import SearchError
from search.schema import SCHEMA_VERSION, Field, collection_name
from search.stores import CollectionParams, Store, StoredPoint, open_store

logger = logging.getLogger(__name__)

__all__ = ["IngestSummary", "run"]

@dataclass
class _Build:
    """The state one build passes from phase to phase."""

    settings: IngestSettings
    release: Release
    store: Store
    enc: Encoder
    mkey: str
    points: list[PendingPoint]
    key: str
    reps: Representations
    served: str | None = None  # what the alias serves now
    source: str | None = None  # the collection vectors are reused from (same model), if any
    carried: dict[str, Any] = field(default_factory=dict)
    target: str = ""
    resumed: bool = False
    space: SpaceGuard = field(default_factory=lambda: SpaceGuard(None))
    seconds: dict[str, float] = field(default_factory=dict)
    written: int = 0

    def disk_bytes(self, p: PendingPoint) -> int:
        """What ``p`` takes in the embedded store (:func:`ingest.space.point_bytes`)."""
        return space.point_bytes(self.enc.dimension, p.payload_size(), self.settings.quantization,
                                 p.vector_rows(), len(p.sparse or ()))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run(
    settings: IngestSettings,
    releases: Sequence[str | Path],
    languages: Sequence[str] = ("en",),
    *,
    esco_version: str | None = None,
    limit: int | None = None,
    encoder: Encoder | None = None,
    store: Store | None = None,
    progress: bool | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest one ESCO release into a new versioned collection and switch ``settings.collection`` to it.

    Args:
        settings: worker settings (model, store, alias, batching, retention).
        releases: zips and/or folders of one ESCO release.
        languages: ESCO language codes to ingest (one point per skill and language).
        esco_version: the release's version when its file names do not carry it.
        limit: only the first N skills per language (quick trials).
        encoder: an already loaded encoder (default: the one the settings name).
        store: an open store (default: the one the settings name; closed at the end).
        progress: show a tqdm bar (default: when logging is at INFO or lower).
        after_batch: called with the number of points written so far after each write (tests, monitoring).

    Raises:
        EscoFormatError, ConfigError, IngestLocked, QdrantUnavailable, VerificationFailed.
    """
    t0 = time.perf_counter()
    release = read_release(releases, languages, esco_version, limit=limit)
    t_read = time.perf_counter() - t0
    own_store = store is None
    store = store or open_store(settings)
    try:
        with IngestLock(settings.lock_folder, settings.collection):
            build = _prepare(settings, release, store, encoder)
            build.seconds["read"] = round(t_read, 3)
            summary = _run_build(build, progress, after_batch)
        summary.seconds["total"] = round(time.perf_counter() - t0, 3)
        return summary
    finally:
        if own_store:
            store.close()


def _prepare(settings: IngestSettings, release: Release, store: Store, encoder: Encoder | None) -> _Build:
    """Load the model, build the points and their key, look at what the alias serves."""
    t = time.perf_counter()
    enc = encoder or load_encoder(settings)
    mkey = model_key(enc)
    load_s = time.perf_counter() - t
    points = build_points(release, mkey, enc.passage_prompt)
    if not points:
        raise VerificationFailed("the release holds no skill to ingest in the languages asked for")
    reps = Representations.for_release(settings.representations, points, mkey, enc)
    key = build_key(settings.collection + ("" if reps.kind == "dense" else f"|{reps.kind}"), mkey, points)
    build = _Build(settings, release, store, enc, mkey, points, key, reps)
    if store.kind in ("edge", "local"):  # a server's disk is the server's: nothing to check here
        build.space = SpaceGuard(settings.store_path)
    build.seconds["load_model"] = round(load_s, 3)
    _served_state(build)
    return build


def _served_state(b: _Build) -> None:
    """What the alias serves now, whether its vectors can be reused, and a calibration to carry over."""
    alias = b.settings.collection
    b.served = b.store.resolve_alias(alias)
    if b.served is None:
        if b.store.collection_exists(alias):
            raise SearchError(
                f"{alias!r} is a collection, not an alias, in {b.store.describe()}: this worker writes versioned "
                f"collections behind an alias. Rename that collection or set ESCO_COLLECTION to another alias"
            )
        return
    meta = b.store.get_metadata(b.served)
    if meta.get("vector_size") == b.enc.dimension:  # another model: nothing to reuse
        b.source = b.served
    if meta.get("model_key") == b.mkey and meta.get("score_threshold") is not None:
        # A calibrated threshold belongs to the model: carry it over to the next release of the same one.
        b.carried = {
            "score_threshold": meta["score_threshold"],
            "calibration": {**(meta.get("calibration") or {}), "carried_from": b.served},
            **({"score_thresholds": dict(meta["score_thresholds"])} if meta.get("score_thresholds") else {}),
        }


def _run_build(b: _Build, progress: bool | None, after_batch: Callable[[int], None] | None) -> IngestSummary:
    claim = claim_builds(b.store, b.settings.collection, b.key, b.settings.lock_stale_seconds)
    pruned = delete_collections(b.store, claim.abandoned)  # owners gone long ago; frees their space first
    b.target, b.resumed = claim.resume or "", claim.resume is not None
    summary, reuse, encode = _plan(b)
    _check_space(b, reuse + encode)
    _open_target(b)
    summary.collection = b.target
    with Heartbeat(b.store, b.target, heartbeat_interval(b.settings.lock_stale_seconds)):
        show = progress if progress is not None else logger.getEffectiveLevel() <= logging.INFO
        from tqdm.auto import tqdm

        try:
            with tqdm(total=len(b.points), initial=summary.resumed_points, unit="skill", disable=not show,
                      desc=f"ingest {b.release.esco_version}") as bar:
                encode += _write_reused(b, reuse, summary, bar, after_batch)
                _encode_and_write(b, encode, summary, bar, after_batch)
            _finish(b)
        except Exception as exc:
            full = b.space.converted(exc)  # a full disk: one clear InsufficientSpace
            if full is exc:
                raise
            raise full from exc
        summary.pruned = pruned + prune_complete(b.store, b.settings.collection, b.settings.keep_collections)
    for p in b.points:
        summary.points_written[p.payload[Field.LANGUAGE]] += 1
    summary.seconds = dict(b.seconds)
    return summary


def _params(b: _Build) -> CollectionParams:
    """The layout of the build's new collection: its vectors and how many points it will hold."""
    return collection_params(b.settings, b.enc.dimension, vectors=b.reps.vector_specs(), points=len(b.points))


def _check_space(b: _Build, todo: list[PendingPoint]) -> None:
    """Refuse a build the embedded store's filesystem cannot hold, before anything is written."""
    params = _params(b)
    needed = space.collection_bytes(map(b.disk_bytes, todo), map(b.disk_bytes, b.points),
                                    indexes=params.indexes(len(b.points)), hnsw_m=params.graph_m())
    b.space.before_write(needed, f"for the new collection ({len(todo)} of {len(b.points)} points to write)")


def _open_target(b: _Build) -> None:
    """Create the new collection, or take over the unfinished build of the same input (``b.target``)."""
    settings, release, enc = b.settings, b.release, b.enc
    if b.resumed:
        b.store.update_metadata(b.target, owner_fields())
        logger.info("resuming unfinished collection %s", b.target)
        return
    meta = {
        **enc.describe(),
        "schema_version": SCHEMA_VERSION,
        "alias": settings.collection,
        "esco_version": release.esco_version,
        "languages": list(release.languages),
        "layout": release.layout,
        "sources": [os.path.basename(str(s)) for s in release.sources],
        "model_key": b.mkey,
        "build_key": b.key,
        "points_expected": len(b.points),
        "status": STATUS_BUILDING,
        "created_at": _now(),
        "created_ts": time.time(),
        **owner_fields(),
        "previous": b.served,
        **b.reps.metadata(enc),
        **b.carried,
    }
    stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
    target = collection_name(settings.collection, release.esco_version, enc.model_name, stamp)
    n = 1
    while b.store.collection_exists(target):
        n += 1
        target = collection_name(settings.collection, release.esco_version, enc.model_name, f"{stamp}-{n}")
    b.store.create_collection(target, _params(b), meta, b.reps.keyword_fields())
    b.target = target
    logger.info("writing new collection %s", target)


def _hashes(store: Store, name: str | None, fields: list[str]) -> dict[str, dict[str, str]]:
    if not name:
        return {}
    return {p.id: {f: str(p.payload.get(f, "")) for f in fields} for p in store.scroll(name, with_payload=fields)}


def _plan(b: _Build) -> tuple[IngestSummary, list[PendingPoint], list[PendingPoint]]:
    """The summary's counts against the served collection; which points reuse stored vectors (all of them,
    or the passage or the labels only), which encode everything."""
    fields = b.reps.hash_fields()
    done = _hashes(b.store, b.target, fields) if b.resumed else {}
    old = _hashes(b.store, b.source, fields)
    release = b.release
    summary = IngestSummary(
        collection=b.target, alias=b.settings.collection, esco_version=release.esco_version,
        languages=list(release.languages),
        skills_read={lang: len(release.skills.get(lang, [])) for lang in release.languages},
        points_written={lang: 0 for lang in release.languages}, previous_collection=b.served,
        read_stats=release.stats.as_dict(), representations=list(b.reps.names),
        encoder={k: v for k, v in b.enc.describe().items() if k in ("model", "backend", "precision", "backend_choice")},
    )
    new_ids = {p.id for p in b.points}
    for p in b.points:
        h = old.get(p.id)
        if h is None:
            summary.new += 1
        elif h[Field.TEXT_HASH] == p.payload[Field.TEXT_HASH]:
            summary.unchanged += 1
        else:
            summary.changed += 1
    summary.removed = sum(1 for i in old if i not in new_ids)
    todo = [p for p in b.points if done.get(p.id) != {f: str(p.payload[f]) for f in fields}]
    summary.resumed_points = b.written = len(b.points) - len(todo)
    reuse, encode = [], []
    for p in todo:
        passage, labels = b.reps.needs(p, old.get(p.id))
        reusable = not passage or (b.reps.hybrid and not labels)
        (reuse if p.id in old and reusable else encode).append(p)
    return summary, reuse, encode


def _upsert(b: _Build, points: Sequence[PendingPoint]) -> float:
    t = time.perf_counter()
    hyb = b.reps.hybrid
    for chunk in request_chunks(points, b.settings.upsert_batch_size, b.enc.dimension):
        b.space.before_write(sum(map(b.disk_bytes, chunk)))
        b.store.upsert(b.target, [StoredPoint(p.id, p.payload, None if hyb else p.vector_list(),
                                              stored_vectors(p, hyb)) for p in chunk])
    return time.perf_counter() - t


def _write_reused(b: _Build, reuse: list[PendingPoint], summary: IngestSummary, bar: Any,
                  after_batch: Callable[[int], None] | None) -> list[PendingPoint]:
    """Take the stored vectors of unchanged representations from the served collection; write the points
    that need nothing encoded (with their new payloads). Returns the points left to encode: a changed
    representation, or a point that vanished from the served collection meanwhile."""
    t = time.perf_counter()
    t_write = 0.0
    rest: list[PendingPoint] = []
    for chunk in batches(reuse, 512):
        got = {sp.id: sp for sp in b.store.retrieve(b.source or "", [p.id for p in chunk], with_vectors=True)}
        ready = []
        for p in chunk:
            passage, labels = b.reps.needs(p, {f: str(got[p.id].payload.get(f, "")) for f in b.reps.hash_fields()}
                                           if p.id in got else None)
            if p.id in got:
                b.reps.take_stored(p, got[p.id], not passage, not labels)
            summary.reused += p.vector is not None
            summary.labels_reused += b.reps.hybrid and p.label_rows is not None
            (rest if p.vector is None or (b.reps.hybrid and p.label_rows is None) else ready).append(p)
        t_write += _upsert(b, ready)
        b.written += len(ready)
        bar.update(len(ready))
        if after_batch:
            after_batch(b.written)
    b.seconds["reuse"] = round(time.perf_counter() - t - t_write, 3)
    b.seconds["write"] = t_write
    return rest


def _encode_and_write(b: _Build, encode: list[PendingPoint], summary: IngestSummary, bar: Any,
                      after_batch: Callable[[int], None] | None) -> None:
    """Encode in batches sorted by length (deterministic, so a resumed run forms the same batches and gets
    bit-identical vectors); a background thread writes chunks of ``upsert_batch_size`` while the next
    batches encode: one write (and flush) per chunk, not per batch, one write in flight at a time."""
    settings, enc = b.settings, b.enc
    t = time.perf_counter()
    summary.truncated_passages = count_truncated(enc, [p.text for p in encode if p.vector is None])
    ordered = sorted(encode, key=lambda p: (len(p.text), p.id))
    b.seconds["tokenize"] = round(time.perf_counter() - t, 3)
    t_encode = 0.0
    t_write = b.seconds.get("write", 0.0)
    pending: Future[float] | None = None
    pending_n = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upsert") as pool:

        def write(chunk: list[PendingPoint]) -> None:
            nonlocal pending, pending_n, t_write
            if pending is not None:  # wait for the previous write
                t_write += pending.result()
                b.written += pending_n
                if after_batch:
                    after_batch(b.written)
            pending, pending_n = (pool.submit(_upsert, b, chunk), len(chunk)) if chunk else (None, 0)

        # One write chunk at a time: its label rows in one encoder call (short texts in batches of 16 points cost
        # 12-20 % more, openvino int8w on Zen 4), then its passages batch by batch, then the chunk is written. A
        # chunk is a whole number of batches and a resumed run starts at a written chunk, so it forms the same
        # batches.
        group = max(1, settings.upsert_batch_size // settings.batch_size) * settings.batch_size
        for part in batches(ordered, group):
            t = time.perf_counter()
            summary.labels_encoded += sum(1 for p in part if b.reps.hybrid and p.label_rows is None)
            b.reps.encode(enc, part, [], settings.batch_size)
            t_encode += time.perf_counter() - t
            for batch in batches(part, settings.batch_size):
                t = time.perf_counter()
                passages = [p for p in batch if p.vector is None]
                b.reps.encode(enc, batch, passages, settings.batch_size)
                t_encode += time.perf_counter() - t
                summary.encoded += len(passages)
                bar.update(len(batch))
            write(list(part))
        write([])  # wait for the last write
    b.seconds["encode"] = round(t_encode, 3)
    b.seconds["write"] = round(t_write, 3)  # upsert time; overlapped with encoding, so not all of it is wall time


def _finish(b: _Build) -> None:
    """Optimize, verify, mark complete and switch the alias."""
    t = time.perf_counter()
    if _params(b).indexes(len(b.points)):  # indexed segments (int8 copies, a graph where built) are written
        b.space.before_write(space.collection_bytes(map(b.disk_bytes, b.points)), "to index the new collection")
    b.store.optimize(b.target)
    verify(b.store, b.target, [p.id for p in b.points])
    b.store.update_metadata(b.target, {"status": STATUS_COMPLETE, "completed_at": _now(),
                                       "completed_ts": time.time(), "points": len(b.points)})
    b.store.switch_alias(b.settings.collection, b.target)
    b.seconds["verify_switch"] = round(time.perf_counter() - t, 3)
