"""The ASGI app of ``esco-search serve``: ESCO skill search over HTTP (FastAPI).

One :class:`~search.service.SkillSearch` per process, loaded in the background at start: ``/healthz``
answers at once, ``/readyz`` only once the model is loaded and the collection checked. Concurrent queries
are merged into one encoder call (:mod:`search.http.batching`). Read-only by design: no route writes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from search.errors import SearchError
from search.http.batching import MicroBatcher
from search.http.errors import NotReady, ServiceError, TooLarge, error_response, install_error_handlers
from search.http.metrics import ServiceMetrics
from search.http.middleware import LimitAndMeasure
from search.http.models import BatchRequest, CollectionInfo, ErrorBody, ExtractRequest, Hit, SearchRequest, Skill
from search.http.settings import ServiceSettings
from search.schema import Field, point_id
from search.settings import SearchSettings

__all__ = ["create_app", "ServiceState"]

logger = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what} for code, what in (
        (400, "invalid query or filter (the message lists the valid values)"), (401, "API key missing or wrong"),
        (413, "body, text, batch or limit over the service's limits"), (422, "malformed request body"),
        (503, "not ready, or the store is unavailable"))
}


class ServiceState:
    """What one app holds: the settings, the searcher once loaded, the batcher and the metrics."""

    def __init__(self, search_settings: SearchSettings | None, service: ServiceSettings,
                 searcher_factory: Callable[[], Any] | None) -> None:
        self.search_settings = search_settings
        self.service = service
        self.metrics = ServiceMetrics()
        self._factory = searcher_factory
        self.searcher: Any = None
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None
        self._encoder: Any = None
        self._keys = [hashlib.sha256(k.get_secret_value().encode()).digest() for k in service.api_keys]

    # --- loading ---------------------------------------------------------------------------------
    def _load(self) -> Any:
        if self._factory is not None:
            return self._factory()
        from search.encoding import load_encoder
        from search.service import SkillSearch

        settings = self.search_settings or SearchSettings()
        if self._encoder is None:  # loaded once: a retry (no collection yet) only looks at the store again
            self._encoder = load_encoder(settings)
        return SkillSearch(settings, encoder=self._encoder)

    async def load_until_ready(self) -> None:
        """Load the searcher in a thread; retry every ``load_retry_seconds`` until it loads."""
        last: str | None = None
        while True:
            try:
                searcher = await asyncio.to_thread(self._load)
            except Exception as exc:  # noqa: BLE001  (reported on /readyz; retried)
                self.load_error = f"{type(exc).__name__}: {exc}" if isinstance(exc, SearchError) else (
                    f"{type(exc).__name__} while loading the searcher (see the service log)")
                level = logging.DEBUG if self.load_error == last else logging.WARNING  # once per distinct cause
                last = self.load_error
                logger.log(level, "cannot load the searcher (retrying every %.0f s): %s",
                           self.service.load_retry_seconds, exc, exc_info=not isinstance(exc, SearchError))
                await asyncio.sleep(self.service.load_retry_seconds)
                continue
            self.metrics.instrument(searcher)
            batcher = MicroBatcher(searcher.search_batch, max_size=self.service.batch_max_size,
                                   wait_ms=self.service.batch_wait_ms, on_batch=self.metrics.on_batch)
            batcher.start()
            self.searcher, self.batcher, self.load_error = searcher, batcher, None
            self.metrics.ready.set(1)
            logger.info("ready: searching %r", getattr(searcher, "collection", "?"))
            return

    async def close(self) -> None:
        self.metrics.ready.set(0)
        if self.batcher is not None:
            await self.batcher.stop()
        if self.searcher is not None:
            await asyncio.to_thread(self.searcher.close)
        self.searcher = self.batcher = None

    def ready_searcher(self) -> Any:
        if self.searcher is None or self.batcher is None:
            why = f" (last attempt: {self.load_error})" if self.load_error else ""
            raise NotReady(f"the service is loading the model and checking the collection{why}; retry shortly")
        return self.searcher

    # --- security --------------------------------------------------------------------------------
    def key_ok(self, given: str | None) -> bool:
        """True when no keys are configured, or ``given`` equals one of them (constant time, every key)."""
        if not self._keys:
            return True
        # Digests first: equal lengths, so the comparison time tells nothing about a key's length either.
        probe = hashlib.sha256((given or "").encode()).digest()
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(probe, key)
        return ok and given is not None

    # --- limits ----------------------------------------------------------------------------------
    def check_limits(self, texts: list[str], limit: int | None) -> None:
        svc = self.service
        if len(texts) > svc.max_batch:
            raise TooLarge(f"{len(texts)} texts in one batch; at most {svc.max_batch} (ESCO_SERVICE_MAX_BATCH): "
                           "split the batch")
        for i, text in enumerate(texts):
            if isinstance(text, str) and len(text) > svc.max_text_chars:
                which = f"text {i}" if len(texts) > 1 else "the text"
                raise TooLarge(f"{which} has {len(text)} characters; at most {svc.max_text_chars} "
                               "(ESCO_SERVICE_MAX_TEXT_CHARS): send shorter passages, e.g. one per sentence")
        if isinstance(limit, int) and limit > svc.max_limit:
            raise TooLarge(f"limit {limit} is over the service's {svc.max_limit} (ESCO_SERVICE_MAX_LIMIT)")


def create_app(search_settings: SearchSettings | None = None, service_settings: ServiceSettings | None = None,
               *, searcher_factory: Callable[[], Any] | None = None) -> FastAPI:
    """The service's ASGI app. Without arguments, every setting comes from ``ESCO_*`` variables.

    Args:
        search_settings: the searcher's settings (default: ``SearchSettings()``).
        service_settings: the service's own (default: ``ServiceSettings()``).
        searcher_factory: builds the searcher instead (for embedding the app with a searcher you have).
    """
    service = service_settings or ServiceSettings()
    state = ServiceState(search_settings, service, searcher_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(state.load_until_ready(), name="esco-load-searcher")
        try:
            yield
        finally:
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            await state.close()

    app = FastAPI(title="ESCO skill search", version="1", lifespan=lifespan,
                  description="Map texts onto ESCO skills. Read-only. Hits are `esco-search --json` objects.")
    app.state.service = state
    install_error_handlers(app)
    app.add_middleware(LimitAndMeasure, max_body_bytes=service.max_body_bytes, metrics=state.metrics,
                       routes=lambda: app.routes)
    if service.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(service.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"], max_age=600)

    async def require_key(authorization: Annotated[str | None, Header()] = None,
                          x_api_key: Annotated[str | None, Header()] = None) -> None:
        given = x_api_key
        if given is None and authorization and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if not state.key_ok(given):
            raise _Unauthorized()

    guarded = [Depends(require_key)]

    # --- probes ------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["probes"], summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["probes"], summary="readiness: model loaded, collection checked, store answers",
             responses={503: ERRORS[503]})
    async def readyz() -> JSONResponse:
        if state.searcher is None:
            return error_response(503, "NotReady", state.load_error or "loading the model and checking the collection")
        searcher = state.searcher
        try:
            exists = await asyncio.wait_for(asyncio.to_thread(searcher.store.collection_exists, searcher.collection),
                                            service.ready_check_timeout)
        except asyncio.TimeoutError:
            return error_response(503, "QdrantUnavailable", f"the store did not answer in {service.ready_check_timeout} s")
        except SearchError as exc:
            return error_response(503, type(exc).__name__, str(exc))
        if not exists:
            return error_response(503, "CollectionNotFound", f"collection {searcher.collection!r} is gone from the store")
        return JSONResponse({"status": "ready", "collection": searcher.collection})

    # --- searching ---------------------------------------------------------------------------------
    @app.post("/v1/search", response_model=list[Hit], tags=["search"], dependencies=guarded, responses=ERRORS,
              summary="the skills closest to one text, best first")
    async def search(req: SearchRequest) -> list[dict[str, Any]]:
        state.check_limits([req.text], req.limit)
        state.ready_searcher()
        assert state.batcher is not None
        (hits,) = await state.batcher.search([req.text], **req.search_kwargs())
        return [h.to_dict() for h in hits]

    @app.post("/v1/search/batch", response_model=list[list[Hit]], tags=["search"], dependencies=guarded,
              responses=ERRORS, summary="several texts with the same options: one list of hits per text")
    async def search_batch(req: BatchRequest) -> list[list[dict[str, Any]]]:
        state.check_limits(req.texts, req.limit)
        state.ready_searcher()
        assert state.batcher is not None
        results = await state.batcher.search(req.texts, **req.search_kwargs())
        return [[h.to_dict() for h in hits] for hits in results]

    @app.post("/v1/extract", tags=["search"], dependencies=guarded,
              responses={**ERRORS, 501: {"model": ErrorBody, "description": "extraction is not available yet"}},
              summary="the skills of a whole text: sentences searched in one batch, aggregated per skill")
    async def extract(req: ExtractRequest) -> Any:
        state.check_limits([req.text], req.limit)
        searcher = state.ready_searcher()
        extractor = _extractor(searcher)
        if extractor is None:
            return error_response(501, "NotImplemented", "text extraction is not available in this version "
                                  "(SkillSearch has no extract()); search sentences with POST /v1/search/batch")
        result = await asyncio.to_thread(extractor, req.text, **req.search_kwargs())
        return _jsonable(result)

    @app.get("/v1/skills/{uri:path}", response_model=Skill, tags=["skills"], dependencies=guarded,
             responses={**ERRORS, 404: {"model": ErrorBody, "description": "no such skill in the collection"}},
             summary="the stored payload of one skill (a concept URI, or its UUID), per language")
    async def skill(uri: str, language: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
        searcher = state.ready_searcher()
        concept = _concept_uri(uri)
        meta = await asyncio.to_thread(searcher.store.get_metadata, searcher.collection)
        langs = [lang for lang in meta.get("languages") or [] if not language or lang in language]
        points = await asyncio.to_thread(searcher.store.retrieve, searcher.collection,
                                         [point_id(concept, lang) for lang in langs])
        payloads = {p.payload.get(Field.LANGUAGE, ""): {k: v for k, v in p.payload.items() if k != Field.TEXT_HASH}
                    for p in points if p.payload.get(Field.CONCEPT_URI) == concept}
        if not payloads:
            raise _NotFound(f"no skill {concept!r} in collection {searcher.collection!r}"
                            + (f" in language {', '.join(language)}" if language else ""))
        return {"concept_uri": concept, "languages": sorted(payloads), "payloads": payloads}

    @app.get("/v1/collection", response_model=CollectionInfo, tags=["skills"], dependencies=guarded,
             responses=ERRORS, summary="what the service searches: alias, collection, ESCO version, model, count")
    async def collection() -> dict[str, Any]:
        searcher = state.ready_searcher()
        return await asyncio.to_thread(_collection_info, searcher)

    # --- operations --------------------------------------------------------------------------------
    @app.get("/metrics", tags=["probes"], dependencies=guarded, response_class=PlainTextResponse,
             summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("search.http").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(packages=[("search.http", "static")]), name="static")
    return app


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ESCO_SKILL = "http://data.europa.eu/esco/skill/"


class _Unauthorized(ServiceError):
    status = 401
    kind = "Unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__("an API key is needed: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")


class _NotFound(ServiceError):
    status = 404
    kind = "NotFound"


def _extractor(searcher: Any) -> Callable[..., Any] | None:
    """``searcher.extract``, else :func:`search.extraction.extract` bound to it, else None (not installed)."""
    method = getattr(searcher, "extract", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    try:
        from search.extraction import extract
    except ImportError:
        return None
    return functools.partial(extract, searcher)


def _concept_uri(uri: str) -> str:
    """A concept URI from the path: full (``http://data.europa.eu/esco/skill/<uuid>``) or the bare UUID."""
    uri = uri.strip()
    if uri.startswith(("http:/", "https:/")) and not uri.startswith(("http://", "https://")):
        uri = uri.replace(":/", "://", 1)  # a proxy merged the double slash
    if not uri.startswith(("http://", "https://")):
        if "/" in uri or not uri:
            raise ServiceError(f"not a skill URI: {uri!r}; give http://data.europa.eu/esco/skill/<uuid> or the UUID")
        uri = ESCO_SKILL + uri
    return uri


def _collection_info(searcher: Any) -> dict[str, Any]:
    store, alias = searcher.store, searcher.collection
    meta = store.get_metadata(alias)  # fresh: follows an alias switch at once
    threshold = searcher.default_threshold
    return {
        "alias": alias,
        "collection": store.resolve_alias(alias) or alias,
        "esco_version": meta.get("esco_version"),
        "languages": list(meta.get("languages") or []),
        "model": meta.get("model"),
        "backend": getattr(searcher.encoder, "backend", None) or meta.get("backend"),
        "precision": getattr(searcher.encoder, "precision", None) or meta.get("precision"),
        "store": store.kind,
        "count": store.count(alias),
        "threshold": threshold,
    }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return value
