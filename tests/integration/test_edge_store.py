"""What is particular to the edge store: its files, its locks between processes, reopening, HNSW recall."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from search.errors import CollectionNotFound, SearchError, StoreLocked
from search.schema import KEYWORD_FIELDS
from search.stores import CollectionParams, Condition, Filter, Store, StoredPoint, open_store
from search.stores.edge import EdgeStore
from store_testdata import Dataset, assert_same_hits, brute_force, make_dataset, queries

PARAMS = CollectionParams(vector_size=48)
# Few indexed fields where the test is not about them: each index costs the engine a flush on create.
FIELDS = ("concept_uri", "language", "skill_type", "occupations")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset(concepts=300)


@pytest.fixture
def store(tmp_path: Path) -> EdgeStore:
    s = EdgeStore(tmp_path / "store")
    yield s
    s.close()


def _make(s: EdgeStore, name: str, data: Dataset, n: int = 100, meta: dict | None = None) -> None:
    s.create_collection(name, PARAMS, meta or {"name": name}, FIELDS)
    s.upsert(name, data.points[:n])


def test_is_a_store_and_open_store_picks_it(tmp_path: Path) -> None:
    from search.settings import SearchSettings

    s = open_store(SearchSettings(qdrant_path=tmp_path / "q", embedded_engine="edge"))
    try:
        assert isinstance(s, EdgeStore) and isinstance(s, Store) and s.kind == "edge"
        assert str(tmp_path / "q") in s.describe()
    finally:
        s.close()


# --- files -------------------------------------------------------------------------------------------


def test_layout_on_disk(store: EdgeStore, data: Dataset) -> None:
    _make(store, "skills_a", data, meta={"esco_version": "v1.1.1"})
    folder = store.root / "skills_a"
    assert (folder / "shard" / "edge_config.json").is_file() and (folder / "shard" / "segments").is_dir()
    assert (folder / "shard.lock").is_file()
    meta = json.loads((folder / "collection.json").read_text())
    assert meta["metadata"] == {"esco_version": "v1.1.1"}
    assert meta["params"]["vector_size"] == 48 and meta["keyword_fields"] == list(FIELDS)
    assert store.collection_params("skills_a") == PARAMS
    assert not (store.root / "aliases.json").exists()
    store.switch_alias("skills", "skills_a")
    assert json.loads((store.root / "aliases.json").read_text()) == {"skills": "skills_a"}
    assert store.list_collections() == ["skills_a"]
    # no temporary files left behind
    assert sorted(p.name for p in store.root.iterdir()) == [".store.lock", "aliases.json", "skills_a"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_alias_file_is_replaced_atomically(store: EdgeStore, data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    _make(store, "a", data, 10)
    _make(store, "b", data, 10)
    store.switch_alias("live", "a")
    path = store.root / "aliases.json"
    ino = path.stat().st_ino
    store.switch_alias("live", "b")
    assert path.stat().st_ino != ino  # a new file renamed over the old one, never rewritten in place
    assert json.loads(path.read_text()) == {"live": "b"}

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.switch_alias("live", "a")
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"live": "b"}  # the old file, intact
    assert sorted(p.name for p in store.root.iterdir()) == [".store.lock", "a", "aliases.json", "b"]
    assert store.resolve_alias("live") == "b"


@pytest.mark.parametrize("bad", ["", "a/b", "../x", ".hidden", "a b", "x" * 256, "é", "aliases.json"])
def test_invalid_names_are_refused(store: EdgeStore, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid collection name"):
        store.create_collection(bad, PARAMS, {}, KEYWORD_FIELDS)
    with pytest.raises(ValueError, match="invalid alias name"):
        store.switch_alias(bad, "whatever")


def test_names_clash_and_missing_collections(store: EdgeStore, data: Dataset) -> None:
    _make(store, "c1", data, 5)
    with pytest.raises(ValueError, match="already exists"):
        store.create_collection("c1", PARAMS, {}, KEYWORD_FIELDS)
    with pytest.raises(ValueError, match="collection of that name"):
        store.switch_alias("c1", "c1")
    store.switch_alias("al", "c1")
    with pytest.raises(ValueError, match="alias of that name"):
        store.create_collection("al", PARAMS, {}, KEYWORD_FIELDS)
    with pytest.raises(CollectionNotFound) as err:
        store.get_metadata("nope")
    assert err.value.name == "nope" and str(store.root) in str(err.value)
    with pytest.raises(CollectionNotFound):
        store.switch_alias("al", "nope")
    store.delete_collection("nope")  # missing: nothing to do


def test_wrong_vector_sizes_are_refused(store: EdgeStore, data: Dataset) -> None:
    _make(store, "v", data, 5)
    with pytest.raises(ValueError, match="size 3"):
        store.search("v", [[1.0, 2.0, 3.0]])
    p = data.points[0]
    with pytest.raises(ValueError, match="vector of size 2"):
        store.upsert("v", [type(p)(p.id, p.payload, [1.0, 0.0])])
    with pytest.raises(ValueError, match="UUID"):
        store.retrieve("v", ["not-a-uuid"])


def test_crashed_create_is_rebuilt(store: EdgeStore, data: Dataset) -> None:
    (store.root / "half").mkdir()
    (store.root / "half" / "shard").mkdir()  # a create that died before collection.json
    assert store.list_collections() == [] and not store.collection_exists("half")
    _make(store, "half", data, 20)
    assert store.count("half") == 20


def test_delete_collection(store: EdgeStore, data: Dataset) -> None:
    _make(store, "d", data, 10)
    store.switch_alias("live", "d")
    with pytest.raises(SearchError, match="served by alias 'live'"):
        store.delete_collection("d")
    store.delete_alias("live")
    store.delete_collection("d")
    assert not (store.root / "d").exists() and store.list_collections() == []
    assert not [p for p in store.root.iterdir() if p.name.startswith(".deleted")]
    _make(store, "d", data, 3)  # the name can be used again
    assert store.count("d") == 3


def test_reopen_after_close_keeps_everything(tmp_path: Path, data: Dataset) -> None:
    root = tmp_path / "store"
    s = EdgeStore(root)
    _make(s, "keep", data, 200, meta={"model": "m"})
    s.update_metadata("keep", {"point_count": 200})
    p0 = data.points[0]
    s.upsert("keep", [StoredPoint(p0.id, {**p0.payload, "extra": True}, p0.vector)])  # overwritten
    s.upsert("keep", [data.points[200]])  # added
    s.switch_alias("live", "keep")
    q = queries(data, 3).tolist()
    before = s.search("live", q, limit=5, filter=Filter((Condition("language", ("en",)),)))
    s.close()
    with pytest.raises(RuntimeError):
        s.count("keep")
    s2 = EdgeStore(root)
    try:
        assert s2.list_collections() == ["keep"] and s2.list_aliases() == {"live": "keep"}
        assert s2.get_metadata("live") == {"model": "m", "point_count": 200}
        assert s2.count("live") == 201
        assert s2.retrieve("keep", [data.points[0].id])[0].payload["extra"] is True
        assert [p.id for p in s2.retrieve("keep", [data.points[200].id])] == [data.points[200].id]
        after = s2.search("live", q, limit=5, filter=Filter((Condition("language", ("en",)),)))
        assert [[(h.id, round(h.score, 5)) for h in r] for r in after] == [
            [(h.id, round(h.score, 5)) for h in r] for r in before
        ]
        assert s2.payload_indexes("keep") == {f: "keyword" for f in sorted(FIELDS)}
    finally:
        s2.close()


def test_concurrent_threads(store: EdgeStore, data: Dataset) -> None:
    _make(store, "t", data, 600)
    store.switch_alias("live", "t")
    qs = queries(data, 40).tolist()
    want = store.search("live", qs, limit=5)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(i, len(qs), 4):
                assert [h.id for h in store.search("live", [qs[j]], limit=5)[0]] == [h.id for h in want[j]]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    store.upsert("t", data.points[600:])  # writes while searching
    for t in threads:
        t.join()
    assert not errors
    assert store.count("t") == len(data.points)


# --- locks between processes ------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from search.stores.edge import EdgeStore
    from search.errors import SearchError
    sys.path.insert(0, sys.argv[2])
    from store_testdata import make_dataset
    data = make_dataset(concepts=300)
    s = EdgeStore(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "count":
                out = s.count(arg)
            elif cmd == "search":
                out = [h.id for h in s.search(arg, [data.points[0].vector], limit=3)[0]]
            elif cmd == "upsert":
                s.upsert(arg, data.points[:10]); out = "done"
            elif cmd == "delete":
                s.delete_collection(arg); out = "done"
            elif cmd == "close":
                s.close(); s = EdgeStore(sys.argv[1]); out = "done"
            else:
                break
            print(json.dumps(["ok", out]), flush=True)
        except SearchError as exc:
            print(json.dumps([type(exc).__name__, str(exc)]), flush=True)
    """
)


