"""Calls to Qdrant through ``qdrant-client`` with retries, and failures turned into the project's errors.

Server calls are retried with tenacity on transport errors, timeouts, 429 and 5xx answers only (point ids
are deterministic, so a repeated upsert overwrites; a ``Retry-After`` header is honoured up to the longest
wait); what still fails is raised as :class:`~search.errors.QdrantUnavailable` naming the URL. A request
whose first attempt may have been applied before its answer was lost (a dropped connection, a timeout) is
accepted when the retry finds it done. A wrong API key (401/403) is not retried and names
``ESCO_QDRANT_API_KEY``; other 4xx answers are not retried either and become a one-line
:class:`~search.errors.SearchError` with the server's own message. No message carries the API key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from search.errors import CollectionNotFound, QdrantUnavailable, SearchError

__all__ = ["RetryingCalls", "is_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRY_STATUS = {429, 500, 502, 503, 504}


_TRANSPORT = (httpx.TransportError, ConnectionError, TimeoutError, OSError)


def _is_transient(exc: BaseException) -> bool:
    """Transport errors, timeouts, 429 and 5xx: safe to retry because writes are idempotent."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _RETRY_STATUS
    if isinstance(exc, ResourceExhaustedResponse):  # a 429 with Retry-After
        return True
    if isinstance(exc, ResponseHandlingException):
        # The client wraps transport errors, and also answers it cannot parse (not transient).
        return isinstance(exc.source, _TRANSPORT)
    if isinstance(exc, _TRANSPORT):
        return True
    try:  # gRPC, when prefer_grpc is set
        import grpc

        if isinstance(exc, grpc.RpcError):
            code = exc.code()  # type: ignore[attr-defined]
            return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.RESOURCE_EXHAUSTED)
    except ImportError:  # pragma: no cover
        pass
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked to wait (a ``Retry-After`` header), or None."""
    if isinstance(exc, ResourceExhaustedResponse):
        return float(exc.retry_after_s)
    if isinstance(exc, UnexpectedResponse) and exc.headers is not None:
        value = exc.headers.get("Retry-After")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None
    return None


def _server_error(exc: UnexpectedResponse) -> str:
    """The server's own error text from a Qdrant error answer, on one line (or the reason phrase)."""
    text = ""
    try:
        status = json.loads(exc.content).get("status")
        if isinstance(status, dict):
            text = str(status.get("error") or "")
    except (ValueError, AttributeError, TypeError):
        text = exc.content.decode("utf-8", "replace") if exc.content else ""
    text = " ".join(text.split()) or exc.reason_phrase or ""
    return text[:300] + ("..." if len(text) > 300 else "")


def _describe(exc: BaseException | None) -> str:
    """A fault in a few words, on one line."""
    if isinstance(exc, UnexpectedResponse):
        return f"{exc.status_code} {exc.reason_phrase}: {_server_error(exc)}"
    if isinstance(exc, ResourceExhaustedResponse):
        return f"429 rate limited: {exc.message}"
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source
    return f"{type(exc).__name__}: {exc}"


is_transient = _is_transient


