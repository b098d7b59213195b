"""The versioned collections of an alias: their layout, the checks of a written one, listing, retention,
rollback.

Collections are named ``<alias>__<version>__<model>__<stamp>``; each records in its metadata what made it
and its status (``building`` while written, ``complete`` once verified).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ingest.errors import VerificationFailed
from ingest.ownership import STATUS_COMPLETE, IngestLock, claim_builds
from search.errors import SearchError, StoreLocked
from search.stores import CollectionParams, Store

logger = logging.getLogger(__name__)

__all__ = [
    "list_collections", "rollback", "prune_complete", "delete_collections", "verify", "collection_params",
]


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


def delete_collections(store: Store, names: list[str]) -> list[str]:
    """Delete the named collections; one a service still reads (edge store) is kept for the next run.
    Returns those deleted."""
    done = []
    for name in names:
        try:
            store.delete_collection(name)
        except StoreLocked as exc:
            logger.warning("kept %s for now: %s", name, exc)
            continue
        done.append(name)
    return done


def prune_complete(store: Store, alias: str, keep: int) -> list[str]:
    """Delete complete collections of this alias beyond the newest ``keep`` (never the served one)."""
    served = store.resolve_alias(alias)
    complete = []
    for name in store.list_collections():
        if name.startswith(f"{alias}__"):
            meta = store.get_metadata(name)
            if meta.get("status") == STATUS_COMPLETE:
                complete.append((float(meta.get("completed_ts", 0.0)), name))
    complete.sort(reverse=True)
    return delete_collections(store, [name for _, name in complete[keep:] if name != served])


def rollback(store: Store, alias: str, to: str | None = None, *, lock_folder: Path,
             stale_seconds: float = 600.0) -> tuple[str | None, str]:
    """Point ``alias`` back at the previous complete collection (or at ``to``). Returns (old, new).

    Takes the alias's ingest lock (``lock_folder``, as the worker's settings name it), and refuses while a
    live worker on any host builds a collection of the alias: that worker would switch the alias at its
    end and undo the rollback.

    Raises:
        IngestLocked: an ingest of the alias is running.
        SearchError: nothing to roll back to, or ``to`` is not a complete collection.
    """
    with IngestLock(lock_folder, alias):
        claim_builds(store, alias, None, stale_seconds)
        current = store.resolve_alias(alias)
        if to is None:
            to = _previous(store, alias, current)
        else:
            meta = store.get_metadata(to)
            if meta.get("status") != STATUS_COMPLETE:
                raise SearchError(
                    f"collection {to!r} is not complete (status {meta.get('status')!r}); refusing to serve it"
                )
        store.switch_alias(alias, to)
        return current, to


def _previous(store: Store, alias: str, current: str | None) -> str:
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
    return str(candidates[0]["collection"])


def collection_params(settings: Any, dim: int, vectors: dict[str, Any] | None = None,
                      points: int | None = None) -> CollectionParams:
    """The layout of a new collection, from the settings (``vectors``: its named vectors, if any; ``points``:
    how many it will hold, which decides whether its vectors get an HNSW graph, :meth:`CollectionParams.graph_m`)."""
    return CollectionParams(
        expected_points=points,
        vector_size=dim,
        vectors=dict(vectors or {}),
        on_disk_vectors=settings.on_disk_vectors,
        quantization=settings.quantization,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
    )


def verify(store: Store, name: str, ids: Sequence[str]) -> None:
    """The collection holds exactly the points ``ids``, and a probe search finds one of them by its vector."""
    n = store.count(name)
    if n != len(ids):
        raise VerificationFailed(
            f"collection {name!r} holds {n} points, {len(ids)} expected; the alias was not switched. "
            f"Run the ingest again to resume it"
        )
    probe = ids[len(ids) // 2]
    got = store.retrieve(name, [probe], with_vectors=True)
    if not got or got[0].vector is None:
        raise VerificationFailed(f"probe point {probe} missing from {name!r}; the alias was not switched")
    hits = store.search(name, [got[0].vector], limit=1, exact=True)[0]
    if not hits or hits[0].id != probe or hits[0].score < 0.999:
        raise VerificationFailed(
            f"probe search on {name!r} did not return the probe point ({probe}); the alias was not switched"
        )
