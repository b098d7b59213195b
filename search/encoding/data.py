"""The texts the encoding layer ships as package data (``search/encoding/data/*.json``), read once.

* ``check_set.json``: the held-out retrieval task of ``ESCO_BACKEND=auto`` (:mod:`search.encoding.check`),
  written by ``scripts/make_backend_check_set.py``;
* ``calibration.json``: what the OpenVINO int8 quantization is calibrated on
  (:mod:`search.encoding.openvino_export`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CheckSet", "calibration_texts", "check_set"]


def _load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("search.encoding").joinpath("data", name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CheckSet:
    """Queries, the passages relevant to each (``relevant[i]``: indices into ``passages``), and their kinds."""

    queries: tuple[str, ...]
    relevant: tuple[tuple[int, ...], ...]
    kinds: tuple[str, ...]
    passages: tuple[str, ...]

    def of_kind(self, kind: str) -> list[int]:
        """Indices of the queries of one kind (``label``, ``sentence``)."""
        return [i for i, k in enumerate(self.kinds) if k == kind]


@functools.cache
def check_set() -> CheckSet:
    """The held-out check set of ``ESCO_BACKEND=auto`` (see ``check_set.json``'s ``about``)."""
    doc = _load("check_set.json")
    qs = doc["queries"]
    return CheckSet(
        queries=tuple(q["text"] for q in qs), relevant=tuple(tuple(int(j) for j in q["relevant"]) for q in qs),
        kinds=tuple(q["kind"] for q in qs), passages=tuple(doc["passages"]),
    )


@functools.cache
def calibration_texts() -> tuple[str, ...]:
    """The int8 calibration texts with their prompts: ``passage: ...`` and ``query: ...``."""
    doc = _load("calibration.json")
    return tuple(f"passage: {p}" for p in doc["passages"]) + tuple(f"query: {q}" for q in doc["queries"])