class RetryingCalls:
    """Retries and error mapping for a store on ``qdrant-client`` (the base of its store class).

    Subclasses set ``_where`` (for messages), ``_retries`` (1: no retry), ``_max_wait`` (seconds) and
    ``_secrets`` (strings never to print).
    """

    _where: str = "Qdrant"
    _retries: int = 1
    _max_wait: float = 10.0
    _secrets: tuple[str, ...] = ()

    def _wait(self, state: RetryCallState) -> float:
        """Exponential back-off from 0.2 s, or the server's Retry-After when longer; at most max_wait."""
        base = wait_exponential(multiplier=0.2, max=self._max_wait)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = _retry_after(exc)
        return min(self._max_wait, max(base, asked)) if asked is not None else base

    def _log_retry(self, state: RetryCallState, op: str) -> None:
        """One warning line per retry: what failed, which attempt, how long until the next."""
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(self._clean(
            f"{self._where}: {op} failed "
            f"({_describe(exc)}), attempt {state.attempt_number} of {self._retries}; retrying in {wait:.2f} s"
        ))

    def _clean(self, text: str) -> str:
        """One line, without any secret."""
        text = " ".join(str(text).split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _call(self, fn: Callable[..., T], *args: Any,
              done_on_retry: Callable[[UnexpectedResponse], bool] | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with retries on transient faults; failures become the project's errors.

        ``done_on_retry`` is asked when a retried attempt is refused (a 4xx): True when the refusal only
        shows that an earlier attempt, whose answer was lost, was applied (then the call succeeds).
        """
        attempts = 0
        op = getattr(fn, "__name__", "request")

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                return fn(*args, **kwargs)
            except UnexpectedResponse as exc:
                if (attempts > 1 and done_on_retry is not None and exc.status_code is not None
                        and 400 <= exc.status_code < 500 and done_on_retry(exc)):
                    logger.info("%s: an earlier attempt of %s was applied before its answer was lost",
                                self._where, op)
                    return None  # type: ignore[return-value]
                raise

        wrapped = retry(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self._retries),
            wait=self._wait,
            before_sleep=lambda state: self._log_retry(state, op),
            reraise=True,
        )(attempt)
        try:
            return wrapped()
        except SearchError:
            raise
        except UnexpectedResponse as exc:
            code = exc.status_code
            if code in (401, 403):
                raise QdrantUnavailable(
                    f"{self._where} refused the request ({code} {exc.reason_phrase}): check ESCO_QDRANT_API_KEY "
                    f"({'it is missing or wrong' if code == 401 else 'a read-only key cannot write'})"
                ) from exc
            if code == 404:
                raise
            if _is_transient(exc):
                raise QdrantUnavailable(self._clean(
                    f"{self._where} answered {code} {exc.reason_phrase} to {op} after {attempts} attempts: "
                    f"{_server_error(exc)}; check the server's health and logs, then try again (an interrupted "
                    f"ingest resumes)"
                )) from exc
            raise SearchError(self._clean(
                f"{self._where} rejected {op} ({code} {exc.reason_phrase}, not retried): {_server_error(exc)}"
            )) from exc
        except ResourceExhaustedResponse as exc:
            raise QdrantUnavailable(self._clean(
                f"{self._where} answered 429 (rate limited: {exc.message}) to {op} after {attempts} attempts; "
                f"lower the load or raise the server's limits, then try again (an interrupted ingest resumes)"
            )) from exc
        except Exception as exc:
            if _is_transient(exc):
                cause = exc.source if isinstance(exc, ResponseHandlingException) else exc
                kind = "timed out" if isinstance(cause, (httpx.TimeoutException, TimeoutError)) else "cannot be reached"
                raise QdrantUnavailable(self._clean(
                    f"{self._where} {kind} ({op}) after {attempts} attempts ({type(cause).__name__}: {cause}); "
                    f"check ESCO_QDRANT_URL and that the server runs, then try again (an interrupted ingest "
                    f"resumes; ESCO_QDRANT_TIMEOUT sets the seconds per request)"
                )) from exc
            if isinstance(exc, ResponseHandlingException):
                raise SearchError(self._clean(
                    f"{self._where} sent an answer to {op} this qdrant-client cannot read "
                    f"({type(exc.source).__name__}: {str(exc.source)[:200]}); is it a Qdrant server of a "
                    f"compatible version?"
                )) from exc
            raise

    def _on(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call on one collection; a missing collection becomes CollectionNotFound (no extra round trip)."""
        try:
            return self._call(fn, *args, **kwargs)
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                raise CollectionNotFound(name, self._where) from exc
            raise
        except ValueError as exc:  # local mode: "Collection x not found"
            if "not found" in str(exc):
                raise CollectionNotFound(name, self._where) from exc
            raise
