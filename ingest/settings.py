"""Settings of the ingest worker: the search settings plus what only the writer needs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from search.settings import SearchSettings

__all__ = ["IngestSettings"]


class IngestSettings(SearchSettings):
    """Everything :class:`~search.settings.SearchSettings` has, plus batching, retention and cluster layout."""

    batch_size: int = Field(default=16, ge=1, le=4096, description="passages per encoder batch (sorted by length)")
    upsert_batch_size: int = Field(
        default=256, ge=1, le=2048,
        description="points per upsert request at most; requests are also split to stay under 16 MiB (a Qdrant "
        "server refuses requests over 32 MB by default)",
    )
    representations: Literal["dense", "hybrid"] = Field(
        default="hybrid",
        description="what each point holds: dense (the passage vector alone) or hybrid (passage, preferred label, "
        "its first labels as a multivector, BM25 of every label: what ESCO_SEARCH_MODE=hybrid needs)",
    )
    keep_collections: int = Field(
        default=2, ge=1, description="complete collections kept per alias (the served one included) for rollback"
    )
    lock_dir: Path | None = Field(
        default=None, description="folder of the one-writer lock files; default: <store>/.locks or ~/.cache/esco-skill-search"
    )
    lock_stale_seconds: float = Field(
        default=600, gt=0, description="a build whose worker (on another host) sent no heartbeat for this long is taken over"
    )
    # --- collection layout (servers and clusters; the embedded stores ignore shards and replicas) ---
    shard_number: int | None = Field(default=None, ge=1, description="shards per collection (cluster)")
    replication_factor: int | None = Field(default=None, ge=1, description="copies of each shard (cluster)")
    write_consistency_factor: int | None = Field(default=None, ge=1, description="replicas that must confirm a write")
    on_disk_vectors: bool = Field(default=False, description="keep the original vectors on disk (memory-mapped)")
    quantization: Literal["none", "int8"] = Field(
        default="int8",
        description="scalar int8 copies of the vectors in RAM that searches scan, rescored with the originals "
        "(none: scan the originals, ~3x slower at 14k skills)",
    )
    hnsw_m: int = Field(default=16, ge=4, le=128, description="HNSW graph degree (no graph is built for a collection of "
                        "at most 20,000 points: its searches scan the int8 copies)")
    hnsw_ef_construct: int = Field(default=100, ge=4, description="HNSW build-time candidate list")

    @model_validator(mode="after")
    def _check_cluster(self) -> IngestSettings:
        if self.write_consistency_factor and (self.replication_factor or 1) < self.write_consistency_factor:
            raise ValueError(
                f"ESCO_WRITE_CONSISTENCY_FACTOR={self.write_consistency_factor} exceeds "
                f"ESCO_REPLICATION_FACTOR={self.replication_factor or 1}: a write cannot be confirmed by more "
                f"replicas than exist"
            )
        if not self.qdrant_url and (self.shard_number or self.replication_factor or self.write_consistency_factor):
            raise ValueError(
                "ESCO_SHARD_NUMBER / ESCO_REPLICATION_FACTOR / ESCO_WRITE_CONSISTENCY_FACTOR need a Qdrant "
                "server or cluster (ESCO_QDRANT_URL); the embedded store has one shard"
            )
        return self

    @property
    def lock_folder(self) -> Path:
        """Where the one-writer lock files live."""
        if self.lock_dir is not None:
            return self.lock_dir.expanduser()
        if self.qdrant_url:
            return Path.home() / ".cache" / "esco-skill-search" / "locks"
        return self.store_path / ".locks"
