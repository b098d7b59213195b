"""The group values a reading process keeps for grouped searches on the edge store (search.stores.edge_fusion)."""

from __future__ import annotations


def test_the_group_values_a_reader_keeps_are_bounded(monkeypatch) -> None:
    from search.stores import edge_fusion
    from search.stores.base import StoredPoint

    monkeypatch.setattr(edge_fusion, "GROUP_VALUES_MAX", 5)
    reads: list[list[str]] = []

    def fetch(ids: list[str]) -> dict[str, StoredPoint]:
        reads.append(ids)
        return {i: StoredPoint(i, {"concept_uri": f"c{i}"} if i != "x" else {}) for i in ids}

    cache: dict = {}
    got = edge_fusion.fill_group_values((cache, fetch), "concept_uri", [["1", "2"], ["2", "3", "x"]])
    assert got == {"1": "c1", "2": "c2", "3": "c3", "x": None} and reads == [["1", "2", "3", "x"]]
    assert edge_fusion.fill_group_values((cache, fetch), "concept_uri", [["3", "1"]]) == {"3": "c3", "1": "c1"}
    assert len(reads) == 1  # every value came from the cache
    got = edge_fusion.fill_group_values((cache, fetch), "concept_uri", [["4", "5", "1"]])
    assert got == {"4": "c4", "5": "c5", "1": "c1"} and reads[-1] == ["4", "5"]
    assert set(cache) == {"4", "5"}  # 4 + 2 would pass 5: emptied first, then the new ones kept
