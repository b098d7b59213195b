"""The edge store's open shards: which collection a name means, and this process's lock on each shard.

One process may write a collection, or any number of processes may read it, at a time (a reader holds
a shared lock on ``shard.lock``, a writer an exclusive one; the kernel drops them when a process dies).
Locks are per collection, so services keep reading collection A through an alias while the worker
builds collection B in the same root; readers follow the alias on their next call, because every name
lookup checks whether ``aliases.json`` was replaced (one ``stat``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from search.errors import CollectionNotFound, StoreLocked
from search.stores.base import CollectionParams
from search.stores.edge_fusion import GroupValues
from search.stores.edge_files import (
    ALIASES_FILE,
    META_FILE,
    NAME,
    SHARD_DIR,
    SHARD_LOCK,
    AliasFile,
    Busy,
    ShardLock,
    check_engine,
    check_reader_space,
    engine_record,
    lock_holders,
    needs_engine_update,
    store_lock,
    write_json_atomic,
)

__all__ = ["Handle", "ShardPool"]

logger = logging.getLogger(__name__)

_SERVER_HINT = "A Qdrant server (set ESCO_QDRANT_URL) supports concurrent readers and writers."


@dataclass
class Handle:
    """An open shard of one collection and this process's lock on it."""

    name: str
    shard: Any  # qdrant_edge.EdgeShard
    lock: ShardLock
    params: CollectionParams
    meta: dict[str, Any]
    users: int = 0
    retired: bool = False
    # payload field -> point id -> its value, read while the shard is open for reading only (grouped searches)
    group_values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def group_values_of(self, name: str) -> GroupValues | None:
        """The cache of payload field ``name`` by point id and the read of the points it lacks, for grouped
        searches; None while this process may write the collection (its values may change then). Under a read
        lock nobody writes it, so a value read once holds while the shard is open."""
        if self.lock.mode != "r":
            return None
        cache = self.group_values.setdefault(name, {})

        def fetch(ids: list[str]) -> dict[str, Any]:
            return {str(r.id): r for r in self.shard.retrieve(ids, with_payload=[name], with_vector=False)}

        return cache, fetch


def params_of(meta: Mapping[str, Any]) -> CollectionParams:
    """The :class:`CollectionParams` recorded in a collection.json (unknown keys ignored)."""
    known = {f.name for f in fields(CollectionParams)}
    return CollectionParams(**{k: v for k, v in meta["params"].items() if k in known})


