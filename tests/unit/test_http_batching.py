"""The micro-batcher of the HTTP service with a recording stand-in for ``search_batch`` (no model, no store):
which calls it makes, and that every request gets exactly its own answers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from search.errors import InvalidQuery, QdrantUnavailable  # noqa: E402
from search.http.batching import MicroBatcher, search_key  # noqa: E402


class Recorder:
    """``search_batch`` that answers each text with ``[(text, options)]`` and records every call."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.gate = gate

    def __call__(self, texts: list[str], **kwargs: Any) -> list[list[Any]]:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((list(texts), kwargs))
        if any(not t.strip() for t in texts):
            raise InvalidQuery("the query is empty or blank")
        if kwargs.get("language") == "down":
            raise QdrantUnavailable("the store is down")
        return [[(t, tuple(sorted(kwargs.items())))] for t in texts]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _with(batcher: MicroBatcher, body: Any) -> Any:
    batcher.start()
    try:
        return await body()
    finally:
        await batcher.stop()


def test_search_key_ignores_order_and_freezes_lists() -> None:
    assert search_key({"a": ["x", "y"], "b": 1}) == search_key({"b": 1, "a": ("x", "y")})
    assert search_key({"a": ["x"]}) != search_key({"a": ["y"]})


def test_concurrent_requests_with_equal_options_share_one_call_and_get_their_own_hits() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = MicroBatcher(rec, max_size=64, wait_ms=0)

    async def body() -> list[Any]:
        first = asyncio.create_task(batcher.search(["t0"], limit=5))  # occupies the worker until the gate opens
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.search([f"t{i}", f"u{i}"], limit=5)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first] + [await r for r in rest]

    answers = run(_with(batcher, body))
    assert answers[0] == [[("t0", (("limit", 5),))]]
    for i, ans in enumerate(answers[1:], start=1):
        assert ans == [[(f"t{i}", (("limit", 5),))], [(f"u{i}", (("limit", 5),))]]
    assert [c[0] for c in rec.calls] == [["t0"], [t for i in range(1, 6) for t in (f"t{i}", f"u{i}")]]


def test_different_options_are_never_merged() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = MicroBatcher(rec, max_size=64, wait_ms=0)

    async def body() -> list[Any]:
        block = asyncio.create_task(batcher.search(["block"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(batcher.search([f"q{i}"], skill_type=["knowledge"] if i % 2 else None))
                 for i in range(6)]
        await asyncio.sleep(0.05)
        gate.set()
        await block
        return [await t for t in tasks]

    answers = run(_with(batcher, body))
    for i, ans in enumerate(answers):
        assert ans[0][0][0] == f"q{i}"
        assert dict(ans[0][0][1])["skill_type"] == (["knowledge"] if i % 2 else None)
    merged = rec.calls[1:]
    assert sorted(len(c[0]) for c in merged) == [3, 3]
    for texts, kwargs in merged:
        assert all((int(t[1]) % 2 == 1) == (kwargs["skill_type"] is not None) for t in texts)


def test_max_size_caps_a_call() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = MicroBatcher(rec, max_size=4, wait_ms=0)

    async def body() -> None:
        block = asyncio.create_task(batcher.search(["block"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(batcher.search([f"q{i}"])) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(block, *tasks)

    run(_with(batcher, body))
    assert [len(c[0]) for c in rec.calls] == [1, 4, 4, 2]


def test_a_bad_request_in_a_merged_call_fails_alone() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = MicroBatcher(rec, max_size=64, wait_ms=0)

    async def body() -> list[Any]:
        block = asyncio.create_task(batcher.search(["block"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(batcher.search(["   " if i == 2 else f"q{i}"])) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        await block
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = run(_with(batcher, body))
    assert isinstance(answers[2], InvalidQuery)
    assert [a[0][0][0] for i, a in enumerate(answers) if i != 2] == ["q0", "q1", "q3", "q4"]


def test_a_store_error_reaches_every_request_of_the_call() -> None:
    batcher = MicroBatcher(Recorder(), max_size=64, wait_ms=0)

    async def body() -> list[Any]:
        return await asyncio.gather(*(batcher.search([f"q{i}"], language="down") for i in range(3)),
                                    return_exceptions=True)

    answers = run(_with(batcher, body))
    assert all(isinstance(a, QdrantUnavailable) for a in answers)


def test_stop_answers_what_is_queued_then_refuses() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_size=2, wait_ms=0)

    async def body() -> None:
        batcher.start()
        tasks = [asyncio.create_task(batcher.search([f"q{i}"])) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.stop()
        assert [t.result()[0][0][0] for t in tasks] == [f"q{i}" for i in range(5)]
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.search(["late"])

    run(body())


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        MicroBatcher(Recorder(), max_size=0)
