"""Upsert requests stay well under a Qdrant server's default 32 MB request limit, whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from qdrant_client import models

from ingest.points import REQUEST_BUDGET_BYTES, request_chunks
from ingest.esco import read_release
from ingest.points import build_points
from ingest.settings import IngestSettings
from tests.helpers import MINI_V11

SERVER_LIMIT = 32 * 1024 * 1024  # Qdrant's service.max_request_size_mb default


def _points(n: int, dim: int):
    """``n`` points with the mini release's real payloads (cycled) and random unit vectors of ``dim``."""
    base = build_points(read_release([MINI_V11], ["en", "de"]), "model|torch|fp32|x", "passage: ")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = base[i % len(base)]
        v = rng.standard_normal(dim).astype(np.float32)
        out.append(type(p)(f"{i:08d}-0000-4000-8000-000000000000", p.text, dict(p.payload), v / np.linalg.norm(v)))
    return out


def _request_bytes(chunk) -> int:
    """The JSON body qdrant-client sends for one upsert request of these points."""
    req = models.PointsList(points=[models.PointStruct(id=p.id, vector=p.vector_list(), payload=p.payload)
                                    for p in chunk])
    return len(req.model_dump_json(exclude_unset=True).encode())


def test_a_batch_setting_beyond_the_bound_is_refused_with_the_limit():
    with pytest.raises(ValidationError, match="2048"):
        IngestSettings(_env_file=None, upsert_batch_size=10_000)
    assert IngestSettings(_env_file=None, upsert_batch_size=2048).upsert_batch_size == 2048


@pytest.mark.parametrize("dim", [384, 1024])
def test_requests_stay_under_the_budget_and_keep_every_point_in_order(dim):
    points = _points(3000, dim)
    chunks = request_chunks(points, 2048, dim)
    assert [p.id for c in chunks for p in c] == [p.id for p in points]
    assert all(len(c) <= 2048 for c in chunks)
    sizes = [_request_bytes(c) for c in chunks]
    assert max(sizes) <= REQUEST_BUDGET_BYTES < SERVER_LIMIT
    if dim == 1024:  # 2048 points of 1024 dims are ~50 MB of JSON: the budget, not the count, splits them
        assert len(chunks) > 2 and sum(len(c) for c in chunks[:1]) < 2048


def test_the_count_bounds_small_points():
    points = _points(100, 8)
    assert [len(c) for c in request_chunks(points, 30, 8)] == [30, 30, 30, 10]


def test_a_point_bigger_than_the_budget_goes_alone():
    points = _points(5, 384)
    chunks = request_chunks(points, 100, 384, budget=1)
    assert [len(c) for c in chunks] == [1] * 5
