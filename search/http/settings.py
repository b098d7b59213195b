"""Settings of the HTTP service, read from ``ESCO_SERVICE_*`` environment variables (and ``.env``).

The searcher's own settings (model, store, collection, threshold) stay in :class:`search.settings.SearchSettings`;
these are only what the service adds: where it listens, who may call it, and how much one request may ask.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ServiceSettings"]


def _split(value: Any) -> Any:
    """``a,b , c`` (an environment variable) -> ``["a", "b", "c"]``; lists pass through."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class ServiceSettings(BaseSettings):
    """How ``esco-search serve`` listens and what one request may ask (``ESCO_SERVICE_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="ESCO_SERVICE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        hide_input_in_errors=True,  # a refused setting never echoes an API key
    )

    host: str = Field(default="127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port)")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes, each with its own model")
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="comma-separated API keys; when set, /v1/* and /metrics need one "
        "(Authorization: Bearer <key> or X-API-Key: <key>); empty: open",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="comma-separated origins allowed to call from a browser (CORS); empty: CORS off",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="largest request body (413 above)")
    max_text_chars: int = Field(default=10_000, ge=1, description="longest text of one query (413 above)")
    max_batch: int = Field(default=64, ge=1, description="most texts in one /v1/search/batch request (413 above)")
    max_limit: int = Field(default=100, ge=1, le=1000, description="most hits one query may ask for (413 above)")
    batch_max_size: int = Field(
        default=64, ge=1, description="most queries merged into one encoder call (1: no micro-batching)"
    )
    batch_wait_ms: float = Field(
        default=2.0, ge=0, le=1000, description="how long the first query of a batch waits for others (ms)"
    )
    ready_check_timeout: float = Field(default=5.0, gt=0, description="seconds /readyz waits for the store")
    load_retry_seconds: float = Field(
        default=10.0, gt=0, description="wait between attempts to load the searcher when the first one fails"
    )
    keep_alive_seconds: int = Field(
        default=75, ge=1, le=3600, description="idle seconds before a kept-alive connection is closed (above the "
        "idle timeout of a load balancer in front, e.g. 60 s)")
    graceful_timeout: float = Field(default=20.0, ge=0, description="seconds to finish open requests on SIGTERM")

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, v: Any) -> Any:
        return _split(v)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, v: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for key in v:
            if len(key.get_secret_value()) < 8:
                raise ValueError("every ESCO_SERVICE_API_KEYS entry needs at least 8 characters "
                                 "(e.g. `openssl rand -hex 32`)")
        return v
