"""Prometheus metrics of the service: requests and latency per endpoint, encoder and store time, errors.

Each app has its own :class:`prometheus_client.CollectorRegistry` (several apps in one process, as in the
tests, never clash). With ``--workers N`` each worker process counts its own requests; run one worker per
pod (scale with pods) where exact totals matter.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]

F = TypeVar("F", bound=Callable[..., Any])

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("esco_http_requests", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("esco_http_request_duration_seconds", "HTTP request latency by endpoint",
                                 ["endpoint", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter("esco_http_errors", "Error answers by endpoint and error type",
                              ["endpoint", "error"], registry=r)
        self.encoder_seconds = Histogram("esco_encoder_duration_seconds", "Time of one encoder call (a batch)",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.store_seconds = Histogram("esco_store_search_duration_seconds", "Time of one store search (a batch)",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_texts = Histogram("esco_batch_texts", "Texts per merged search_batch call",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.batch_requests = Histogram("esco_batch_requests", "Requests merged into one search_batch call",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.ready = Gauge("esco_ready", "1 when the searcher is loaded and the collection checked", registry=r)
        self.in_flight = Gauge("esco_http_requests_in_flight", "Requests being answered", registry=r)

    def on_batch(self, texts: int, requests: int) -> None:
        """Record one merged call."""
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)

    @staticmethod
    def timed(fn: F, histogram: Histogram) -> F:
        """``fn`` that records its duration in ``histogram`` (errors included)."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - start)

        return wrapper  # type: ignore[return-value]

    def instrument(self, searcher: Any) -> None:
        """Time the searcher's encoder calls and store searches (wraps the methods on the instances)."""
        searcher.encoder.encode_queries = self.timed(searcher.encoder.encode_queries, self.encoder_seconds)
        for name in ("search", "query"):  # dense searches, and fused (hybrid) queries where the store has them
            if callable(getattr(searcher.store, name, None)):
                setattr(searcher.store, name, self.timed(getattr(searcher.store, name), self.store_seconds))
