"""The layout rule of a new collection: a graph only where it can be walked, int8 copies at any size."""

from __future__ import annotations

from ingest.space import FIXED_BYTES, collection_bytes
from search.stores import CollectionParams


def test_a_collection_known_to_be_small_gets_no_graph_but_its_int8_copies() -> None:
    small = CollectionParams(vector_size=384, quantization="int8", hnsw_m=32, expected_points=13_896)
    assert small.graph_m() == 0
    assert small.indexing_threshold_kb() == 1  # optimize builds the int8 copies at once
    assert small.indexes(13_896) and small.indexes(3)


def test_a_big_or_unknown_collection_keeps_the_graph_and_the_point_threshold() -> None:
    kb = 20_000 * 384 * 4 // 1024
    for expected in (20_001, 389_088, None):
        p = CollectionParams(vector_size=384, quantization="int8", hnsw_m=32, expected_points=expected)
        assert p.graph_m() == 32, expected
        assert p.indexing_threshold_kb() == kb
        assert not p.indexes(19_999) and p.indexes(20_000)
    at = CollectionParams(vector_size=384, quantization="int8", expected_points=20_000)
    assert at.graph_m() == 0  # at the threshold: below the full-scan threshold a graph is never walked


def test_without_int8_a_small_collection_stays_plain() -> None:
    p = CollectionParams(vector_size=768, quantization="none", expected_points=3_007)
    assert p.graph_m() == 0
    assert p.indexing_threshold_kb() == 20_000 * 768 * 4 // 1024  # nothing to build: optimize keeps it plain
    assert not p.indexes(3_007)


def test_the_space_estimate_counts_the_indexed_copy_and_the_graph_where_built() -> None:
    sizes = [1000] * 50
    assert collection_bytes(sizes, sizes, indexes=False) == 50_000 + FIXED_BYTES
    assert collection_bytes(sizes, sizes, indexes=True, hnsw_m=0) == 100_000 + FIXED_BYTES
    assert collection_bytes(sizes, sizes, indexes=True, hnsw_m=16) == 100_000 + FIXED_BYTES + 50 * 16 * 2 * 4 * 5 // 4