class Child:
    """Another process with an EdgeStore on the same root, driven line by line."""

    def __init__(self, root: Path) -> None:
        here = str(Path(__file__).parent)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root), here],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def __call__(self, cmd: str) -> list:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the child process died"
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def child(store: EdgeStore):
    children: list[Child] = []

    def spawn() -> Child:
        c = Child(store.root)
        children.append(c)
        return c

    yield spawn
    for c in children:
        c.stop()


def test_a_writer_locks_out_other_processes(store: EdgeStore, data: Dataset, child) -> None:
    _make(store, "w", data, 50)  # this process now holds the write lock
    other = child()
    kind, msg = other("count w")
    assert kind == "StoreLocked"
    assert f"process {os.getpid()}" in msg and str(store.root / "w") in msg and "ESCO_QDRANT_URL" in msg
    assert other("upsert w")[0] == "StoreLocked"
    assert other("delete w")[0] == "StoreLocked"
    store.close()  # releases the lock
    assert other("count w") == ["ok", 50]


def test_readers_share_a_collection_and_keep_writers_out(store: EdgeStore, data: Dataset, child) -> None:
    _make(store, "r", data, 50)
    store.close()
    r1, r2 = child(), child()
    assert r1("count r") == ["ok", 50] and r2("count r") == ["ok", 50]  # two reader processes at once
    s = EdgeStore(store.root)
    try:
        assert s.count("r") == 50  # and a third, in this process
        with pytest.raises(StoreLocked, match="open for reading by process") as err:
            s.upsert("r", data.points[50:60])
        assert str(r1.proc.pid) in str(err.value) and str(r2.proc.pid) in str(err.value)
        with pytest.raises(StoreLocked):
            s.optimize("r")
        assert s.count("r") == 50  # the failed upgrade kept this process's read lock
        r1("close")
        r2("close")
        s.upsert("r", data.points[50:60])  # no other reader left
        assert s.count("r") == 60
        assert r1("count r")[0] == "StoreLocked"
    finally:
        s.close()


