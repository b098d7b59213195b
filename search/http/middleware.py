"""ASGI middleware of the service: the body-size limit, and request counts and latency per endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search.http.metrics import ServiceMetrics

__all__ = ["LimitAndMeasure"]


class LimitAndMeasure:
    """Refuse bodies over ``max_body_bytes`` (413) before the app reads them; count and time every request.

    The endpoint label is the route's path template (``/v1/skills/{uri:path}``), so URIs never become labels.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServiceMetrics,
                 routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self._routes = routes

    def _endpoint(self, scope: Scope) -> str:
        for route in self._routes():
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "other"))
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint, method = self._endpoint(scope), scope["method"]
        status = {"code": 500}
        start = time.perf_counter()

        async def send_measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await self._too_large(send_measured, declared)
                return
            body, whole = await _read_body(receive, self.max_body_bytes)
            if not whole:
                await self._too_large(send_measured, None)
                return
            await self.app(scope, _replay(body, receive), send_measured)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(endpoint, method, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - start)
            if status["code"] >= 400:
                self.metrics.errors.labels(endpoint, str(status["code"])).inc()

    async def _too_large(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more"
        body = json.dumps({
            "detail": f"request body of {size} is over the limit of {self.max_body_bytes} bytes "
                      f"(ESCO_SERVICE_MAX_BODY_BYTES); send fewer or shorter texts",
            "error": "TooLarge",
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's body messages, read up to ``limit`` bytes; (messages, False) when it is longer."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, True
        size += len(message.get("body", b""))
        if size > limit:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
