"""The store on ``qdrant-client``: a Qdrant server (or cluster), or qdrant-client's local mode.

Both speak the same client API, so one class serves both. Retries and the mapping of failures onto the
project's errors are in :mod:`search.stores.qdrant_calls`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from search.errors import CollectionNotFound, ConfigError, SearchError, StoreLocked
from search.stores.base import (DEFAULT_OVERSAMPLING, PASSAGE_VECTOR, CollectionParams, Filter, Query, ScoredPoint,
                                StoredPoint, neutral_vectors, payload_selection)
from search.stores.qdrant_calls import RetryingCalls
from search.stores.qdrant_fusion import (
    candidate_pool,
    layout_of,
    to_filter,
    point_vector,
    query_request,
    vectors_config,
)

__all__ = ["QdrantClientStore", "DEFAULT_HNSW_EF"]

logger = logging.getLogger(__name__)

DEFAULT_HNSW_EF = 256


def _scored(p: Any) -> ScoredPoint:
    return ScoredPoint(str(p.id), float(p.score), dict(p.payload or {}), *neutral_vectors(p.vector))


def _group_keys(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, (str, int)) and not isinstance(v, bool)]


class QdrantClientStore(RetryingCalls):
    """A :class:`~search.stores.Store` on ``qdrant-client`` (server, or local mode)."""

    def __init__(self, client: QdrantClient, kind: str, where: str, *, retries: int = 5,
                 max_wait: float = 10.0) -> None:
        self._client = client
        self.kind = kind
        self._where = where
        self._retries = retries if kind == "server" else 1
        self._max_wait = max_wait
        self._secrets: tuple[str, ...] = ()
        self._params: dict[str, CollectionParams] = {}  # layouts of the collections met (named vectors or not)

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def local(cls, path: str | Path) -> QdrantClientStore:
        """qdrant-client's local mode in ``path`` (``":memory:"`` for a throw-away store).

        Raises:
            StoreLocked: another process has the folder open (local mode allows one process at a time).
        """
        where = f"embedded local store {path}"
        try:
            if str(path) == ":memory:":
                client = QdrantClient(location=":memory:")
            else:
                Path(path).mkdir(parents=True, exist_ok=True)
                client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreLocked(
                    f"the {where} is open in another process: qdrant-client's local mode allows one process "
                    f"at a time. Stop that process, use the edge engine (ESCO_EMBEDDED_ENGINE=edge), "
                    f"or run a Qdrant server (ESCO_QDRANT_URL) for concurrent readers and writers"
                ) from exc
            raise
        return cls(client, "local", where)

    @classmethod
    def connect(cls, settings: Any, *, check: bool = True) -> QdrantClientStore:
        """Connect to the server in ``settings.qdrant_url`` (API key, gRPC, timeout, TLS from settings).

        Raises:
            QdrantUnavailable: the server does not answer (after retries) or rejects the API key.
        """
        url: str = settings.qdrant_url
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(
            url=url,
            api_key=key,
            prefer_grpc=settings.qdrant_prefer_grpc,
            timeout=int(max(1, round(settings.qdrant_timeout))),
            verify=settings.qdrant_verify_tls,
            check_compatibility=False,
        )
        store = cls(client, "server", f"Qdrant server {url}", retries=int(getattr(settings, "qdrant_retries", 5)),
                    max_wait=float(getattr(settings, "qdrant_retry_max_wait", 10.0)))
        if key:
            store._secrets = (key,)
        if check:
            try:
                store._call(client.get_collections)
            except BaseException:
                client.close()
                raise
        return store

    # --- plumbing --------------------------------------------------------------------------------
    def describe(self) -> str:
        return self._where

    @property
    def client(self) -> QdrantClient:
        """The underlying client, for what the Store interface does not cover."""
        return self._client

    def _require(self, name: str) -> None:
        if not self.collection_exists(name):
            raise CollectionNotFound(name, self._where)

    # --- collections -----------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self._call(self._client.get_collections).collections)

    def collection_exists(self, name: str) -> bool:
        if self._call(self._client.collection_exists, name):
            return True
        return self.resolve_alias(name) is not None

    def create_collection(self, name: str, params: CollectionParams, metadata: Mapping[str, Any],
                          keyword_fields: Sequence[str]) -> None:
        quant = None
        if params.quantization == "int8":
            quant = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        elif params.quantization != "none":
            raise ConfigError(f"unknown quantization {params.quantization!r}; valid: none, int8")
        dense_config, sparse_config = vectors_config(params, params.on_disk_vectors or None)
        self._params[name] = params
        self._call(
            self._client.create_collection,
            done_on_retry=lambda exc: exc.status_code in (400, 409) and b"already exists" in (exc.content or b""),
            collection_name=name,
            vectors_config=dense_config,
            sparse_vectors_config=sparse_config,
            # Below the full-scan threshold (in KB of vectors) a search scores every candidate exactly:
            # the same rule as the edge store, so small and very selective filtered searches stay exact.
            hnsw_config=models.HnswConfigDiff(
                m=params.graph_m(), ef_construct=params.hnsw_ef_construct,
                full_scan_threshold=params.kb_of(params.indexing_threshold),
            ),
            # Qdrant counts the indexing threshold in KB of vectors, our setting in points (1 KB: int8 copies
            # at any size where no graph is built, CollectionParams.indexing_threshold_kb).
            optimizers_config=models.OptimizersConfigDiff(indexing_threshold=params.indexing_threshold_kb()),
            quantization_config=quant,
            shard_number=params.shard_number,
            replication_factor=params.replication_factor,
            write_consistency_factor=params.write_consistency_factor,
            metadata=dict(metadata),
        )
        if self.kind == "local":
            # qdrant-client's local mode has no payload indexes (it scans); creating them only warns.
            return
        for field in keyword_fields:
            self._call(
                self._client.create_payload_index,
                collection_name=name,
                field_name=field,
                field_schema=models.PayloadSchemaType.KEYWORD,
                wait=True,
            )

    def delete_collection(self, name: str) -> None:
        """Delete a collection (a real name); refuses (SearchError) while an alias points at it.

        Qdrant has no "delete unless aliased" and drops a collection's aliases with it, so the check
        cannot be atomic with the delete. The aliases are read just before and again just after: an alias
        that another process switched onto the collection in between vanished with it; it is put back on
        the collection it served before (when that still exists) and SearchError names it.
        """
        before = self.list_aliases()
        for alias, target in sorted(before.items()):
            if target == name:
                raise SearchError(
                    f"collection {name!r} is served by alias {alias!r}; switch the alias first "
                    f"(`esco-ingest rollback`) or delete the alias"
                )
        self._call(self._client.delete_collection, name, done_on_retry=lambda exc: exc.status_code == 404)
        after = self.list_aliases()
        lost = {a: t for a, t in before.items() if a not in after}
        if not lost:
            return
        existing = set(self.list_collections())
        restored = {a: t for a, t in lost.items() if t in existing}
        if restored:
            ops: list[Any] = [
                models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=t, alias_name=a))
                for a, t in sorted(restored.items())
            ]
            self._call(self._client.update_collection_aliases, change_aliases_operations=ops)
        what = ", ".join(
            f"{a!r} (back on {t!r})" if a in restored else f"{a!r} (its collection {t!r} is gone too)"
            for a, t in sorted(lost.items())
        )
        logger.error("%s: alias(es) %s were switched onto collection %r while it was deleted", self._where, what, name)
        raise SearchError(
            f"collection {name!r} was deleted while another process switched alias(es) onto it: {what}. "
            f"Qdrant drops a collection's aliases with it; check the aliases (`esco-ingest list`) and switch "
            f"them again (`esco-ingest rollback` or a new ingest)"
        )

    def get_metadata(self, name: str) -> dict[str, Any]:
        info = self._on(name, self._client.get_collection, name)
        return dict(info.config.metadata or {})

    def update_metadata(self, name: str, changes: Mapping[str, Any]) -> None:
        self._require(name)
        target = self.resolve_alias(name) or name
        # Qdrant (and local mode) merge the given keys into the stored metadata: send only the changes, so
        # a late-applied earlier request (one retried after a timeout) cannot undo another key's newer value.
        self._call(self._client.update_collection, collection_name=target, metadata=dict(changes))

    def payload_indexes(self, name: str) -> dict[str, str]:
        schema = self._on(name, self._client.get_collection, name).payload_schema or {}
        out: dict[str, str] = {}
        for key, info in schema.items():
            dtype = getattr(info, "data_type", None)
            out[key] = str(getattr(dtype, "value", dtype))
        return out

    def optimize(self, name: str) -> None:
        # The server builds its HNSW index in the background once a segment passes the indexing
        # threshold; local mode has no index. Nothing to trigger here.
        return None

    # --- aliases ---------------------------------------------------------------------------------
    def list_aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self._call(self._client.get_aliases).aliases}

    def resolve_alias(self, alias: str) -> str | None:
        return self.list_aliases().get(alias)

    def switch_alias(self, alias: str, collection: str) -> None:
        ops: list[Any] = []
        if self.resolve_alias(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))
        )
        # One request: Qdrant applies all alias operations of a request atomically.
        self._call(self._client.update_collection_aliases, change_aliases_operations=ops,
                   done_on_retry=lambda exc: self.resolve_alias(alias) == collection)

    def delete_alias(self, alias: str) -> None:
        if self.resolve_alias(alias) is None:
            return
        self._call(
            self._client.update_collection_aliases,
            change_aliases_operations=[models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))],
            done_on_retry=lambda exc: self.resolve_alias(alias) is None,
        )

    # --- points ----------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        params = self._layout(name)
        structs = [models.PointStruct(id=p.id, vector=point_vector(params, p.id, p.vector, p.vectors), payload=p.payload)
                   for p in points]
        self._call(self._client.upsert, collection_name=name, points=structs, wait=True)

    def count(self, name: str, filter: Filter | None = None) -> int:
        return self._on(name, self._client.count, collection_name=name, count_filter=to_filter(filter), exact=True).count

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False,
                 with_payload: bool | Sequence[str] = True) -> list[StoredPoint]:
        if not ids:
            return []
        recs = self._on(name, self._client.retrieve, collection_name=name, ids=list(ids),
                        with_payload=payload_selection(with_payload), with_vectors=with_vectors)
        return [StoredPoint(str(r.id), dict(r.payload or {}), *neutral_vectors(r.vector)) for r in recs]

    def scroll(self, name: str, with_vectors: bool = False, with_payload: bool | Sequence[str] = True,
               batch_size: int = 1000) -> Iterator[StoredPoint]:
        offset: Any = None
        payload_sel: Any = payload_selection(with_payload)
        while True:
            recs, offset = self._on(name, self._client.scroll, collection_name=name, limit=batch_size, offset=offset,
                                      with_payload=payload_sel, with_vectors=with_vectors)
            for r in recs:
                yield StoredPoint(str(r.id), dict(r.payload or {}), *neutral_vectors(r.vector))
            if offset is None:
                return

    def _layout(self, name: str) -> CollectionParams:
        """The vector layout of a collection (or alias), read once per name from the collection's config."""
        known = self._params.get(name)
        if known is not None:
            return known
        layout = layout_of(self._on(name, self._client.get_collection, name))
        self._params[name] = layout
        return layout

    def _search_params(self, filtered: bool, exact: bool, hnsw_ef: int | None, limit: int) -> Any:
        # Local mode always searches exactly and warns about search params: send none there. On a server,
        # HNSW searches use ef >= 256 and ACORN for filtered searches, which kept recall@10 >= 0.99 on
        # real ESCO vectors with filters (docs/edge-store.md); the edge store uses the same defaults.
        if self.kind != "server":
            return None
        # An int8-quantized collection (ESCO_QUANTIZATION, the default) rescores with the original vectors, with
        # the edge store's oversampling; exact=True scans the originals. Ignored by a collection without int8.
        return models.SearchParams(
            exact=exact, hnsw_ef=hnsw_ef or max(DEFAULT_HNSW_EF, limit),
            acorn=models.AcornSearchParams(enable=True, max_selectivity=0.9) if filtered else None,
            quantization=models.QuantizationSearchParams(ignore=exact, rescore=True,
                                                         oversampling=DEFAULT_OVERSAMPLING),
        )

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
        """Query API requests (prefetch trees, RRF, boosts) in one batch call; see :meth:`Store.query`.

        Grouping is done as on the edge store (the whole candidate pool, first hit per group in the final
        order), so both stores rank a collection alike.
        """
        if not requests:
            return []
        layout = self._layout(name)
        wv: Any = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        sel: Any = payload_selection(with_payload)
        reqs = [
            query_request(layout, r, to_filter=to_filter,
                          search_params=lambda f, r=r: self._search_params(f, exact, hnsw_ef, r.limit),
                          limit=candidate_pool(r) if group_by else r.limit,
                          with_payload=[group_by] if group_by else sel, with_vector=False if group_by else wv)
            for r in requests
        ]
        responses = self._on(name, self._client.query_batch_points, collection_name=name, requests=reqs)
        if not group_by:
            return [[_scored(p) for p in resp.points] for resp in responses]
        out = []
        for r, resp in zip(requests, responses):
            seen: set[Any] = set()
            chosen = []
            for p in resp.points:
                keys = _group_keys((p.payload or {}).get(group_by))
                if keys and any(k not in seen for k in keys):
                    seen.update(keys)
                    chosen.append(p)
                    if len(chosen) == r.limit:
                        break
            full = {str(x.id): x for x in self.retrieve_raw(name, [str(p.id) for p in chosen], wv, sel)}
            out.append([ScoredPoint(str(p.id), float(p.score), dict(full[str(p.id)].payload or {}),
                                    *neutral_vectors(full[str(p.id)].vector if wv else None))
                        for p in chosen if str(p.id) in full])
        return out

    def retrieve_raw(self, name: str, ids: Sequence[str], with_vectors: Any, with_payload: Any = True) -> list[Any]:
        """The client's records of ``ids`` (the payload fields and the vectors asked for)."""
        if not ids:
            return []
        return list(self._on(name, self._client.retrieve, collection_name=name, ids=list(ids),
                             with_payload=with_payload, with_vectors=with_vectors))

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
        qfilter = to_filter(filter)
        sel: Any = payload_selection(with_payload)
        params = self._search_params(bool(filter), exact, hnsw_ef, limit)
        using = PASSAGE_VECTOR if self._layout(name).vectors else None
        if group_by:
            out: list[list[ScoredPoint]] = []
            for v in vectors:
                res = self._on(
                    name, self._client.query_points_groups,
                    collection_name=name, group_by=group_by, query=list(v), using=using, query_filter=qfilter,
                    search_params=params, limit=limit, group_size=1, with_payload=sel,
                    with_vectors=with_vectors, score_threshold=score_threshold,
                )
                out.append([_scored(g.hits[0]) for g in res.groups if g.hits])
            return out
        requests = [
            models.QueryRequest(query=list(v), using=using, filter=qfilter, params=params, limit=limit,
                                score_threshold=score_threshold, with_payload=sel, with_vector=with_vectors)
            for v in vectors
        ]
        responses = self._on(name, self._client.query_batch_points, collection_name=name, requests=requests)
        return [[_scored(p) for p in resp.points] for resp in responses]

    def close(self) -> None:
        self._client.close()