def test_a_killed_process_releases_its_lock(store: EdgeStore, data: Dataset, child) -> None:
    _make(store, "k", data, 10)
    store.close()
    other = child()
    assert other("upsert k") == ["ok", "done"]  # the child holds the write lock
    again = EdgeStore(store.root)
    with pytest.raises(StoreLocked):
        again.count("k")
    again.close()
    other.proc.send_signal(signal.SIGKILL)
    other.proc.wait(timeout=10)
    again = EdgeStore(store.root)
    try:
        assert again.count("k") == 10  # the kernel dropped the dead process's lock
    finally:
        again.close()


def test_release_switch_readers_follow_the_alias(store: EdgeStore, data: Dataset, child) -> None:
    """Services read A through the alias while the worker builds B in the same root; then the alias flips."""
    _make(store, "rel_a", data, 100)
    store.switch_alias("skills", "rel_a")
    store.close()
    service = child()
    assert service("count skills") == ["ok", 100]

    worker = EdgeStore(store.root)
    try:
        _make(worker, "rel_b", data, 300)  # written while the service reads rel_a
        worker.optimize("rel_b")
        assert service("count skills") == ["ok", 100]
        with pytest.raises(StoreLocked):
            worker.upsert("rel_a", data.points[:1])  # the service reads it
        worker.switch_alias("skills", "rel_b")  # publishes rel_b: flushed, write lock given up
        assert service("count skills") == ["ok", 300]  # the service follows the alias, no restart
        assert service("search skills")[0] == "ok"
        worker.delete_collection("rel_a")  # the service let go of rel_a when the alias moved
        assert worker.list_collections() == ["rel_b"]
        with pytest.raises(StoreLocked):
            worker.upsert("rel_b", data.points[:1])  # published and read: no more writes here
    finally:
        worker.close()


