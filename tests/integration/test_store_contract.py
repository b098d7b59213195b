"""One contract for every Store: each answers exactly what a brute-force numpy search answers.

Parametrized over ``edge`` (qdrant-edge in-process), ``local`` (qdrant-client local mode) and ``server``
(a Qdrant server through the ``qdrant_server_url`` fixture; marked ``qdrant_server``). The collections
are small enough to stay below the indexing threshold, so every store searches exactly and the answers
must agree with numpy to 1e-4, filters, thresholds and grouping included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from search.errors import CollectionNotFound, SearchError
from search.schema import KEYWORD_FIELDS
from search.stores import CollectionParams, Condition, Filter, StoredPoint, Store
from store_testdata import (
    Dataset,
    assert_same_hits,
    brute_force,
    brute_force_groups,
    make_dataset,
    queries,
)

OCC = "http://data.europa.eu/esco/occupation/o{}"
GRP = "http://data.europa.eu/esco/isced-f/g{}"

FILTERS: dict[str, Filter | None] = {
    "none": None,
    "keyword": Filter((Condition("language", ("en",)),)),
    "keyword-several-values": Filter((Condition("reuse_level", ("transversal", "cross-sector")),)),
    "list-common-value": Filter((Condition("occupations", (OCC.format(0),)),)),
    "list-rare-value": Filter((Condition("occupations", (OCC.format(149),)),)),
    "list-several-values": Filter((Condition("skill_groups", (GRP.format(1), GRP.format(2), GRP.format(3))),)),
    "collections": Filter((Condition("collections", ("green",)),)),
    "several-conditions": Filter(
        (
            Condition("language", ("de",)),
            Condition("skill_type", ("knowledge",)),
            Condition("occupations", (OCC.format(0), OCC.format(1), OCC.format(2), OCC.format(5))),
        )
    ),
    "no-match": Filter((Condition("occupations", ("http://example.org/none",)),)),
}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset()


def _open(kind: str, request: pytest.FixtureRequest, tmp: object) -> Store:
    if kind == "edge":
        from search.stores.edge import EdgeStore

        return EdgeStore(tmp)  # type: ignore[arg-type]
    if kind == "local":
        # Skip only when the third-party client is missing; a broken project module fails the test.
        pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
        from search.stores.qdrant import QdrantClientStore

        return QdrantClientStore.local(tmp)  # type: ignore[arg-type]
    try:
        url = request.getfixturevalue("qdrant_server_url")
    except pytest.FixtureLookupError:
        pytest.skip("no qdrant_server_url fixture (tests/conftest.py provides it where Docker exists)")
    from search.settings import SearchSettings
    from search.stores.qdrant import QdrantClientStore

    return QdrantClientStore.connect(SearchSettings(qdrant_url=url))


class _Ctx:
    """A store with the dataset loaded in collection ``name``; ``new_name()`` for scratch collections."""

    def __init__(self, store: Store, name: str, prefix: str) -> None:
        self.store = store
        self.name = name
        self.prefix = prefix
        self.created = [name]

    def new_name(self, tag: str) -> str:
        name = f"{self.prefix}_{tag}"
        self.created.append(name)
        return name


PARAMS = CollectionParams(vector_size=48)


@pytest.fixture(scope="module", params=["edge", "local", pytest.param("server", marks=pytest.mark.qdrant_server)])
def ctx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data: Dataset) -> Iterator[_Ctx]:
    kind = request.param
    store = _open(kind, request, tmp_path_factory.mktemp(f"store-{kind}"))
    prefix = f"contract_{uuid.uuid4().hex[:8]}"
    c = _Ctx(store, f"{prefix}_main", prefix)
    store.create_collection(c.name, PARAMS, {"model": "test", "vector_size": 48}, KEYWORD_FIELDS)
    for i in range(0, len(data.points), 250):
        store.upsert(c.name, data.points[i : i + 250])
    store.optimize(c.name)
    yield c
    for alias in [a for a, t in store.list_aliases().items() if t in c.created]:
        store.delete_alias(alias)
    for name in c.created:
        if name in store.list_collections():
            store.delete_collection(name)
    store.close()


def _scratch(c: _Ctx, data: Dataset, tag: str, points: list[StoredPoint] | None = None) -> str:
    name = c.new_name(tag)
    c.store.create_collection(name, PARAMS, {"tag": tag}, KEYWORD_FIELDS)
    c.store.upsert(name, points if points is not None else data.points[:60])
    return name


# --- search ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("exact", [False, True])
def test_every_filter_kind_equals_brute_force(ctx: _Ctx, data: Dataset, exact: bool) -> None:
    qs = queries(data, 6)
    for label, flt in FILTERS.items():
        got = ctx.store.search(ctx.name, qs.tolist(), filter=flt, limit=10, exact=exact)
        assert len(got) == len(qs)
        for q, hits in zip(qs, got):
            assert_same_hits(hits, brute_force(data, q, flt, 10), what=label)
    # the filter cases are not vacuous
    assert 0 < len(brute_force(data, qs[0], FILTERS["list-rare-value"], 100)) < 10
    assert brute_force(data, qs[0], FILTERS["no-match"]) == []


def test_hits_carry_payload_and_optionally_vectors(ctx: _Ctx, data: Dataset) -> None:
    by_id = {p.id: p for p in data.points}
    q = queries(data, 1)[0]
    plain, = ctx.store.search(ctx.name, [q.tolist()], limit=3)
    assert all(h.vector is None for h in plain)
    withv, = ctx.store.search(ctx.name, [q.tolist()], limit=3, with_vectors=True)
    for h in withv:
        assert h.payload == by_id[h.id].payload
        assert np.allclose(np.asarray(h.vector) / np.linalg.norm(h.vector), by_id[h.id].vector, atol=1e-5)


def test_score_threshold_drops_below_keeps_above(ctx: _Ctx, data: Dataset) -> None:
    for q in queries(data, 4, seed=3):
        ranked = brute_force(data, q, None, 12)
        cut = (ranked[4][1] + ranked[5][1]) / 2  # exactly five points at or above
        hits, = ctx.store.search(ctx.name, [q.tolist()], limit=10, score_threshold=cut)
        assert_same_hits(hits, ranked[:5], what="threshold")
        # with a filter and a limit above the hits: every filtered point at or above, none below
        flt = FILTERS["keyword"]
        cut_f = (ranked[10][1] + ranked[11][1]) / 2
        want = brute_force(data, q, flt, 50, threshold=cut_f)
        assert 0 < len(want) < 12
        hits_f, = ctx.store.search(ctx.name, [q.tolist()], filter=flt, limit=50, score_threshold=cut_f)
        assert_same_hits(hits_f, want, what="threshold+filter")
        assert ctx.store.search(ctx.name, [q.tolist()], score_threshold=0.9999)[0] == []


def test_limit(ctx: _Ctx, data: Dataset) -> None:
    q = queries(data, 1, seed=5)[0]
    for limit in (1, 3, 25):
        hits, = ctx.store.search(ctx.name, [q.tolist()], limit=limit)
        assert_same_hits(hits, brute_force(data, q, None, limit), what=f"limit {limit}")
    rare = FILTERS["list-rare-value"]
    everything = brute_force(data, q, rare, len(data.points))
    hits, = ctx.store.search(ctx.name, [q.tolist()], filter=rare, limit=1000)
    assert_same_hits(hits, everything, what="limit above the matches")


def test_batch_equals_singles(ctx: _Ctx, data: Dataset) -> None:
    qs = queries(data, 8, seed=9).tolist()
    for flt in (None, FILTERS["several-conditions"], FILTERS["list-several-values"]):
        batch = ctx.store.search(ctx.name, qs, filter=flt, limit=7)
        singles = [ctx.store.search(ctx.name, [q], filter=flt, limit=7)[0] for q in qs]
        assert [[h.id for h in b] for b in batch] == [[h.id for h in s] for s in singles]
        for b, s in zip(batch, singles):
            assert np.allclose([h.score for h in b], [h.score for h in s], atol=1e-5)
    assert ctx.store.search(ctx.name, [], limit=3) == []


@pytest.mark.parametrize("group_by", [None, "concept_uri"])
def test_with_payload_selects_the_fields_that_come_back(ctx: _Ctx, data: Dataset, group_by: str | None) -> None:
    by_id = {p.id: p for p in data.points}
    qs = queries(data, 2, seed=5).tolist()
    full = ctx.store.search(ctx.name, qs, limit=5, group_by=group_by)
    keys = ["preferred_label", "concept_uri"]
    picked = ctx.store.search(ctx.name, qs, limit=5, group_by=group_by, with_payload=keys)
    none = ctx.store.search(ctx.name, qs, limit=5, group_by=group_by, with_payload=False)
    for f, p, n in zip(full, picked, none):
        assert [h.id for h in p] == [h.id for h in f] == [h.id for h in n] and f
        for h in p:
            assert h.payload == {k: by_id[h.id].payload[k] for k in keys}
        assert all(h.payload == {} for h in n)
        assert all(h.payload == by_id[h.id].payload for h in f)


@pytest.mark.parametrize(
    "group_by,flt,limit",
    [
        ("concept_uri", None, 10),
        ("concept_uri", None, 40),
        ("concept_uri", "keyword", 10),
        ("concept_uri", "list-several-values", 15),
        ("skill_type", None, 10),  # fewer groups than the limit: every group, found by a deep search
        ("skill_groups", None, 12),  # a list field: a point is in each of its groups
    ],
)
def test_group_by_equals_brute_force_grouping(
    ctx: _Ctx, data: Dataset, group_by: str, flt: str | None, limit: int
) -> None:
    f = FILTERS[flt] if flt else None
    qs = queries(data, 4, seed=21)
    got = ctx.store.search(ctx.name, qs.tolist(), filter=f, limit=limit, group_by=group_by)
    for q, hits in zip(qs, got):
        want = brute_force_groups(data, q, group_by, f, limit)
        assert_same_hits(hits, want, what=f"group_by {group_by}")
    # with a threshold too
    q = qs[0]
    cut = brute_force(data, q, f, 30)[-1][1]
    hits, = ctx.store.search(ctx.name, [q.tolist()], filter=f, limit=limit, group_by=group_by, score_threshold=cut)
    assert_same_hits(hits, brute_force_groups(data, q, group_by, f, limit, threshold=cut), what="group+threshold")


# --- points ----------------------------------------------------------------------------------------


def test_count_with_filter(ctx: _Ctx, data: Dataset) -> None:
    assert ctx.store.count(ctx.name) == len(data.points)
    for label, flt in FILTERS.items():
        want = sum(1 for p in data.points if (not flt) or flt.matches(p.payload))
        assert ctx.store.count(ctx.name, flt) == want, label


def test_retrieve_returns_what_was_written(ctx: _Ctx, data: Dataset) -> None:
    picked = [data.points[i] for i in (0, 5, 77, 1001)]
    missing = str(uuid.uuid4())
    got = ctx.store.retrieve(ctx.name, [p.id for p in picked] + [missing], with_vectors=True)
    by_id = {p.id: p for p in got}
    assert set(by_id) == {p.id for p in picked}
    for p in picked:
        assert by_id[p.id].payload == p.payload
        v = np.asarray(by_id[p.id].vector)
        assert np.allclose(v / np.linalg.norm(v), p.vector, atol=1e-5)
    assert all(p.vector is None for p in ctx.store.retrieve(ctx.name, [picked[0].id]))
    assert ctx.store.retrieve(ctx.name, []) == []


def test_scroll_returns_every_point_in_id_order(ctx: _Ctx, data: Dataset) -> None:
    pts = list(ctx.store.scroll(ctx.name, with_vectors=True, batch_size=333))
    assert len(pts) == len(data.points)
    assert [p.id for p in pts] == sorted(p.id for p in data.points)
    by_id = {p.id: p for p in data.points}
    for p in pts[::50]:
        assert p.payload == by_id[p.id].payload
        assert np.allclose(np.asarray(p.vector) / np.linalg.norm(p.vector), by_id[p.id].vector, atol=1e-5)
    some = list(ctx.store.scroll(ctx.name, with_payload=["language", "concept_uri"], batch_size=500))
    assert {tuple(sorted(p.payload)) for p in some} == {("concept_uri", "language")}
    assert all(p.vector is None for p in some)


def test_payload_value_types_roundtrip(ctx: _Ctx, data: Dataset) -> None:
    payload = {"s": "ü€", "l": ["a", "b"], "e": [], "i": 3, "f": 0.25, "t": True, "n": None, "language": "en"}
    name = _scratch(ctx, data, "types", [StoredPoint(data.points[0].id, payload, data.points[0].vector)])
    got, = ctx.store.retrieve(name, [data.points[0].id])
    assert got.payload == payload


# --- collections, aliases, metadata ----------------------------------------------------------------


def test_aliases_switch(ctx: _Ctx, data: Dataset) -> None:
    s = ctx.store
    a = _scratch(ctx, data, "alias_a", data.points[:40])
    b = _scratch(ctx, data, "alias_b", data.points[40:80])
    alias = f"{ctx.prefix}_live"
    assert s.resolve_alias(alias) is None and not s.collection_exists(alias)
    s.switch_alias(alias, a)
    assert s.resolve_alias(alias) == a and s.list_aliases()[alias] == a and s.collection_exists(alias)
    q = data.points[45].vector
    assert {h.id for h in s.search(alias, [q], limit=40)[0]} == {p.id for p in data.points[:40]}
    assert s.get_metadata(alias) == {"tag": "alias_a"}
    assert s.count(alias) == 40
    s.switch_alias(alias, b)
    assert s.resolve_alias(alias) == b
    assert s.search(alias, [q], limit=1)[0][0].id == data.points[45].id
    assert s.get_metadata(alias) == {"tag": "alias_b"}
    with pytest.raises(SearchError):
        s.delete_collection(b)  # served by the alias
    assert b in s.list_collections()
    s.delete_alias(alias)
    assert s.resolve_alias(alias) is None and alias not in s.list_aliases()
    with pytest.raises(CollectionNotFound):
        s.search(alias, [q])
    s.delete_collection(a)
    assert a not in s.list_collections() and not s.collection_exists(a)


def test_metadata_roundtrip_and_merge(ctx: _Ctx, data: Dataset) -> None:
    s = ctx.store
    meta = {"esco_version": "v1.1.1", "languages": ["en", "de"], "model": {"id": "m", "dim": 48}, "note": "ünï"}
    name = ctx.new_name("meta")
    s.create_collection(name, PARAMS, meta, KEYWORD_FIELDS)
    assert s.get_metadata(name) == meta
    s.update_metadata(name, {"point_count": 60, "note": "changed"})
    assert s.get_metadata(name) == {**meta, "point_count": 60, "note": "changed"}
    assert s.collection_exists(name) and name in s.list_collections()
    with pytest.raises(CollectionNotFound):
        s.get_metadata(f"{ctx.prefix}_missing")
    with pytest.raises(CollectionNotFound):
        s.search(f"{ctx.prefix}_missing", [data.points[0].vector])
    with pytest.raises(CollectionNotFound):
        s.count(f"{ctx.prefix}_missing")


def test_payload_indexes_hold_the_keyword_fields(ctx: _Ctx) -> None:
    if ctx.store.kind == "local":
        pytest.skip("qdrant-client's local mode has no payload indexes (it scans)")
    idx = ctx.store.payload_indexes(ctx.name)
    for f in KEYWORD_FIELDS:
        assert idx.get(f) == "keyword", (f, idx)


# --- edge and local agree ----------------------------------------------------------------------------


def test_edge_and_local_agree(tmp_path: object, data: Dataset) -> None:
    """The same data in both embedded engines: same hits, same scores, filters and grouping included."""
    from search.stores.edge import EdgeStore

    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    from search.stores.qdrant import QdrantClientStore
    import pathlib

    root = pathlib.Path(str(tmp_path))
    edge, local = EdgeStore(root / "edge"), QdrantClientStore.local(root / "local")
    try:
        pts = data.points[:600]
        for s in (edge, local):
            s.create_collection("same", PARAMS, {}, KEYWORD_FIELDS)
            s.upsert("same", pts)
            s.optimize("same")
        rng = np.random.default_rng(4)
        qs = queries(data, 6, seed=31).tolist()
        for label, flt in FILTERS.items():
            for group_by in (None, "concept_uri"):
                limit = int(rng.integers(1, 30))
                e = edge.search("same", qs, filter=flt, limit=limit, group_by=group_by)
                lo = local.search("same", qs, filter=flt, limit=limit, group_by=group_by)
                for he, hl in zip(e, lo):
                    assert_same_hits(he, [(h.id, h.score) for h in hl], what=f"{label} group_by={group_by}")
        for label, flt in FILTERS.items():
            assert edge.count("same", flt) == local.count("same", flt), label
        assert [p.id for p in edge.scroll("same")] == [p.id for p in local.scroll("same")]
    finally:
        edge.close()
        local.close()


def test_qdrant_delete_puts_back_an_alias_switched_onto_the_collection_meanwhile(tmp_path: object, data: Dataset) -> None:
    """Qdrant drops a collection's aliases with it: an alias another process switches onto the collection
    between the check and the delete is restored to its previous collection, and the delete says so."""
    import pathlib

    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    from search.stores.qdrant import QdrantClientStore

    s = QdrantClientStore.local(pathlib.Path(str(tmp_path)) / "local")
    try:
        for name in ("old", "doomed"):
            s.create_collection(name, PARAMS, {"tag": name}, KEYWORD_FIELDS)
            s.upsert(name, data.points[:10])
        s.switch_alias("live", "old")
        real_delete = s.client.delete_collection

        def racing_delete(*args, **kwargs):
            s.switch_alias("live", "doomed")  # another process, between the check and the delete
            return real_delete(*args, **kwargs)

        s.client.delete_collection = racing_delete  # type: ignore[method-assign]
        with pytest.raises(SearchError, match="'live' \\(back on 'old'\\)"):
            s.delete_collection("doomed")
        assert "doomed" not in s.list_collections()
        assert s.resolve_alias("live") == "old"  # the served alias survived
        assert s.count("live") == 10
        s.client.delete_collection = real_delete  # type: ignore[method-assign]
        with pytest.raises(SearchError, match="served by alias 'live'"):
            s.delete_collection("old")
    finally:
        s.close()
