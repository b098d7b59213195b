"""The embedded store on Qdrant's own engine, in-process, through ``qdrant-edge-py``.

One folder per collection under the store's ``root`` (layout: :mod:`search.stores.edge_files`); one
process may write a collection, or any number of processes may read it, at a time
(:mod:`search.stores.edge_shards`). :meth:`EdgeStore.switch_alias` publishes a collection (flushes it
and gives up the write lock) and readers follow the alias on their next call. The engine version that
wrote a shard is recorded in its ``collection.json``; a shard of a newer, incompatible engine is refused.
See ``docs/edge-store.md`` for what was measured.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from search.errors import CollectionNotFound, SearchError
from search.stores.base import (PASSAGE_VECTOR, CollectionParams, Filter, Query, ScoredPoint, StoredPoint,
                                neutral_vectors, payload_selection)
from search.stores.edge_files import (
    FORMAT_VERSION,
    SHARD_DIR,
    check_id,
    check_name,
    engine_record,
    fsync_dir,
    store_lock,
)
from search.stores.edge_fusion import point_vectors, run_queries
from search.stores.edge_query import (
    DEFAULT_ACORN_MAX_SELECTIVITY,
    DEFAULT_FULL_SCAN_THRESHOLD,
    DEFAULT_HNSW_EF,
    edge_config,
    edge_filter,
    group_keys,
    grouped,
    scored,
    search_params,
)
from search.stores.edge_shards import Handle, ShardPool, params_of

__all__ = ["EdgeStore", "DEFAULT_FULL_SCAN_THRESHOLD", "DEFAULT_HNSW_EF", "DEFAULT_ACORN_MAX_SELECTIVITY"]


def _stored(rec: Any, with_vectors: bool) -> StoredPoint:
    vec, vecs = neutral_vectors(rec.vector if with_vectors else None)
    return StoredPoint(id=str(rec.id), payload=dict(rec.payload or {}), vector=vec, vectors=vecs)


def _refuse_if_aliased(name: str, aliases: Mapping[str, str]) -> None:
    for alias, target in sorted(aliases.items()):
        if target == name:
            raise SearchError(
                f"collection {name!r} is served by alias {alias!r}; switch the alias first "
                f"(`esco-ingest rollback`) or delete the alias"
            )


class EdgeStore:
    """A :class:`search.stores.Store` on ``qdrant-edge`` shards, one folder per collection under ``root``.

    Shards are opened lazily on first use and kept open until :meth:`close` (or until an alias no
    longer points at a collection this process opened for reading). Thread-safe.
    """

    kind = "edge"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._pool = ShardPool(self.root, self.describe())

    def describe(self) -> str:
        return f"embedded edge store {self.root}"

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.root)!r})"

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collections -----------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._pool.is_collection(p.name))

    def collection_exists(self, name: str) -> bool:
        try:
            self._pool.resolve(name)
        except CollectionNotFound:
            return False
        return True

    def create_collection(
        self, name: str, params: CollectionParams, metadata: Mapping[str, Any], keyword_fields: Sequence[str]
    ) -> None:
        pool = self._pool
        check_name(name)
        if pool.closed:
            raise RuntimeError("the store is closed")
        config = edge_config(params)
        if name in pool.load_aliases():
            raise ValueError(f"cannot create collection {name!r}: an alias of that name exists")
        folder = pool.folder(name)
        with pool.mutex:
            try:
                folder.mkdir()
            except FileExistsError:
                if pool.is_collection(name):
                    raise ValueError(f"collection {name!r} already exists in {self.describe()}") from None
            # New folder, or one a crashed create left without collection.json: (re)build it under the lock.
            lock = pool.take_lock(name, "w")
            try:
                if pool.is_collection(name):  # another process completed it meanwhile
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
                        "engine": engine_record(),
                        "params": asdict(params),
                        "keyword_fields": list(dict.fromkeys(keyword_fields)),
                        "metadata": dict(metadata),
                    }
                    with store_lock(self.root):
                        pool.write_meta(name, meta)
                except BaseException:
                    shard.close()
                    raise
            except BaseException:
                lock.release()
                raise
            pool.add(Handle(name, shard, lock, params, meta))

    def delete_collection(self, name: str) -> None:
        """Delete a collection (a real name, not an alias); a missing collection is not an error.

        Refuses (SearchError) while an alias points at the collection, like the qdrant-client store:
        switch or delete the alias first. Raises StoreLocked while another process has it open.
        """
        pool = self._pool
        check_name(name)
        folder = pool.folder(name)
        if not folder.is_dir():
            return
        _refuse_if_aliased(name, pool.load_aliases())
        with pool.mutex:
            h = pool.handles.get(name)
            if h is not None:
                if h.users:
                    raise RuntimeError(f"collection {name!r} is in use by another thread of this process")
                pool.retire(h)
            try:
                lock = pool.take_lock(name, "w")
            except FileNotFoundError:
                return
            try:
                with store_lock(self.root):
                    _refuse_if_aliased(name, pool.load_aliases())
                    # Rename first: the collection disappears in one step, then the files go.
                    trash = self.root / f".deleted-{name}-{uuid.uuid4().hex[:8]}"
                    os.replace(folder, trash)
                    fsync_dir(self.root)
                shutil.rmtree(trash, ignore_errors=True)
            finally:
                lock.release()

    def get_metadata(self, name: str) -> dict[str, Any]:
        return dict(self._pool.read_meta(self._pool.resolve(name)).get("metadata", {}))

    def update_metadata(self, name: str, changes: Mapping[str, Any]) -> None:
        real = self._pool.resolve(name)
        with store_lock(self.root):
            meta = self._pool.read_meta(real)
            meta["metadata"] = {**meta.get("metadata", {}), **dict(changes)}
            self._pool.write_meta(real, meta)

    def collection_params(self, name: str) -> CollectionParams:
        """The parameters the collection was created with (not part of the Store protocol)."""
        return params_of(self._pool.read_meta(self._pool.resolve(name)))

    def engine_info(self, name: str) -> dict[str, str]:
        """The engine that last wrote the collection's shard (``{}`` when unrecorded; not in the protocol)."""
        return dict(self._pool.read_meta(self._pool.resolve(name)).get("engine") or {})

    def payload_indexes(self, name: str) -> dict[str, str]:
        with self._pool.use(name) as h:
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
        with self._pool.use(name, write=True) as h:
            h.shard.optimize()
            h.shard.flush()

    def index_info(self, name: str) -> dict[str, int]:
        """Points, segments and HNSW-indexed vectors of a collection (not part of the Store protocol)."""
        with self._pool.use(name) as h:
            info = h.shard.info()
            return {
                "points": info.points_count,
                "segments": info.segments_count,
                "indexed_vectors": info.indexed_vectors_count,
            }

    # --- aliases ---------------------------------------------------------------------------------
    def resolve_alias(self, alias: str) -> str | None:
        return self._pool.load_aliases().get(alias)

    def list_aliases(self) -> dict[str, str]:
        return dict(sorted(self._pool.load_aliases().items()))

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` by replacing aliases.json in one rename.

        Publishes the collection: if this process writes it, it is flushed and the write lock is
        turned into a read lock, so that reader processes can open it.
        """
        pool = self._pool
        check_name(alias, "alias")
        if not pool.is_collection(collection):
            raise CollectionNotFound(collection, self.describe())
        if pool.is_collection(alias):
            raise ValueError(f"cannot create alias {alias!r}: a collection of that name exists")
        pool.publish(collection)
        with store_lock(self.root):
            aliases = dict(pool.load_aliases())
            if aliases.get(alias) == collection:
                return
            aliases[alias] = collection
            pool.aliases.write(aliases)
        pool.load_aliases()

    def delete_alias(self, alias: str) -> None:
        pool = self._pool
        with store_lock(self.root):
            aliases = dict(pool.load_aliases())
            if aliases.pop(alias, None) is None:
                return
            pool.aliases.write(aliases)
        pool.load_aliases()

    # --- points ----------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        with self._pool.use(name, write=True) as h:
            dim = h.params.vector_size
            batch = []
            for p in points:
                if h.params.vectors:  # named vectors
                    vecs = p.vectors if p.vectors is not None else ({PASSAGE_VECTOR: p.vector} if p.vector else {})
                    batch.append(qe.Point(check_id(p.id), point_vectors(h.params, p.id, vecs), dict(p.payload)))
                    continue
                if p.vector is None:
                    raise ValueError(f"point {p.id} has no vector")
                vec = list(map(float, p.vector))
                if len(vec) != dim:
                    raise ValueError(f"point {p.id} has a vector of size {len(vec)}; the collection's is {dim}")
                batch.append(qe.Point(check_id(p.id), vec, dict(p.payload)))
            h.shard.update(qe.UpdateOperation.upsert_points(batch))
            h.shard.flush()  # no WAL: a write returns once it is on disk

    def count(self, name: str, filter: Filter | None = None) -> int:
        with self._pool.use(name) as h:
            return int(h.shard.count(qe.CountRequest(exact=True, filter=edge_filter(filter))))

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        """The points of ``ids`` that exist, in the order asked."""
        if not ids:
            return []
        wanted = list(dict.fromkeys(check_id(i) for i in ids))
        with self._pool.use(name) as h:
            recs = h.shard.retrieve(wanted, with_payload=payload_selection(with_payload), with_vector=with_vectors)
        by_id = {str(r.id): r for r in recs}
        return [_stored(by_id[i], with_vectors) for i in wanted if i in by_id]

    def scroll(
        self, name: str, with_vectors: bool = False, with_payload: bool | Sequence[str] = True, batch_size: int = 1000
    ) -> Iterator[StoredPoint]:
        """Every point, in id order, ``batch_size`` at a time (the shard stays open between batches)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        real = self._pool.resolve(name)
        sel: Any = payload_selection(with_payload)
        offset: Any = None
        while True:
            with self._pool.use(real, resolve=False) as h:
                recs, offset = h.shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=sel, with_vector=with_vectors)
                )
            for r in recs:
                yield _stored(r, with_vectors)
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
        with_payload: bool | Sequence[str] = True,
    ) -> list[list[ScoredPoint]]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if len(vectors) == 0:
            return []
        with self._pool.use(name) as h:
            dim = h.params.size_of(PASSAGE_VECTOR) if h.params.vectors else h.params.vector_size
            queries = []
            for v in vectors:
                q = [float(x) for x in v]
                if len(q) != dim:
                    raise ValueError(f"query vector of size {len(q)}; collection {h.name!r} holds size {dim}")
                queries.append(q)
            params = search_params(h.params, filtered=bool(filter), exact=exact, hnsw_ef=hnsw_ef, limit=limit)

            sel: Any = payload_selection(with_payload)

            def run(qs: list[list[float]], lim: int, extra: list[Sequence[Any]], payload: Any = sel,
                    vectors: bool = with_vectors) -> list[list[Any]]:
                using = PASSAGE_VECTOR if h.params.vectors else None
                reqs = [
                    qe.QueryRequest(
                        limit=lim,
                        query=qe.Query.Nearest(q, using=using),
                        filter=edge_filter(filter, ex),
                        score_threshold=score_threshold,
                        params=params,
                        with_payload=payload,
                        with_vector=vectors,
                    )
                    for q, ex in zip(qs, extra)
                ]
                return h.shard.query_batch(qe.QueryBatchRequest(reqs))

            def fetch(ids: list[str]) -> dict[str, Any]:
                recs = h.shard.retrieve(ids, with_payload=sel, with_vector=with_vectors) if ids else []
                return {str(r.id): r for r in recs}

            if group_by is None:
                return [[scored(p, with_vectors) for p in hits] for hits in run(queries, limit, [()] * len(queries))]
            return grouped(queries, run, fetch, group_by, limit, with_vectors, h.group_values_of(group_by))

    def query(
        self,
        name: str,
        requests: Sequence[Query],
        *,
        group_by: str | None = None,
        with_vectors: bool | Sequence[str] = False,
        with_payload: bool | Sequence[str] = True,
        exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> list[list[ScoredPoint]]:
        """Query API requests (prefetch trees, RRF, boosts) in one engine batch; see :meth:`Store.query`."""
        if not requests:
            return []
        with self._pool.use(name) as h:
            p = h.params

            def params_for(filtered: bool, limit: int) -> Any:
                return search_params(p, filtered=filtered, exact=exact, hnsw_ef=hnsw_ef, limit=limit)

            return run_queries(h.shard, p, requests, group_by=group_by, with_vectors=with_vectors,
                               with_payload=with_payload, to_filter=edge_filter, search_params=params_for,
                               group_values=h.group_values_of(group_by) if group_by else None,
                               scored=scored, keys_of=group_keys)

    # --- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and close every open shard and drop this process's locks. Idempotent."""
        self._pool.close()