def test_alias_changes_are_seen_by_another_store(tmp_path: Path, data: Dataset) -> None:
    a, b = EdgeStore(tmp_path), EdgeStore(tmp_path)
    try:
        _make(a, "x1", data, 10)
        _make(a, "x2", data, 20)
        a.switch_alias("live", "x1")
        a.close()
        a = EdgeStore(tmp_path)
        assert b.count("live") == 10
        for i in range(6):  # quick successive flips with names of one length
            a.switch_alias("live", "x2" if i % 2 == 0 else "x1")
            assert b.resolve_alias("live") == ("x2" if i % 2 == 0 else "x1")
        assert b.count("live") == 10
    finally:
        a.close()
        b.close()


# --- HNSW ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantization,on_disk,full_scan",
    [
        ("none", False, None),  # the defaults: every filter here is below the full-scan threshold
        ("int8", True, 500),  # broad filters walk the graph (ACORN below 40% selectivity)
    ],
)
def test_optimize_builds_hnsw_with_high_recall(tmp_path: Path, quantization: str, on_disk: bool,
                                               full_scan: int | None) -> None:
    ds = make_dataset(concepts=2000, dim=64, seed=3, occupations=400)
    params = CollectionParams(
        vector_size=64, indexing_threshold=1000, quantization=quantization, on_disk_vectors=on_disk,  # type: ignore[arg-type]
        extra={"full_scan_threshold": full_scan} if full_scan else {},
    )
    s = EdgeStore(tmp_path)
    try:
        s.create_collection("h", params, {}, KEYWORD_FIELDS)
        for i in range(0, len(ds.points), 1000):
            s.upsert("h", ds.points[i : i + 1000])
        assert s.index_info("h")["indexed_vectors"] == 0
        s.optimize("h")
        info = s.index_info("h")
        assert info["points"] == 4000 and info["indexed_vectors"] >= 4000
        occ = "http://data.europa.eu/esco/occupation/o{}"
        filters = [
            None,
            Filter((Condition("language", ("en",)),)),  # 50%
            Filter((Condition("skill_type", ("knowledge",)), Condition("language", ("de",)))),  # 25%
            Filter((Condition("occupations", (occ.format(0),)),)),  # 35%
            Filter((Condition("occupations", (occ.format(60), occ.format(61))),)),  # 1.6% of the points
            Filter((Condition("occupations", (occ.format(200),)),)),  # 0.2% of the points
        ]
        qs = queries(ds, 30, seed=8)
        found = total = 0
        for flt in filters:
            approx = s.search("h", qs.tolist(), filter=flt, limit=10)
            exact = s.search("h", qs.tolist(), filter=flt, limit=10, exact=True)
            for q, a, e in zip(qs, approx, exact):
                truth = brute_force(ds, q, flt, 10)
                assert_same_hits(e, truth, what="exact")  # int8 too: exact search ignores the quantized copy
                for h in a:  # rescored: the scores are the true cosines
                    assert abs(h.score - float(ds.vectors[ds.index(h.id)] @ (q / np.linalg.norm(q)))) < 1e-3
                found += len({h.id for h in a} & {p for p, _ in truth})
                total += len(truth)
        assert found / total >= 0.99, f"recall@10 {found / total:.4f}"
    finally:
        s.close()


