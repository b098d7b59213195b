"""The ingest job: read a release, encode what changed, write a new versioned collection, switch the alias.

Flow of :func:`run`:

1. read the release (:mod:`ingest.esco_csv`), one point per skill and language;
2. take the one-writer lock of the alias;
3. find the collection the alias serves now: every point whose text hash (model + prompt + passage) is
   unchanged keeps its stored vector; only new and changed passages are encoded;
4. write a new collection ``<alias>__<version>__<model>__<stamp>`` (or resume the unfinished build of the
   same input, skipping every batch already written), encoding batches sorted by length while the previous
   batch is being upserted;
5. verify it (point count, a probe search), mark it complete and switch the alias in one atomic step;
6. prune complete collections beyond ``keep_collections``.

Services keep searching the old collection until step 5; a worker killed anywhere resumes at step 4.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.esco_csv import Release, SkillRecord, read_release
from ingest.lock import IngestLock
from ingest.settings import IngestSettings
from search.encoders import Encoder, load_encoder
from search.errors import SearchError, StoreLocked, VerificationFailed
from search.schema import (
    KEYWORD_FIELDS,
    SCHEMA_VERSION,
    Field,
    collection_name,
    passage_text,
    point_id,
    text_hash,
)
from search.store import CollectionParams, Store, StoredPoint, open_store

logger = logging.getLogger(__name__)

__all__ = ["IngestSummary", "run", "build_points", "list_collections", "rollback", "PendingPoint"]

STATUS_BUILDING = "building"
STATUS_COMPLETE = "complete"


@dataclass
class PendingPoint:
    """A point to write: its vector comes from the old collection or from the encoder."""

    id: str
    text: str
    payload: dict[str, Any]
    vector: list[float] | np.ndarray | None = None


def _as_list(vector: list[float] | np.ndarray | None) -> list[float] | None:
    return vector.astype(np.float32).tolist() if isinstance(vector, np.ndarray) else vector


@dataclass
class IngestSummary:
    """What an ingest did; printed by the CLI and returned to callers."""

    collection: str
    alias: str
    esco_version: str
    languages: list[str]
    skills_read: dict[str, int]
    points_written: dict[str, int]
    unchanged: int = 0
    changed: int = 0
    new: int = 0
    removed: int = 0
    encoded: int = 0
    reused: int = 0
    resumed_points: int = 0
    truncated_passages: int = 0
    previous_collection: str | None = None
    pruned: list[str] = field(default_factory=list)
    read_stats: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)  # model, backend, precision (and auto's choice)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- points -------------------------------------------------------------------------------------------
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


def build_points(release: Release, mkey: str, passage_prompt: str) -> list[PendingPoint]:
    """One point per skill and language, in release order."""
    out: list[PendingPoint] = []
    for lang in release.languages:
        for rec in release.skills.get(lang, []):
            text = passage_text(rec.preferred_label, rec.description)
            thash = text_hash(mkey, passage_prompt, text)
            out.append(PendingPoint(point_id(rec.concept_uri, lang), text,
                                    payload_of(rec, release.esco_version, text, thash)))
    return out


def _build_key(alias: str, mkey: str, points: Sequence[PendingPoint]) -> str:
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


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the job ------------------------------------------------------------------------------------------
def _find_resumable(store: Store, alias: str, build_key: str, stale_s: float) -> str | None:
    """The unfinished build of the same input, if any; refuses a build another live worker owns."""
    me = socket.gethostname()
    for name in store.list_collections():
        if not name.startswith(f"{alias}__"):
            continue
        meta = store.get_metadata(name)
        if meta.get("status") != STATUS_BUILDING:
            continue
        host, pid = meta.get("owner_host"), meta.get("owner_pid")
        alive = False
        if host == me and isinstance(pid, int) and pid != os.getpid():
            try:
                os.kill(pid, 0)
                alive = True
            except (ProcessLookupError, PermissionError):
                alive = False
        elif host != me:
            alive = (time.time() - float(meta.get("heartbeat_ts", 0))) < stale_s
        if alive:
            from search.errors import IngestLocked

            raise IngestLocked(
                f"collection {name!r} is being built for alias {alias!r} by pid {pid} on {host} "
                f"(last heartbeat {meta.get('heartbeat')}); wait for it to finish"
            )
        if meta.get("build_key") == build_key:
            return name
    return None


def _old_hashes(store: Store, name: str | None) -> dict[str, str]:
    if not name:
        return {}
    return {p.id: str(p.payload.get(Field.TEXT_HASH, "")) for p in store.scroll(name, with_payload=[Field.TEXT_HASH])}


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
            summary = _run_locked(settings, release, store, encoder, progress, after_batch, t_read)
        summary.seconds["total"] = round(time.perf_counter() - t0, 3)
        return summary
    finally:
        if own_store:
            store.close()


def _run_locked(
    settings: IngestSettings,
    release: Release,
    store: Store,
    encoder: Encoder | None,
    progress: bool | None,
    after_batch: Callable[[int], None] | None,
    t_read: float,
) -> IngestSummary:
    alias = settings.collection
    t_load = time.perf_counter()
    enc = encoder or load_encoder(settings)
    mkey = model_key(enc)
    t_load = time.perf_counter() - t_load
    points = build_points(release, mkey, enc.passage_prompt)
    if not points:
        raise VerificationFailed("the release holds no skill to ingest in the languages asked for")
    key = _build_key(alias, mkey, points)

    served = store.resolve_alias(alias)
    if served is None and store.collection_exists(alias):
        raise SearchError(
            f"{alias!r} is a collection, not an alias, in {store.describe()}: this worker writes versioned "
            f"collections behind an alias. Rename that collection or set ESCO_COLLECTION to another alias"
        )
    carried: dict[str, Any] = {}
    if served is not None:
        served_meta = store.get_metadata(served)
        if served_meta.get("vector_size") != enc.dimension:
            served_old: str | None = None  # another model: nothing to reuse
        else:
            served_old = served
        if served_meta.get("model_key") == mkey and served_meta.get("score_threshold") is not None:
            # A calibrated threshold belongs to the model: carry it over to the next release of the same one.
            carried = {
                "score_threshold": served_meta["score_threshold"],
                "calibration": {**(served_meta.get("calibration") or {}), "carried_from": served},
            }
    else:
        served_old = None

    target = _find_resumable(store, alias, key, settings.lock_stale_seconds)
    resumed = target is not None
    meta = {
        **enc.describe(),
        "schema_version": SCHEMA_VERSION,
        "alias": alias,
        "esco_version": release.esco_version,
        "languages": list(release.languages),
        "layout": release.layout,
        "sources": [os.path.basename(str(s)) for s in release.sources],
        "model_key": mkey,
        "build_key": key,
        "points_expected": len(points),
        "status": STATUS_BUILDING,
        "created_at": _now(),
        "created_ts": time.time(),
        "owner_host": socket.gethostname(),
        "owner_pid": os.getpid(),
        "heartbeat": _now(),
        "heartbeat_ts": time.time(),
        "previous": served,
        **carried,
    }
    if target is None:
        stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
        target = collection_name(alias, release.esco_version, enc.model_name, stamp)
        n = 1
        while store.collection_exists(target):
            n += 1
            target = collection_name(alias, release.esco_version, enc.model_name, f"{stamp}-{n}")
        store.create_collection(target, _collection_params(settings, enc.dimension), meta, KEYWORD_FIELDS)
        logger.info("writing new collection %s", target)
    else:
        store.update_metadata(target, {k: meta[k] for k in ("owner_host", "owner_pid", "heartbeat", "heartbeat_ts")})
        logger.info("resuming unfinished collection %s", target)

    # What is already in the target (resume), and what the served collection can give.
    done = _old_hashes(store, target) if resumed else {}
    old = _old_hashes(store, served_old)
    new_ids = {p.id for p in points}
    summary = IngestSummary(
        collection=target, alias=alias, esco_version=release.esco_version, languages=list(release.languages),
        skills_read={lang: len(release.skills.get(lang, [])) for lang in release.languages},
        points_written={lang: 0 for lang in release.languages}, previous_collection=served,
        read_stats=release.stats.as_dict(),
        encoder={k: v for k, v in enc.describe().items() if k in ("model", "backend", "precision", "backend_choice")},
    )
    for p in points:
        h = old.get(p.id)
        if h is None:
            summary.new += 1
        elif h == p.payload[Field.TEXT_HASH]:
            summary.unchanged += 1
        else:
            summary.changed += 1
    summary.removed = sum(1 for i in old if i not in new_ids)

    todo = [p for p in points if done.get(p.id) != p.payload[Field.TEXT_HASH]]
    summary.resumed_points = len(points) - len(todo)
    reuse = [p for p in todo if old.get(p.id) == p.payload[Field.TEXT_HASH]]
    encode = [p for p in todo if old.get(p.id) != p.payload[Field.TEXT_HASH]]

    show = progress if progress is not None else logger.getEffectiveLevel() <= logging.INFO
    from tqdm.auto import tqdm

    bar = tqdm(total=len(points), initial=summary.resumed_points, unit="skill", disable=not show,
               desc=f"ingest {release.esco_version}")
    t_write = 0.0
    t_encode = 0.0
    written = summary.resumed_points

    def upsert(batch: Sequence[PendingPoint]) -> float:
        t = time.perf_counter()
        for chunk in _batches(batch, settings.upsert_batch_size):
            store.upsert(target, [StoredPoint(p.id, p.payload, _as_list(p.vector)) for p in chunk])
        return time.perf_counter() - t

    def heartbeat() -> None:
        store.update_metadata(target, {"heartbeat": _now(), "heartbeat_ts": time.time()})

    # 1) reuse stored vectors of unchanged passages (with their new payloads)
    t = time.perf_counter()
    for chunk in _batches(reuse, 512):
        got = {sp.id: sp.vector for sp in store.retrieve(served_old or "", [p.id for p in chunk], with_vectors=True)}
        for p in chunk:
            p.vector = got.get(p.id)
        missing = [p for p in chunk if p.vector is None]
        if missing:  # vanished from the old collection meanwhile: encode them instead
            encode.extend(missing)
        ready = [p for p in chunk if p.vector is not None]
        t_write += upsert(ready)
        summary.reused += len(ready)
        written += len(ready)
        bar.update(len(ready))
        if after_batch:
            after_batch(written)
    t_reuse = time.perf_counter() - t - t_write

    # 2) encode the rest: batches sorted by length (deterministic, so a resumed run forms the same batches
    #    and gets bit-identical vectors). Encoded points are written in chunks of upsert_batch_size by a
    #    background thread while the next batches encode: one write (and flush) per chunk, not per batch.
    t = time.perf_counter()
    summary.truncated_passages = count_truncated(enc, [p.text for p in encode])
    order = sorted(range(len(encode)), key=lambda i: (len(encode[i].text), encode[i].id))
    ordered = [encode[i] for i in order]
    t_tok = time.perf_counter() - t
    pending: Future[float] | None = None
    pending_n = 0
    buffer: list[PendingPoint] = []
    last_beat = time.time()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upsert") as pool:

        def write(chunk: list[PendingPoint]) -> None:
            nonlocal pending, pending_n, t_write, written
            if pending is not None:  # one write in flight at a time: wait for the previous one
                t_write += pending.result()
                written += pending_n
                if after_batch:
                    after_batch(written)
            pending, pending_n = (pool.submit(upsert, chunk), len(chunk)) if chunk else (None, 0)

        for batch in _batches(ordered, settings.batch_size):
            t = time.perf_counter()
            vecs = enc.encode_passages([p.text for p in batch], batch_size=settings.batch_size)
            t_encode += time.perf_counter() - t
            for p, v in zip(batch, vecs):
                p.vector = v
            buffer.extend(batch)
            if len(buffer) >= settings.upsert_batch_size:
                write(buffer)
                buffer = []
            summary.encoded += len(batch)
            bar.update(len(batch))
            if time.time() - last_beat > 30:
                heartbeat()
                last_beat = time.time()
        write(buffer)  # the rest
        write([])  # and wait for it
    bar.close()

    # 3) verify, mark complete, switch, prune
    t = time.perf_counter()
    store.optimize(target)
    _verify(store, target, points)
    store.update_metadata(target, {"status": STATUS_COMPLETE, "completed_at": _now(), "completed_ts": time.time(),
                                   "points": len(points)})
    store.switch_alias(alias, target)
    summary.pruned = _prune(store, alias, settings.keep_collections)
    t_finish = time.perf_counter() - t

    for p in points:
        summary.points_written[p.payload[Field.LANGUAGE]] += 1
    summary.seconds = {
        "read": round(t_read, 3),
        "load_model": round(t_load, 3),
        "tokenize": round(t_tok, 3),
        "encode": round(t_encode, 3),
        "write": round(t_write, 3),  # upsert time; overlapped with encoding, so not all of it is wall time
        "reuse": round(t_reuse, 3),
        "verify_switch": round(t_finish, 3),
    }
    return summary


def _collection_params(settings: IngestSettings, dim: int) -> CollectionParams:
    return CollectionParams(
        vector_size=dim,
        on_disk_vectors=settings.on_disk_vectors,
        quantization=settings.quantization,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
    )


def _verify(store: Store, name: str, points: Sequence[PendingPoint]) -> None:
    """The collection holds exactly the expected points, and a probe search finds a point by its vector."""
    n = store.count(name)
    if n != len(points):
        raise VerificationFailed(
            f"collection {name!r} holds {n} points, {len(points)} expected; the alias was not switched. "
            f"Run the ingest again to resume it"
        )
    probe = points[len(points) // 2]
    got = store.retrieve(name, [probe.id], with_vectors=True)
    if not got or got[0].vector is None:
        raise VerificationFailed(f"probe point {probe.id} missing from {name!r}; the alias was not switched")
    hits = store.search(name, [got[0].vector], limit=1, exact=True)[0]
    if not hits or hits[0].id != probe.id or hits[0].score < 0.999:
        raise VerificationFailed(
            f"probe search on {name!r} did not return the probe point ({probe.id}); the alias was not switched"
        )


def _prune(store: Store, alias: str, keep: int) -> list[str]:
    """Delete complete collections of this alias beyond the newest ``keep`` (never the served one)."""
    served = store.resolve_alias(alias)
    complete = []
    for name in store.list_collections():
        if name.startswith(f"{alias}__"):
            meta = store.get_metadata(name)
            if meta.get("status") == STATUS_COMPLETE:
                complete.append((float(meta.get("completed_ts", 0.0)), name))
    complete.sort(reverse=True)
    pruned = []
    for _, name in complete[keep:]:
        if name != served:
            try:
                store.delete_collection(name)
            except StoreLocked as exc:  # a service still reads it (edge store): the next ingest prunes it
                logger.warning("kept %s for now: %s", name, exc)
                continue
            pruned.append(name)
    return pruned


# --- operations -------------------------------------------------------------------------------------
def list_collections(store: Store, alias: str | None = None) -> list[dict[str, Any]]:
    """The versioned collections in the store, newest first, with what made them and which one is served."""
    aliases = store.list_aliases()
    served = {v: k for k, v in aliases.items()}
    rows = []
    for name in store.list_collections():
        if alias and not name.startswith(f"{alias}__"):
            continue
        meta = store.get_metadata(name)
        rows.append({
            "collection": name,
            "served_by": served.get(name),
            "status": meta.get("status", "?"),
            "esco_version": meta.get("esco_version"),
            "languages": meta.get("languages"),
            "model": meta.get("model"),
            "points": store.count(name),
            "created_at": meta.get("created_at"),
            "completed_at": meta.get("completed_at"),
            "created_ts": float(meta.get("created_ts", 0.0)),
            "completed_ts": float(meta.get("completed_ts", 0.0)),
        })
    rows.sort(key=lambda r: r["created_ts"], reverse=True)
    return rows


def rollback(store: Store, alias: str, to: str | None = None) -> tuple[str | None, str]:
    """Point ``alias`` back at the previous complete collection (or at ``to``). Returns (old, new)."""
    current = store.resolve_alias(alias)
    if to is None:
        candidates = [r for r in list_collections(store, alias)
                      if r["status"] == STATUS_COMPLETE and r["collection"] != current]
        candidates.sort(key=lambda r: r["completed_ts"], reverse=True)
        if current:
            cur_done = float(store.get_metadata(current).get("completed_ts", 0.0))
            older = [r for r in candidates if r["completed_ts"] < cur_done]
            candidates = older or candidates
        if not candidates:
            raise SearchError(f"no earlier complete collection of alias {alias!r} to roll back to "
                              f"(`esco-ingest list` shows them)")
        to = str(candidates[0]["collection"])
    else:
        meta = store.get_metadata(to)
        if meta.get("status") != STATUS_COMPLETE:
            raise SearchError(f"collection {to!r} is not complete (status {meta.get('status')!r}); refusing to serve it")
    assert to is not None
    store.switch_alias(alias, to)
    return current, to
