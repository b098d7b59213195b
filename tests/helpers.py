"""Helpers shared by the integration tests (not fixtures: plain functions)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MINI_V11 = ROOT / "tests" / "data" / "esco_mini" / "v1.1.9"
MINI_V12 = ROOT / "tests" / "data" / "esco_mini" / "v1.2.9"


@cache
def fixtures() -> ModuleType:
    """tests/data/make_fixtures.py, loaded by path: the mini release's URIs by key (SKILL, OCCUPATION, GROUP)."""
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests" / "data" / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def all_points(store, name: str) -> dict[str, tuple[dict, np.ndarray]]:
    """Every point of a collection: id -> (payload, vector)."""
    return {p.id: (p.payload, np.asarray(p.vector, dtype=np.float32)) for p in store.scroll(name, with_vectors=True)}


def brute_force(points: dict[str, tuple[dict, np.ndarray]], query: np.ndarray, flt=None, limit: int = 10,
                threshold: float | None = None, group_by: str | None = None) -> list[tuple[str, float]]:
    """Exact cosine search over stored vectors in numpy, restricted by the same filter: the reference."""
    rows = []
    for pid, (payload, vec) in points.items():
        if flt is not None and not flt.matches(payload):
            continue
        score = float(vec @ query / (np.linalg.norm(vec) * np.linalg.norm(query)))
        if threshold is not None and score < threshold:
            continue
        rows.append((pid, score, payload))
    rows.sort(key=lambda r: -r[1])
    if group_by:
        seen, grouped = set(), []
        for r in rows:
            key = r[2].get(group_by)
            if key not in seen:
                seen.add(key)
                grouped.append(r)
        rows = grouped
    return [(pid, score) for pid, score, _ in rows[:limit]]


class FailingEncoder:
    """Wraps a real encoder and fails on its ``fail_on``-th batch of passages: a build that breaks half-way."""

    def __init__(self, inner, fail_on: int) -> None:
        self._inner, self._n, self._fail_on = inner, 0, fail_on

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_passages(self, texts, batch_size=32):
        self._n += 1
        if self._n == self._fail_on:
            raise RuntimeError("the model broke")
        return self._inner.encode_passages(texts, batch_size)