def test_a_small_int8_collection_gets_its_int8_copies_and_no_graph(tmp_path: Path) -> None:
    """A collection its writer knows is small (``expected_points`` at most the indexing threshold) gets no HNSW
    graph but its int8 copies at ``optimize``; its searches scan them, rescored: the same hits as the exact
    search, with the true cosines. Unknown size and the same points: nothing is indexed (the old rule)."""
    ds = make_dataset(concepts=600, dim=64, seed=5, occupations=100)
    s = EdgeStore(tmp_path)
    try:
        for name, expected in (("small", len(ds.points)), ("unknown", None)):
            params = CollectionParams(vector_size=64, quantization="int8", expected_points=expected)
            s.create_collection(name, params, {}, KEYWORD_FIELDS)
            s.upsert(name, ds.points)
            s.optimize(name)
        assert CollectionParams(vector_size=64, quantization="int8", expected_points=len(ds.points)).graph_m() == 0
        assert s.index_info("small")["indexed_vectors"] >= len(ds.points)  # int8 copies built (no graph: m=0)
        assert s.index_info("unknown")["indexed_vectors"] == 0
        assert s.collection_params("small").expected_points == len(ds.points)  # kept in collection.json
        qs = queries(ds, 40, seed=9)
        for flt in (None, Filter((Condition("language", ("en",)),))):
            for q, got in zip(qs, s.search("small", qs.tolist(), filter=flt, limit=10)):
                assert_same_hits(got, brute_force(ds, q, flt, 10), tol=1e-3, what="int8 scan, rescored")
    finally:
        s.close()


def test_grouped_search_of_a_reader_reads_each_group_value_once_and_a_write_forgets_them(tmp_path: Path) -> None:
    """A process that reads a collection keeps each point's group value (nobody writes it meanwhile): its grouped
    searches equal the brute-force grouping, keep every value they read, and once this process writes the
    collection the values are read again (a point moved to another group is grouped by its new value)."""
    from dataclasses import replace

    from store_testdata import brute_force_groups

    ds = make_dataset(concepts=150, dim=32, seed=11, occupations=30)
    s = EdgeStore(tmp_path)
    s.create_collection("g", CollectionParams(vector_size=32), {}, KEYWORD_FIELDS)
    s.upsert("g", ds.points)
    s.close()
    s = EdgeStore(tmp_path)
    try:
        qs = queries(ds, 12, seed=4)
        for flt in (None, Filter((Condition("language", ("de",)),))):
            got = s.search("g", qs.tolist(), filter=flt, limit=8, group_by="concept_uri")
            for q, hits in zip(qs, got):
                assert_same_hits(hits, brute_force_groups(ds, q, "concept_uri", flt, 8), what="grouped, cached values")
        with s._pool.use("g") as h:
            cached = dict(h.group_values["concept_uri"])
        assert cached and all(v == ds.points[ds.index(i)].payload["concept_uri"] for i, v in cached.items())
        s.search("g", qs.tolist(), limit=8, group_by="concept_uri")  # everything it needs is cached now
        with s._pool.use("g") as h:
            assert h.group_values["concept_uri"] == cached
        # this process writes the collection: the values it kept are dropped. The best point moves into the
        # concept of the second best group: grouped anew, that concept is one group, led by the moved point
        first, second = s.search("g", [qs[0].tolist()], limit=2, group_by="concept_uri")[0]
        moved = ds.points[ds.index(first.id)]
        new_uri = second.payload["concept_uri"]
        now = replace(moved, payload={**moved.payload, "concept_uri": new_uri})
        s.upsert("g", [now])
        after = Dataset(ds.vectors, [now if p.id == moved.id else p for p in ds.points])
        want = brute_force_groups(after, qs[0], "concept_uri", None, 8)
        assert want[0][0] == moved.id and second.id not in {pid for pid, _ in want}
        assert_same_hits(s.search("g", [qs[0].tolist()], limit=8, group_by="concept_uri")[0], want, what="written")
        s.switch_alias("served", "g")  # published: read-only again, values cached anew from here
        with s._pool.use("g") as h:
            assert h.lock.mode == "r"
        assert_same_hits(s.search("g", [qs[0].tolist()], limit=8, group_by="concept_uri")[0], want, what="published")
    finally:
        s.close()


