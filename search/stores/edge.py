"""The embedded store on Qdrant's own engine, in-process, through ``qdrant-edge-py``.

Layout of the store folder (``root``)::

    root/
      aliases.json              {"alias": "collection", ...}; replaced atomically (temp + fsync + rename)
      .store.lock               flock around read-modify-write of aliases.json and collection.json
      <collection>/
        collection.json         params, keyword fields and metadata; written last on create, replaced atomically
        shard.lock              flock: shared while a process reads the shard, exclusive while one writes it
        shard/                  the EdgeShard (segments, edge_config.json; no WAL: every write is flushed)

One process may write a collection, or any number of processes may read it, at a time (a reader
holds a shared lock on ``shard.lock``, a writer an exclusive one; the kernel drops them when a
process dies). Locks are per collection, so services keep reading collection A through an alias
while the worker builds collection B in the same root; :meth:`EdgeStore.switch_alias` publishes B
(flushes it and gives up the write lock) and readers follow the alias on their next call, because
every name lookup checks whether ``aliases.json`` was replaced (one ``stat``). See
``docs/edge-store.md`` for what was measured.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from search.errors import CollectionNotFound, SearchError, StoreLocked
from search.store import CollectionParams, Filter, ScoredPoint, StoredPoint

__all__ = ["EdgeStore", "DEFAULT_FULL_SCAN_THRESHOLD", "DEFAULT_HNSW_EF", "DEFAULT_ACORN_MAX_SELECTIVITY"]

FORMAT_VERSION = 1
ALIASES_FILE = "aliases.json"
META_FILE = "collection.json"
SHARD_DIR = "shard"
SHARD_LOCK = "shard.lock"
STORE_LOCK = ".store.lock"

# Filtered searches whose filter matches fewer points than this (per segment, by the payload index's
# estimate) score every matching point instead of walking the HNSW graph: exact, and on 768-d vectors
# faster than the graph up to about this many points. See docs/edge-store.md for the measurements.
DEFAULT_FULL_SCAN_THRESHOLD = 20_000
# Filtered searches on the graph (more matches than the threshold) use ACORN (two-hop exploration) while
# the filter passes fewer than this fraction of the points: plain filtered HNSW loses recall from 50%
# selectivity down (0.96 at ef 128 on real ESCO embeddings). Near-total filters (grouping's "has the
# field") stay on the plain graph.
DEFAULT_ACORN_MAX_SELECTIVITY = 0.9
# ef of HNSW searches when the caller gives none (the engine's default is the collection's ef_construct):
# recall@10 0.998 unfiltered on real ESCO embeddings with m=16, ef_construct=100.
DEFAULT_HNSW_EF = 256
# Oversampling of int8-quantized searches before rescoring with the original vectors.
DEFAULT_OVERSAMPLING = 2.0

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_SERVER_HINT = (
    "A Qdrant server (set ESCO_QDRANT_URL) supports concurrent readers and writers."
)


def _check_name(name: str, what: str = "collection") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name == ALIASES_FILE:
        raise ValueError(
            f"invalid {what} name {name!r}: use 1 to 255 letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit"
        )
    return name


def _check_id(point_id: str) -> str:
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ValueError(f"invalid point id {point_id!r}: point ids are UUID strings") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _lock_holders(path: Path) -> list[int]:
    """Pids holding a flock on ``path`` (from /proc/locks; empty where that is not available)."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("->" marks a waiter)
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == want and parts[4].isdigit() and int(parts[4]) != os.getpid():
            pids.append(int(parts[4]))
    return sorted(set(pids))


class _ShardLock:
    """An flock on ``<collection>/shard.lock``: ``"r"`` shared, ``"w"`` exclusive, never blocking."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.mode = ""
        try:
            self._flock(mode)
            # The folder may have been deleted (and the file unlinked) before we got the lock.
            if os.fstat(self.fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(errno.ENOENT, "collection deleted", str(path))
        except BaseException:
            os.close(self.fd)
            raise

    def _flock(self, mode: str) -> None:
        op = fcntl.LOCK_EX if mode == "w" else fcntl.LOCK_SH
        try:
            fcntl.flock(self.fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _Busy(mode) from None
        self.mode = mode

    def upgrade(self) -> None:
        """Shared -> exclusive. Linux drops the shared lock first, so on failure take it back."""
        try:
            self._flock("w")
        except _Busy:
            try:
                self._flock("r")
            except _Busy:  # a writer slipped in between: this process's view is stale
                self.mode = ""
                raise _Busy("w", lost=True) from None
            raise

    def downgrade(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_SH)  # exclusive -> shared never waits
        self.mode = "r"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the flock
            self.fd = -1
            self.mode = ""


class _Busy(Exception):
    def __init__(self, mode: str, lost: bool = False) -> None:
        self.mode = mode
        self.lost = lost


@dataclass
class _Handle:
    """An open shard of one collection and this process's lock on it."""

    name: str
    shard: Any  # qdrant_edge.EdgeShard
    lock: _ShardLock
    params: CollectionParams
    users: int = 0
    retired: bool = False


