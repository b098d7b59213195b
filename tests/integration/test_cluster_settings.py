"""Collections for a cluster: the layout settings reach Qdrant's create-collection request as they should.

The request is captured by the tests' fake Qdrant server (tests/fault_server.py), which parses it with
qdrant-client's own models, as a server would receive it.
"""

from __future__ import annotations

import pytest

from ingest.build import run
from ingest.settings import IngestSettings
from search.stores import open_store
from tests.fault_server import FaultServer
from tests.helpers import MINI_V11


@pytest.mark.parametrize("representations", ["dense", "hybrid"])
def test_cluster_layout_reaches_the_server(tmp_path, encoder, representations):
    with FaultServer() as srv:
        settings = IngestSettings(
            _env_file=None, qdrant_url=srv.url, model=encoder.model_name, lock_dir=tmp_path / "locks",
            shard_number=6, replication_factor=2, write_consistency_factor=1, on_disk_vectors=True,
            quantization="int8", hnsw_m=32, hnsw_ef_construct=200, representations=representations,
        )
        summary = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False, limit=3)
        req = srv.created[summary.collection]
        assert (req.shard_number, req.replication_factor, req.write_consistency_factor) == (6, 2, 1)
        if representations == "dense":
            assert req.vectors.size == 384 and req.vectors.distance.value == "Cosine" and req.vectors.on_disk is True
        else:  # the dense named vectors carry the layout; the label rows are never HNSW-indexed; BM25 with IDF
            assert set(req.vectors) == {"passage", "pref", "labels"} and set(req.sparse_vectors) == {"bm25"}
            for name in ("passage", "pref", "labels"):
                v = req.vectors[name]
                assert v.size == 384 and v.distance.value == "Cosine" and v.on_disk is True, name
            assert req.vectors["labels"].multivector_config.comparator.value == "max_sim"
            assert req.vectors["labels"].hnsw_config.m == 0
            assert req.sparse_vectors["bm25"].modifier.value == "idf"
        assert req.quantization_config.scalar.type.value == "int8"
        assert req.quantization_config.scalar.always_ram is True  # quantized vectors in RAM, originals on disk
        # 3 points, far below the 20,000-point threshold: no graph (it would never be walked), and the int8
        # copies built at once (an indexing threshold of 1 KB); hnsw_m=32 goes to collections above it (below)
        assert (req.hnsw_config.m, req.hnsw_config.ef_construct) == (0, 200)
        assert req.optimizers_config.indexing_threshold == 1
        # Qdrant counts this threshold in KB of vectors: 20,000 points of 384 float32 = 30,000 KB
        assert req.hnsw_config.full_scan_threshold == 20_000 * 384 * 4 // 1024
        assert req.metadata["model"] == encoder.model_name and req.metadata["status"] == "building"
        store = open_store(settings)
        try:
            assert store.get_metadata(settings.collection)["status"] == "complete"
        finally:
            store.close()


def test_a_big_collection_reaches_the_server_with_its_graph_and_point_thresholds(tmp_path):
    """Above the indexing threshold the graph degree and the thresholds (in KB) go as set."""
    from search.stores.base import CollectionParams

    with FaultServer() as srv:
        store = open_store(IngestSettings(_env_file=None, qdrant_url=srv.url, lock_dir=tmp_path / "locks"))
        try:
            params = CollectionParams(vector_size=384, quantization="int8", hnsw_m=32, hnsw_ef_construct=200,
                                      expected_points=389_088)
            store.create_collection("big", params, {}, [])
        finally:
            store.close()
        req = srv.created["big"]
        assert (req.hnsw_config.m, req.hnsw_config.ef_construct) == (32, 200)
        assert req.optimizers_config.indexing_threshold == 20_000 * 384 * 4 // 1024
        assert req.hnsw_config.full_scan_threshold == 20_000 * 384 * 4 // 1024


def test_embedded_defaults_need_no_cluster_settings(tmp_path):
    s = IngestSettings(_env_file=None, qdrant_path=tmp_path)
    assert (s.shard_number, s.replication_factor, s.write_consistency_factor) == (None, None, None)
    assert s.quantization == "int8" and s.on_disk_vectors is False  # int8 copies scanned, rescored (docs/settings.md)