def test_the_engine_version_is_recorded_and_a_newer_series_refused(tmp_path: Path, data: Dataset) -> None:
    """collection.json names the qdrant-edge-py that wrote the shard; an older engine refuses a newer one's."""
    import json as _json
    from importlib.metadata import version

    from search.stores.edge_files import META_FILE

    root = tmp_path / "store"
    s = EdgeStore(root)
    _make(s, "v", data, 20)
    s.close()
    meta_path = root / "v" / META_FILE
    meta = _json.loads(meta_path.read_text())
    assert meta["engine"] == {"package": "qdrant-edge-py", "version": version("qdrant-edge-py")}
    s = EdgeStore(root)
    assert s.engine_info("v")["version"] == version("qdrant-edge-py")
    assert s.count("v") == 20
    s.close()
    # A shard written by a newer series (0.9 -> 0.10, or 1.x -> 2.x): refused, naming both versions.
    major, minor = (int(x) for x in version("qdrant-edge-py").split(".")[:2])
    newer = f"{major}.{minor + 1}.0" if major == 0 else f"{major + 1}.0.0"
    meta["engine"]["version"] = newer
    meta_path.write_text(_json.dumps(meta))
    s = EdgeStore(root)
    try:
        with pytest.raises(SearchError, match=f"written by qdrant-edge-py {newer}.*Upgrade it"):
            s.count("v")
        # An older writer's shard (or one without a record) opens, and a write records this engine.
        meta["engine"]["version"] = "0.1.0"
        meta_path.write_text(_json.dumps(meta))
        assert s.count("v") == 20
        s.upsert("v", data.points[20:21])
        assert _json.loads(meta_path.read_text())["engine"]["version"] == version("qdrant-edge-py")
    finally:
        s.close()


_FULL_DISK_SCRIPT = r"""
import os, subprocess, sys, uuid
import numpy as np
from search.errors import SearchError
from search.schema import KEYWORD_FIELDS
from search.stores import CollectionParams, StoredPoint
from search.stores.edge import EdgeStore

root = sys.argv[1]
rng = np.random.default_rng(0)
s = EdgeStore(root + "/store")
pts = [StoredPoint(str(uuid.uuid4()), {"concept_uri": f"u{i}", "language": "en"}, rng.standard_normal(64).tolist())
       for i in range(2000)]
s.create_collection("c1", CollectionParams(vector_size=64), {"vector_size": 64}, KEYWORD_FIELDS)
s.upsert("c1", pts)
s.optimize("c1")
s.switch_alias("live", "c1")
s.close()
reader = EdgeStore(root + "/store")  # a service that opened the collection before the disk filled
assert reader.count("live") == 2000
with open(root + "/filler", "wb") as fh:
    try:
        while True:
            fh.write(b"\0" * 65536)
    except OSError:
        pass
assert os.statvfs(root).f_bavail == 0
for _ in range(20):
    assert len(reader.search("live", [rng.standard_normal(64).tolist()], limit=10)[0]) == 10
reader.close()
print("OPEN-READER-SERVED", flush=True)
late = EdgeStore(root + "/store")  # a new process on the full disk: a clear error, not SIGBUS
try:
    late.count("live")
except SearchError as exc:
    print("LATE-READER-REFUSED", exc, flush=True)
late.close()
"""


def test_a_full_disk_crashes_no_reader(tmp_path: Path) -> None:
    """On a full filesystem (a tmpfs the test mounts in its own namespace): a reader that has the collection
    open keeps serving it and closes cleanly; a reader that opens it then gets one clear line, no SIGBUS."""
    import shutil

    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) to mount a small tmpfs in a user namespace")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mnt}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()[:200]}")
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=160m tmpfs {mnt} && exec {sys.executable} {script} {mnt}"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, f"rc {proc.returncode} (-7/135: SIGBUS)\n{proc.stdout}\n{proc.stderr[-2000:]}"
    assert "OPEN-READER-SERVED" in proc.stdout
    refused = [line for line in proc.stdout.splitlines() if line.startswith("LATE-READER-REFUSED")]
    assert refused and "MiB free" in refused[0] and "c1" in refused[0] and "SIGBUS" in refused[0]