class ShardPool:
    """The collections under ``root`` and the shards this process has open. Thread-safe."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where
        self.mutex = threading.RLock()
        self.handles: dict[str, Handle] = {}
        self.aliases = AliasFile(root / ALIASES_FILE)
        self.closed = False

    # --- names -----------------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        return self.root / name

    def is_collection(self, name: str) -> bool:
        return bool(NAME.match(name)) and (self.folder(name) / META_FILE).is_file()

    def read_meta(self, name: str) -> dict[str, Any]:
        """collection.json of ``name`` (a real collection); raises CollectionNotFound."""
        try:
            with open(self.folder(name) / META_FILE, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            raise CollectionNotFound(name, self.where) from None

    def write_meta(self, name: str, meta: Mapping[str, Any]) -> None:
        """Replace collection.json of ``name`` (the caller holds :func:`store_lock`)."""
        write_json_atomic(self.folder(name) / META_FILE, dict(meta))

    def load_aliases(self) -> dict[str, str]:
        """The alias map, re-read only when aliases.json changed.

        Collections this process read through an alias that now points elsewhere are let go, so the
        worker can delete them; a later read by name opens them again.
        """
        with self.mutex:
            mapping, old = self.aliases.current()
            if old is not None:
                for name in set(old.values()) - set(mapping.values()):
                    h = self.handles.get(name)
                    if h is not None and h.lock.mode == "r":
                        self.retire(h)
            return mapping

    def resolve(self, name: str) -> str:
        """The collection ``name`` means (itself or the target of an alias); raises CollectionNotFound."""
        if self.is_collection(name):
            return name
        target = self.load_aliases().get(name)
        if target is not None and self.is_collection(target):
            return target
        raise CollectionNotFound(name, self.where)

    # --- locks and shards ------------------------------------------------------------------------
    def locked_error(self, name: str, mode: str, lost: bool = False) -> StoreLocked:
        lock = self.folder(name) / SHARD_LOCK
        pids = lock_holders(lock)
        who = f"process {', '.join(map(str, pids))}" if pids else "another process"
        want = "write" if mode == "w" else "read"
        return StoreLocked(
            f"cannot {want} collection {name!r} in {self.folder(name)}: it is open "
            f"{'for reading' if mode == 'w' else 'for writing'} by {who} (lock {lock}). "
            f"The embedded edge store lets one process write a collection, or any number of processes "
            f"read it, at a time{'; this process closed its copy' if lost else ''}. {_SERVER_HINT}"
        )

    def take_lock(self, name: str, mode: str) -> ShardLock:
        try:
            return ShardLock(self.folder(name) / SHARD_LOCK, mode)
        except Busy:
            raise self.locked_error(name, mode) from None

    def _record_writer(self, h: Handle) -> None:
        """A writer of another engine version records its own: an older engine then refuses the shard."""
        if needs_engine_update(h.meta):
            with store_lock(self.root):
                meta = self.read_meta(h.name)
                meta["engine"] = engine_record()
                self.write_meta(h.name, meta)
            h.meta = meta

    def _open(self, name: str, mode: str) -> Handle:
        """Lock and load the shard of collection ``name`` (caller holds the mutex)."""
        meta = self.read_meta(name)
        check_engine(meta, self.folder(name))
        try:
            lock = self.take_lock(name, mode)
        except FileNotFoundError:
            raise CollectionNotFound(name, self.where) from None
        try:
            # No read-only open in qdrant-edge: refuse with a clear line where its open would die of SIGBUS.
            check_reader_space(self.folder(name) / SHARD_DIR, name)
            shard = qe.EdgeShard.load(str(self.folder(name) / SHARD_DIR))
        except BaseException:
            lock.release()
            raise
        h = Handle(name, shard, lock, params_of(meta), meta)
        self.handles[name] = h
        return h

    def add(self, h: Handle) -> None:
        """Keep a shard this process just created (caller holds the mutex)."""
        self.handles[h.name] = h

    @contextlib.contextmanager
    def use(self, name: str, *, write: bool = False, resolve: bool = True) -> Iterator[Handle]:
        """The open shard of ``name`` (resolving aliases), locked for reading or writing."""
        if self.closed:
            raise RuntimeError("the store is closed")
        real = self.resolve(name) if resolve else name
        with self.mutex:
            h = self.handles.get(real)
            if h is None:
                h = self._open(real, "w" if write else "r")
            elif write and h.lock.mode != "w":
                h.group_values.clear()  # this process writes it now: the values may change
                try:
                    h.lock.upgrade()
                except Busy as busy:
                    if busy.lost:
                        self.retire(h)
                    raise self.locked_error(real, "w", busy.lost) from None
            if write:
                self._record_writer(h)
            h.users += 1
        try:
            yield h
        finally:
            with self.mutex:
                h.users -= 1
                if h.retired and h.users == 0:
                    self._close(h)

    def publish(self, name: str) -> None:
        """Flush a collection this process writes and turn its write lock into a read lock."""
        with self.mutex:
            h = self.handles.get(name)
            if h is not None and h.lock.mode == "w":
                h.shard.flush()
                h.lock.downgrade()

    def retire(self, h: Handle) -> None:
        """Forget ``h``; close it now or when its last user is done (caller holds the mutex)."""
        if self.handles.get(h.name) is h:
            del self.handles[h.name]
        h.retired = True
        if h.users == 0:
            self._close(h)

    def _close(self, h: Handle) -> None:
        try:
            if h.lock.mode == "w":
                h.shard.flush()
                h.shard.close()
            else:
                try:
                    h.shard.close()
                except Exception as exc:  # e.g. a full disk: a reader has nothing to lose, so say it and go on
                    logger.warning("closing collection %r of %s: %s", h.name, self.where, exc)
        finally:
            h.lock.release()

    def close(self) -> None:
        """Flush and close every open shard and drop this process's locks. Idempotent."""
        with self.mutex:
            for h in list(self.handles.values()):
                self.retire(h)
            self.closed = True