@dataclass
class _Aliases:
    stamp: tuple[int, int, int] | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    trusted: bool = False


class EdgeStore:
    """A :class:`search.store.Store` on ``qdrant-edge`` shards, one folder per collection under ``root``.

    Shards are opened lazily on first use and kept open until :meth:`close` (or until an alias no
    longer points at a collection this process opened for reading). Thread-safe.
    """

    kind = "edge"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self._handles: dict[str, _Handle] = {}
        self._aliases = _Aliases()
        self._closed = False

    # --- helpers ---------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"embedded edge store {self.root}"

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.root)!r})"

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _folder(self, name: str) -> Path:
        return self.root / name

    def _is_collection(self, name: str) -> bool:
        return bool(_NAME.match(name)) and (self._folder(name) / META_FILE).is_file()

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        """Exclusive lock of the root for read-modify-write of the small JSON files (blocks briefly)."""
        fd = os.open(self.root / STORE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_meta(self, name: str) -> dict[str, Any]:
        try:
            with open(self._folder(name) / META_FILE, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            raise CollectionNotFound(name, self.describe()) from None

    def _load_aliases(self) -> dict[str, str]:
        """The alias map, re-read only when aliases.json changed (one stat per call).

        A replaced file has a new inode and mtime; but file timestamps are coarse (a few ms) and inodes
        get reused, so a copy read less than a second after the file's mtime is not trusted and read again.
        """
        path = self.root / ALIASES_FILE
        try:
            st = os.stat(path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            mtime = st.st_mtime
        except FileNotFoundError:
            stamp, mtime = None, 0.0
        with self._mutex:
            if stamp == self._aliases.stamp and self._aliases.trusted:
                return self._aliases.mapping
            read_at = time.time()
            mapping: dict[str, str] = {}
            if stamp is not None:
                with contextlib.suppress(FileNotFoundError):
                    mapping = json.loads(path.read_text(encoding="utf-8"))
            old = self._aliases.mapping
            self._aliases = _Aliases(stamp, mapping, trusted=read_at - mtime > 1.0)
            # Collections this process read through an alias that now points elsewhere: let them go,
            # so the worker can delete them. A later read by name opens them again.
            gone = set(old.values()) - set(mapping.values())
            for name in gone:
                h = self._handles.get(name)
                if h is not None and h.lock.mode == "r":
                    self._retire(h)
            return mapping

    def _resolve(self, name: str) -> str:
        """The collection ``name`` means (itself or the target of an alias); raises CollectionNotFound."""
        if self._is_collection(name):
            return name
        target = self._load_aliases().get(name)
        if target is not None and self._is_collection(target):
            return target
        raise CollectionNotFound(name, self.describe())

    def _locked_error(self, name: str, mode: str, lost: bool = False) -> StoreLocked:
        lock = self._folder(name) / SHARD_LOCK
        pids = _lock_holders(lock)
        who = f"process {', '.join(map(str, pids))}" if pids else "another process"
        want = "write" if mode == "w" else "read"
        return StoreLocked(
            f"cannot {want} collection {name!r} in {self._folder(name)}: it is open "
            f"{'for reading' if mode == 'w' else 'for writing'} by {who} (lock {lock}). "
            f"The embedded edge store lets one process write a collection, or any number of processes "
            f"read it, at a time{'; this process closed its copy' if lost else ''}. {_SERVER_HINT}"
        )

    def _params(self, meta: Mapping[str, Any]) -> CollectionParams:
        known = {f.name for f in fields(CollectionParams)}
        return CollectionParams(**{k: v for k, v in meta["params"].items() if k in known})

    def _open_handle(self, name: str, mode: str) -> _Handle:
        """Lock and load the shard of collection ``name`` (caller holds the mutex)."""
        meta = self._read_meta(name)
        try:
            lock = _ShardLock(self._folder(name) / SHARD_LOCK, mode)
        except _Busy:
            raise self._locked_error(name, mode) from None
        except FileNotFoundError:
            raise CollectionNotFound(name, self.describe()) from None
        try:
            shard = qe.EdgeShard.load(str(self._folder(name) / SHARD_DIR))
        except BaseException:
            lock.release()
            raise
        h = _Handle(name, shard, lock, self._params(meta))
        self._handles[name] = h
        return h

    @contextlib.contextmanager
    def _use(self, name: str, *, write: bool = False, resolve: bool = True) -> Iterator[_Handle]:
        """The open shard of ``name`` (resolving aliases), locked for reading or writing."""
        if self._closed:
            raise RuntimeError("the store is closed")
        real = self._resolve(name) if resolve else name
        with self._mutex:
            h = self._handles.get(real)
            if h is None:
                h = self._open_handle(real, "w" if write else "r")
            elif write and h.lock.mode != "w":
                try:
                    h.lock.upgrade()
                except _Busy as busy:
                    if busy.lost:
                        self._retire(h)
                    raise self._locked_error(real, "w", busy.lost) from None
            h.users += 1
        try:
            yield h
        finally:
            with self._mutex:
                h.users -= 1
                if h.retired and h.users == 0:
                    self._close_handle(h)

    def _retire(self, h: _Handle) -> None:
        """Forget ``h``; close it now or when its last user is done (caller holds the mutex)."""
        if self._handles.get(h.name) is h:
            del self._handles[h.name]
        h.retired = True
        if h.users == 0:
            self._close_handle(h)

    def _close_handle(self, h: _Handle) -> None:
        try:
            if h.lock.mode == "w":
                h.shard.flush()
            h.shard.close()
        finally:
            h.lock.release()

    @staticmethod
    def _edge_filter(flt: Filter | None, extra: Sequence[Any] = ()) -> Any:
        conds: list[Any] = []
        if flt:
            for c in flt.must:
                if not c.values:
                    raise ValueError(f"filter condition on {c.field!r} has no values")
                conds.append(qe.FieldCondition(key=c.field, match=qe.MatchAny(any=[str(v) for v in c.values])))
        conds.extend(extra)
        return qe.Filter(must=conds) if conds else None

    @staticmethod
    def _edge_config(params: CollectionParams) -> Any:
        dim = params.vector_size
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"vector_size must be a positive integer, got {dim!r}")
        if params.quantization not in ("none", "int8"):
            raise ValueError(f"quantization must be 'none' or 'int8', got {params.quantization!r}")
        kb_per_point = dim * 4 / 1024
        full_scan = int(params.extra.get("full_scan_threshold", DEFAULT_FULL_SCAN_THRESHOLD))
        quant = None
        if params.quantization == "int8":
            quant = qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=float(params.extra.get("quantile", 0.99)), always_ram=True
            )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Cosine,
                memory=qe.Memory.Cold if params.on_disk_vectors else None,
            ),
            hnsw_config=qe.HnswIndexConfig(
                m=params.hnsw_m,
                ef_construct=params.hnsw_ef_construct,
                full_scan_threshold=max(1, int(full_scan * kb_per_point)),
                payload_m=params.extra.get("payload_m"),
            ),
            quantization_config=quant,
            optimizers=qe.EdgeOptimizersConfig(
                # Both thresholds are in KB of vectors for the engine, in points in CollectionParams.
                indexing_threshold=max(1, int(params.indexing_threshold * kb_per_point)),
            ),
            wal_enabled=False,
        )

    # --- collections -----------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._is_collection(p.name))

    def collection_exists(self, name: str) -> bool:
        try:
            self._resolve(name)
        except CollectionNotFound:
            return False
        return True

    def create_collection(
        self, name: str, params: CollectionParams, metadata: Mapping[str, Any], keyword_fields: Sequence[str]
    ) -> None:
        _check_name(name)
        if self._closed:
            raise RuntimeError("the store is closed")
        config = self._edge_config(params)
        if name in self._load_aliases():
            raise ValueError(f"cannot create collection {name!r}: an alias of that name exists")
        folder = self._folder(name)
        with self._mutex:
            try:
                folder.mkdir()
            except FileExistsError:
                if self._is_collection(name):
                    raise ValueError(f"collection {name!r} already exists in {self.describe()}") from None
            # New folder, or one a crashed create left without collection.json: (re)build it under the lock.
            try:
                lock = _ShardLock(folder / SHARD_LOCK, "w")
            except _Busy:
                raise self._locked_error(name, "w") from None
            try:
                if self._is_collection(name):  # another process completed it meanwhile
                    raise ValueError(f"collection {name!r} already exists in {self.describe()}")
                shutil.rmtree(folder / SHARD_DIR, ignore_errors=True)
                shard = qe.EdgeShard.create(str(folder / SHARD_DIR), config)
                try:
                    for key in dict.fromkeys(keyword_fields):
                        shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
                    shard.flush()
                    meta = {
                        "format": FORMAT_VERSION,
                        "name": name,
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "params": asdict(params),
                        "keyword_fields": list(dict.fromkeys(keyword_fields)),
                        "metadata": dict(metadata),
                    }
                    with self._store_lock():
                        _write_json_atomic(folder / META_FILE, meta)
                except BaseException:
                    shard.close()
                    raise
            except BaseException:
                lock.release()
                raise
            self._handles[name] = _Handle(name, shard, lock, params)

    def delete_collection(self, name: str) -> None:
        """Delete a collection (a real name, not an alias); a missing collection is not an error.

        Refuses (SearchError) while an alias points at the collection, like the qdrant-client store:
        switch or delete the alias first. Raises StoreLocked while another process has it open.
        """
        _check_name(name)
        folder = self._folder(name)
        if not folder.is_dir():
            return
        self._refuse_if_aliased(name, self._load_aliases())
        with self._mutex:
            h = self._handles.get(name)
            if h is not None:
                if h.users:
                    raise RuntimeError(f"collection {name!r} is in use by another thread of this process")
                self._retire(h)
            try:
                lock = _ShardLock(folder / SHARD_LOCK, "w")
            except _Busy:
                raise self._locked_error(name, "w") from None
            except FileNotFoundError:
                return
            try:
                with self._store_lock():
                    self._refuse_if_aliased(name, self._load_aliases())
                    # Rename first: the collection disappears in one step, then the files go.
                    trash = self.root / f".deleted-{name}-{uuid.uuid4().hex[:8]}"
                    os.replace(folder, trash)
                    _fsync_dir(self.root)
                shutil.rmtree(trash, ignore_errors=True)
            finally:
                lock.release()

    @staticmethod
    def _refuse_if_aliased(name: str, aliases: Mapping[str, str]) -> None:
        for alias, target in sorted(aliases.items()):
            if target == name:
                raise SearchError(
                    f"collection {name!r} is served by alias {alias!r}; switch the alias first "
                    f"(`esco-ingest rollback`) or delete the alias"
                )

    def get_metadata(self, name: str) -> dict[str, Any]:
        return dict(self._read_meta(self._resolve(name)).get("metadata", {}))

    def update_metadata(self, name: str, changes: Mapping[str, Any]) -> None:
        real = self._resolve(name)
        with self._store_lock():
            meta = self._read_meta(real)
            meta["metadata"] = {**meta.get("metadata", {}), **dict(changes)}
            _write_json_atomic(self._folder(real) / META_FILE, meta)

    def collection_params(self, name: str) -> CollectionParams:
        """The parameters the collection was created with (not part of the Store protocol)."""
        return self._params(self._read_meta(self._resolve(name)))

    def payload_indexes(self, name: str) -> dict[str, str]:
        with self._use(name) as h:
            schema = h.shard.info().payload_schema
        out = {}
        for key, info in schema.items():
            dt = info.data_type
            out[key] = str(getattr(dt, "name", dt)).rsplit(".", 1)[-1].lower()
        return dict(sorted(out.items()))

    def optimize(self, name: str) -> None:
        """Merge segments and build the HNSW index where the collection is above its indexing threshold.

        Below ``params.indexing_threshold`` points the collection keeps plain (exact) search, which is
        as fast there and exact (see docs/edge-store.md).
        """
        with self._use(name, write=True) as h:
            h.shard.optimize()
            h.shard.flush()

    def index_info(self, name: str) -> dict[str, int]:
        """Points, segments and HNSW-indexed vectors of a collection (not part of the Store protocol)."""
        with self._use(name) as h:
            info = h.shard.info()
            return {
                "points": info.points_count,
                "segments": info.segments_count,
                "indexed_vectors": info.indexed_vectors_count,
            }

    # --- aliases ---------------------------------------------------------------------------------
    def resolve_alias(self, alias: str) -> str | None:
        return self._load_aliases().get(alias)

    def list_aliases(self) -> dict[str, str]:
        return dict(sorted(self._load_aliases().items()))

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` by replacing aliases.json in one rename.

        Publishes the collection: if this process writes it, it is flushed and the write lock is
        turned into a read lock, so that reader processes can open it.
        """
        _check_name(alias, "alias")
        if not self._is_collection(collection):
            raise CollectionNotFound(collection, self.describe())
        if self._is_collection(alias):
            raise ValueError(f"cannot create alias {alias!r}: a collection of that name exists")
        with self._mutex:
            h = self._handles.get(collection)
            if h is not None and h.lock.mode == "w":
                h.shard.flush()
                h.lock.downgrade()
        with self._store_lock():
            aliases = dict(self._load_aliases())
            if aliases.get(alias) == collection:
                return
            aliases[alias] = collection
            _write_json_atomic(self.root / ALIASES_FILE, dict(sorted(aliases.items())))
        self._load_aliases()

    def delete_alias(self, alias: str) -> None:
        with self._store_lock():
            aliases = dict(self._load_aliases())
            if aliases.pop(alias, None) is None:
                return
            _write_json_atomic(self.root / ALIASES_FILE, aliases)
        self._load_aliases()

    # --- points ----------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        with self._use(name, write=True) as h:
            dim = h.params.vector_size
            batch = []
            for p in points:
                if p.vector is None:
                    raise ValueError(f"point {p.id} has no vector")
                vec = list(map(float, p.vector))
                if len(vec) != dim:
                    raise ValueError(f"point {p.id} has a vector of size {len(vec)}; the collection's is {dim}")
                batch.append(qe.Point(_check_id(p.id), vec, dict(p.payload)))
            h.shard.update(qe.UpdateOperation.upsert_points(batch))
            h.shard.flush()  # no WAL: a write returns once it is on disk

    def set_payload(self, name: str, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        if not payloads:
            return
        with self._use(name, write=True) as h:
            ids = [_check_id(i) for i in payloads]
            present = {str(r.id) for r in h.shard.retrieve(ids, with_payload=False, with_vector=False)}
            missing = [i for i in ids if i not in present]
            if missing:
                raise KeyError(f"no point with id {missing[0]} in collection {h.name!r} ({len(missing)} missing)")
            for pid, payload in zip(ids, payloads.values()):
                h.shard.update(qe.UpdateOperation.set_payload([pid], dict(payload)))
            h.shard.flush()

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._use(name, write=True) as h:
            h.shard.update(qe.UpdateOperation.delete_points([_check_id(i) for i in ids]))
            h.shard.flush()

    def count(self, name: str, filter: Filter | None = None) -> int:
        with self._use(name) as h:
            return int(h.shard.count(qe.CountRequest(exact=True, filter=self._edge_filter(filter))))

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """The points of ``ids`` that exist, in the order asked."""
        if not ids:
            return []
        wanted = list(dict.fromkeys(_check_id(i) for i in ids))
        with self._use(name) as h:
            recs = h.shard.retrieve(wanted, with_payload=True, with_vector=with_vectors)
        by_id = {str(r.id): r for r in recs}
        return [self._stored(by_id[i], with_vectors) for i in wanted if i in by_id]

    @staticmethod
    def _stored(rec: Any, with_vectors: bool) -> StoredPoint:
        vec = rec.vector if with_vectors else None
        if isinstance(vec, dict):
            vec = vec.get("")
        return StoredPoint(id=str(rec.id), payload=dict(rec.payload or {}), vector=list(vec) if vec is not None else None)

    def scroll(
        self, name: str, with_vectors: bool = False, with_payload: bool | Sequence[str] = True, batch_size: int = 1000
    ) -> Iterator[StoredPoint]:
        """Every point, in id order, ``batch_size`` at a time (the shard stays open between batches)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        real = self._resolve(name)
        sel: Any = with_payload if isinstance(with_payload, bool) else list(with_payload)
        offset: Any = None
        while True:
            with self._use(real, resolve=False) as h:
                recs, offset = h.shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=sel, with_vector=with_vectors)
                )
            for r in recs:
                yield self._stored(r, with_vectors)
            if offset is None or not recs:
                return

    # --- search ----------------------------------------------------------------------------------
    def search(
        self,
        name: str,
        vectors: Sequence[Sequence[float]],
        *,
        filter: Filter | None = None,
        limit: int = 10,
        score_threshold: float | None = None,
        group_by: str | None = None,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_vectors: bool = False,
    ) -> list[list[ScoredPoint]]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if len(vectors) == 0:
            return []
        with self._use(name) as h:
            dim = h.params.vector_size
            queries = []
            for v in vectors:
                q = [float(x) for x in v]
                if len(q) != dim:
                    raise ValueError(f"query vector of size {len(q)}; collection {h.name!r} holds size {dim}")
                queries.append(q)
            quant = None
            if h.params.quantization == "int8":
                # exact=True means exact: the original vectors, not the int8 copies
                quant = qe.QuantizationSearchParams(
                    ignore=exact, rescore=True,
                    oversampling=float(h.params.extra.get("oversampling", DEFAULT_OVERSAMPLING)),
                )
            ef = hnsw_ef if hnsw_ef is not None else max(int(h.params.extra.get("hnsw_ef", DEFAULT_HNSW_EF)), limit)
            acorn = None
            acorn_max = float(h.params.extra.get("acorn_max_selectivity", DEFAULT_ACORN_MAX_SELECTIVITY))
            if filter and not exact and acorn_max > 0:
                acorn = qe.AcornSearchParams(enable=True, max_selectivity=acorn_max)
            params = qe.SearchParams(hnsw_ef=ef, exact=exact, quantization=quant, acorn=acorn)

            def run(qs: list[list[float]], lim: int, extra: list[Sequence[Any]]) -> list[list[Any]]:
                reqs = [
                    qe.QueryRequest(
                        limit=lim,
                        query=qe.Query.Nearest(q),
                        filter=self._edge_filter(filter, ex),
                        score_threshold=score_threshold,
                        params=params,
                        with_payload=True,
                        with_vector=with_vectors,
                    )
                    for q, ex in zip(qs, extra)
                ]
                return h.shard.query_batch(qe.QueryBatchRequest(reqs))

            if group_by is None:
                return [[self._scored(p, with_vectors) for p in hits] for hits in run(queries, limit, [()] * len(queries))]
            return self._grouped(queries, run, group_by, limit, with_vectors)

    @staticmethod
    def _scored(p: Any, with_vectors: bool) -> ScoredPoint:
        vec = p.vector if with_vectors else None
        if isinstance(vec, dict):
            vec = vec.get("")
        return ScoredPoint(
            id=str(p.id), score=float(p.score), payload=dict(p.payload or {}), vector=list(vec) if vec is not None else None
        )

    @staticmethod
    def _group_keys(value: Any) -> list[str | int]:
        """The groups a payload value puts a point in: each keyword or integer (as Qdrant groups)."""
        items = value if isinstance(value, list) else [value]
        return [v for v in items if isinstance(v, (str, int)) and not isinstance(v, bool)]

    def _grouped(
        self, queries: list[list[float]], run: Any, group_by: str, limit: int, with_vectors: bool
    ) -> list[list[ScoredPoint]]:
        """The best hit of each distinct ``group_by`` value, ``limit`` groups ordered by best score.

        The engine has no grouping, so this does what the Qdrant server does: search, keep the first
        (best) hit of each new value, then search again excluding the values found (MatchExcept: a
        point with a list of values stays eligible while one of its values is not found yet), until
        ``limit`` groups or no more hits. With exact search the result is the exact grouping.
        """
        groups: list[dict[Any, ScoredPoint]] = [{} for _ in queries]
        page = [max(2 * limit, 16)] * len(queries)
        pending = list(range(len(queries)))
        while pending:
            lim = max(page[i] for i in pending)
            extra = []
            for i in pending:
                # Points without the field are in no group: leave them out of every page. Found
                # keyword groups are excluded from the next pages (integer groups are only skipped).
                keys = [k for k in groups[i] if isinstance(k, str)]
                if keys:
                    extra.append([qe.FieldCondition(key=group_by, match=qe.MatchExcept(keys))])
                else:
                    extra.append([qe.FieldCondition(key=group_by, is_empty=False)])
            results = run([queries[i] for i in pending], lim, extra)
            still = []
            for i, hits in zip(pending, results):
                g = groups[i]
                before = len(g)
                for p in hits:
                    for key in self._group_keys((p.payload or {}).get(group_by)):
                        if key not in g and len(g) < limit:
                            g[key] = self._scored(p, with_vectors)
                if len(g) < limit and len(hits) == lim:
                    # More candidates remain; if this page found no new group, look deeper.
                    page[i] = max(2 * (limit - len(g)), 16) if len(g) > before else 2 * lim
                    still.append(i)
            pending = still
        return [list(g.values()) for g in groups]

    # --- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and close every open shard and drop this process's locks. Idempotent."""
        with self._mutex:
            for h in list(self._handles.values()):
                self._retire(h)
            self._closed = True
