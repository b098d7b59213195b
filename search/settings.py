"""Settings, read from ``ESCO_*`` environment variables and an optional ``.env`` file.

Library code takes a settings object and never reads the environment itself: a service can build
``SearchSettings(...)`` with explicit values. Every field is listed in the README's settings table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SearchSettings", "DEFAULT_MODEL", "default_qdrant_path"]

DEFAULT_MODEL = "isy-thl/multilingual-e5-base-learning-outcome-skill-tuned"


def default_qdrant_path() -> Path:
    """The embedded store's default folder: ``$XDG_DATA_HOME/esco-skill-search/qdrant``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "esco-skill-search" / "qdrant"


class SearchSettings(BaseSettings):
    """What a searcher (and, through :class:`ingest.settings.IngestSettings`, the worker) needs.

    With neither ``qdrant_url`` nor ``qdrant_path`` set, the embedded store in
    :func:`default_qdrant_path` is used; setting both is an error.
    """

    model_config = SettingsConfigDict(
        env_prefix="ESCO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # ESCO_QDRANT_API_KEY= (empty) means unset
        hide_input_in_errors=True,  # a refused setting never echoes the API key
    )

    # --- the model -------------------------------------------------------------------------------
    model: str = Field(default=DEFAULT_MODEL, description="sentence-transformers model: hub id or local folder")
    model_revision: str | None = Field(default=None, description="hub revision (branch, tag or commit) of the model")
    device: str | None = Field(default=None, description="torch device (cpu, cuda, cuda:1, mps); default: cuda when present")
    backend: Literal["auto", "torch", "onnx", "openvino"] = Field(
        default="auto",
        description="auto: every candidate that passes a quality check against torch fp32 is timed on this machine and "
        "the fastest is used (search.encoding.choice): openvino fp32/int8/int8w (openvino extra), onnx int8 (onnx "
        "extra), torch bf16 (CPUs with native bf16), torch fp16 (GPU), torch fp32. Or torch, onnx, openvino",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8", "int8w"] = Field(
        default="auto",
        description="auto: chosen with the backend (see backend); with an explicit backend: fp16 on GPU, bf16 on CPUs "
        "with native bf16, else fp32 (torch), int8 (onnx, openvino). Or fp32, bf16, fp16 (GPU), int8 (onnx, openvino), "
        "int8w (openvino, int8 weights only)",
    )
    query_prompt: str = Field(default="query: ", description="prefix of every query, as the model was trained")
    passage_prompt: str = Field(default="passage: ", description="prefix of every skill passage, as the model was trained")
    max_seq_length: int | None = Field(default=None, ge=8, description="token limit; default: the model's own (512)")
    query_cache_size: int = Field(default=1024, ge=0, description="LRU cache of query embeddings (0 disables it)")
    cache_dir: Path | None = Field(
        default=None, description="onnx/openvino exports and ESCO_BACKEND=auto's checks; default: "
        "$XDG_CACHE_HOME/esco-skill-search/backends (~/.cache/...)",
    )

    # --- the store -------------------------------------------------------------------------------
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; unset: the embedded store")
    qdrant_api_key: SecretStr | None = Field(default=None, description="Qdrant API key (read-only suffices for search)")
    qdrant_path: Path | None = Field(default=None, description="embedded store folder; default: see default_qdrant_path()")
    embedded_engine: Literal["edge", "local"] = Field(
        default="edge", description="embedded engine: edge (Qdrant's own engine, qdrant-edge) or local (qdrant-client local mode)"
    )
    qdrant_prefer_grpc: bool = Field(default=False, description="talk to the server over gRPC (port 6334)")
    qdrant_timeout: float = Field(default=30.0, gt=0, description="seconds per server request")
    qdrant_retries: int = Field(
        default=5, ge=1, le=100, description="attempts per server request on transport errors, timeouts, 429 and 5xx"
    )
    qdrant_retry_max_wait: float = Field(
        default=10.0, gt=0, le=600, description="longest wait in seconds between two attempts (exponential from 0.2 s)"
    )
    qdrant_verify_tls: bool = Field(default=True, description="verify the server's TLS certificate")
    collection: str = Field(default="esco_skills", min_length=1, description="alias (or collection) that services search")
    occupation_collection: str = Field(
        default="esco_occupations", min_length=1, description="alias (or collection) of the ESCO occupations"
    )

    # --- searching -------------------------------------------------------------------------------
    score_threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="minimum cosine score; default: the collection's calibrated one, else none"
    )
    limit: int = Field(default=10, ge=1, le=1000, description="hits per query")
    exact: bool = Field(default=False, description="exact (brute-force) search instead of the HNSW index")
    hnsw_ef: int | None = Field(default=None, ge=1, description="HNSW ef at search time; default: the store's")
    hit_cache_size: int = Field(
        default=20_000, ge=0, description="LRU cache of the hit fields of returned points, per collection and point "
        "(a served collection never changes; ~2.5 KB a point); 0 reads every hit's payload from the store"
    )
    search_mode: Literal["dense", "hybrid"] | None = Field(
        default=None, description="dense (the passage vector) or hybrid (passage, labels and BM25 fused in the "
        "engine, exact label matches first); default (unset): hybrid where the collection holds every "
        "representation, else dense"
    )

    @field_validator("qdrant_url")
    @classmethod
    def _strip_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"ESCO_QDRANT_URL must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check_store_conflict(self) -> SearchSettings:
        if self.qdrant_url and self.qdrant_path is not None:
            raise ValueError(
                "ESCO_QDRANT_URL and ESCO_QDRANT_PATH are both set: set the URL for a server, "
                "or the path for the embedded store, not both"
            )
        if self.qdrant_api_key is not None and not self.qdrant_url:
            raise ValueError("ESCO_QDRANT_API_KEY is set but ESCO_QDRANT_URL is not: an API key needs a server")
        if self.precision == "fp16" and self.backend in ("torch", "auto") and (self.device or "cpu").startswith("cpu"):
            raise ValueError("ESCO_PRECISION=fp16 needs a GPU (ESCO_DEVICE=cuda); on a CPU use bf16 or int8")
        if self.precision in ("int8", "int8w") and self.backend == "torch":
            raise ValueError("ESCO_PRECISION=int8 needs ESCO_BACKEND=onnx or openvino")
        return self

    @property
    def store_path(self) -> Path:
        """The embedded store's folder (the setting, or the default)."""
        return (self.qdrant_path or default_qdrant_path()).expanduser()

    @property
    def store_kind(self) -> str:
        """``server``, ``edge`` or ``local``."""
        return "server" if self.qdrant_url else self.embedded_engine

    def describe_store(self) -> str:
        """Where the store is, for messages; never includes the API key."""
        if self.qdrant_url:
            return f"Qdrant server {self.qdrant_url}"
        return f"embedded {self.embedded_engine} store {self.store_path}"
