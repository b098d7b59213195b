"""Micro-batching: concurrent queries merged into one ``search_batch`` call (one encoder pass).

Each request puts its texts and its search arguments on an asyncio queue. One consumer task takes the
first waiting request, gathers what else arrives within ``wait_ms`` (up to ``max_size`` texts), groups the
requests by their arguments (filters, limit, threshold: only queries asked the same way share a call) and
runs one ``search_batch`` per group in a worker thread. While that call runs, new requests queue up and
form the next batch, so under load the batches grow by themselves. The consumer waits only when the last
call merged several requests (or more are queued): a lone client is answered without any wait.

``SkillSearch.search_batch`` answers each text exactly as ``search`` would, so a merged query gets the same
hits as a single call. When a merged call fails with a :class:`~search.errors.SearchError` that may belong
to one request only, every request of the group is answered on its own, with its own result or error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.errors import InvalidFilter, InvalidQuery, SearchError

__all__ = ["MicroBatcher", "search_key"]

logger = logging.getLogger(__name__)

SearchFn = Callable[..., list[list[Any]]]


def _freeze(value: Any) -> Hashable:
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_freeze(v) for v in value)
    return value  # type: ignore[no-any-return]


def search_key(kwargs: Mapping[str, Any]) -> Hashable:
    """A hashable key of search arguments: requests with equal keys may share one ``search_batch`` call."""
    return tuple(sorted((k, _freeze(v)) for k, v in kwargs.items()))


@dataclass
class _Job:
    texts: list[str]
    kwargs: dict[str, Any]
    key: Hashable
    future: asyncio.Future[list[list[Any]]]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Merge concurrent searches into ``search_batch`` calls run in a worker thread.

    Args:
        search_batch: ``SkillSearch.search_batch`` (or any function of the same signature).
        max_size: most texts per call (1 switches merging off: every request is its own call).
        wait_ms: how long the first request of a batch waits for others to join (only under concurrency).
        on_batch: called with (number of texts, number of requests) after each call, for metrics.
    """

    def __init__(self, search_batch: SearchFn, *, max_size: int = 64, wait_ms: float = 2.0,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self._search_batch = search_batch
        self.max_size = max_size
        self.wait = max(0.0, wait_ms) / 1000.0
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_requests = 0

    # --- lifetime --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the consumer task on the running event loop."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="esco-micro-batcher")

    async def stop(self) -> None:
        """Answer what is queued, then stop the consumer."""
        self._closing = True
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    # --- submitting ------------------------------------------------------------------------------
    async def search(self, texts: Sequence[str], **kwargs: Any) -> list[list[Any]]:
        """The hits of each text, as ``search_batch(texts, **kwargs)`` returns them."""
        if self._queue is None or self._task is None or self._closing:
            raise RuntimeError("the micro-batcher is not running (the service is starting or stopping)")
        fut: asyncio.Future[list[list[Any]]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(list(texts), dict(kwargs), search_key(kwargs), fut))
        return await fut

    # --- the consumer ----------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            first = await queue.get()
            jobs = [first]
            size = len(first.texts)
            # Wait for company only where there is some: a lone client (the last call served one request
            # and nothing else is queued) is answered at once.
            wait = self.wait if (self._last_requests > 1 or not queue.empty()) else 0.0
            deadline = time.perf_counter() + wait
            while size < self.max_size:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                jobs.append(job)
                size += len(job.texts)
            self._last_requests = len(jobs)
            try:
                await self._dispatch(jobs)
            finally:
                for _ in jobs:
                    queue.task_done()

    async def _dispatch(self, jobs: list[_Job]) -> None:
        groups: dict[Hashable, list[_Job]] = {}
        for job in jobs:
            if not job.future.done():  # a client that went away is not searched for
                groups.setdefault(job.key, []).append(job)
        for group in groups.values():
            await self._run_group(group)

    async def _run_group(self, group: list[_Job]) -> None:
        texts = [t for job in group for t in job.texts]
        try:
            results = await asyncio.to_thread(self._search_batch, texts, **group[0].kwargs)
        except (InvalidQuery, InvalidFilter) as exc:
            if len(group) == 1:
                _settle(group[0], exc=exc)
            else:  # may be one request's fault: answer each on its own
                for job in group:
                    await self._run_group([job])
            return
        except SearchError as exc:
            for job in group:
                _settle(job, exc=exc)
            return
        except Exception as exc:  # noqa: BLE001  (handed to the request, which answers 500)
            logger.exception("search_batch failed for %d texts", len(texts))
            for job in group:
                _settle(job, exc=exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(texts), len(group))
        at = 0
        for job in group:
            _settle(job, result=results[at:at + len(job.texts)])
            at += len(job.texts)


def _settle(job: _Job, result: list[list[Any]] | None = None, exc: BaseException | None = None) -> None:
    if job.future.done():
        return
    if exc is not None:
        job.future.set_exception(exc)
    else:
        job.future.set_result(result or [])
