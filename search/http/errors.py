"""Error answers of the HTTP API: the library's messages with fitting status codes, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.errors import (
    CollectionNotFound,
    ConfigError,
    EncoderMismatch,
    InvalidFilter,
    InvalidQuery,
    QdrantUnavailable,
    SearchError,
    StoreLocked,
)

__all__ = ["ServiceError", "TooLarge", "NotReady", "error_response", "install_error_handlers", "STATUS_OF"]

logger = logging.getLogger(__name__)

# Library errors -> status codes. A missing collection or an unreachable store is the service's
# condition, not the client's: 503 (the client may retry; /readyz says the same).
STATUS_OF: tuple[tuple[type[SearchError], int], ...] = (
    (InvalidFilter, 400),
    (InvalidQuery, 400),
    (QdrantUnavailable, 503),
    (StoreLocked, 503),
    (CollectionNotFound, 503),
    (EncoderMismatch, 503),
    (ConfigError, 503),
)


class ServiceError(Exception):
    """An error the service itself raises, with its status code and a message for the client."""

    status = 400
    kind = "BadRequest"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooLarge(ServiceError):
    """A body, text, batch or limit above the service's limits (413)."""

    status = 413
    kind = "TooLarge"


class NotReady(ServiceError):
    """The searcher is not loaded yet, or failed to load (503)."""

    status = 503
    kind = "NotReady"


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """The one error shape: ``{"detail": <message>, "error": <type>, ...}``."""
    body = {"detail": message, "error": kind, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status(exc: SearchError) -> int:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 400


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts[:10])


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON (:func:`error_response`); unexpected ones as 500 without details."""

    @app.exception_handler(SearchError)
    async def _search_error(request: Request, exc: SearchError) -> JSONResponse:
        status = _status(exc)
        if status >= 500:
            logger.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        if isinstance(exc, InvalidFilter):
            return error_response(status, type(exc).__name__, str(exc), field=exc.field,
                                  valid=list(exc.valid) or None)
        return error_response(status, type(exc).__name__, str(exc))

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = exc.headers or ({"Retry-After": "5"} if exc.status == 503 else None)
        return error_response(exc.status, exc.kind, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "ValidationError", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "InternalError", "internal error: the service log has the details")
