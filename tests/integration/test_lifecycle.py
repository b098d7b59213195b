"""Release lifecycle: versioned collections behind an alias, incremental and resumable re-ingest,
one writer, rollback. Real subprocesses where a process dies or two run at once."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.build import run
from ingest.collections import list_collections, rollback
from ingest.errors import IngestLocked
from ingest.ownership import IngestLock
from search import SkillSearch
from search.errors import SearchError, StoreLocked
from search.schema import Field, point_id
from search.stores import open_store
from tests.helpers import MINI_V11, MINI_V12, ROOT, FailingEncoder, all_points, fixtures

WORKER = r"""
import json, os, signal, sys, time
from pathlib import Path
from ingest.build import run
from ingest.settings import IngestSettings

cfg = json.loads(sys.argv[1])
settings = IngestSettings(_env_file=None, **cfg["settings"])

def after_batch(written):
    if cfg.get("kill_after") and written >= cfg["kill_after"]:
        os.kill(os.getpid(), signal.SIGKILL)          # kill -9, mid-ingest
    if cfg.get("pause_after") and written >= cfg["pause_after"]:
        Path(cfg["paused_flag"]).touch()
        while not Path(cfg["go_flag"]).exists():
            time.sleep(0.05)

s = run(settings, cfg["releases"], cfg["languages"], progress=False, after_batch=after_batch)
print(json.dumps(s.to_dict()))
"""


def _worker(settings, releases, languages=("en", "de"), **extra) -> subprocess.Popen:
    cfg = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.model_dump(
            include={"qdrant_path", "embedded_engine", "collection", "lock_dir", "model", "batch_size",
                     "upsert_batch_size", "keep_collections", "precision"}).items()},
        "releases": [str(r) for r in releases],
        "languages": list(languages),
        **extra,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _edit_release(src: Path, dest: Path, edit) -> Path:
    """A copy of the v1.2-layout mini release with ``edit(lang, rows)`` applied to skills_<lang>.csv."""
    shutil.copytree(src, dest)
    for lang in ("en", "de"):
        path = dest / f"skills_{lang}.csv"
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
            header = list(rows[0].keys())
        rows = edit(lang, rows)
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, header)
            w.writeheader()
            w.writerows(rows)
    return dest


def _snapshot(settings) -> dict:
    store = open_store(settings)
    try:
        return all_points(store, settings.collection)
    finally:
        store.close()


def _same_collection(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for pid in a:
        assert a[pid][0] == b[pid][0]
        assert np.allclose(a[pid][1], b[pid][1], atol=1e-6), pid


def test_killed_worker_resumes_and_ends_with_the_clean_runs_collection(embedded_kind, tmp_path, encoder):
    from tests.conftest import make_settings

    clean = make_settings(tmp_path / "clean", embedded_kind, model=encoder.model_name)
    run(clean, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)

    crashed = make_settings(tmp_path / "crash", embedded_kind, model=encoder.model_name)
    proc = _worker(crashed, [MINI_V11], kill_after=16)
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    store = open_store(crashed)
    try:
        assert store.resolve_alias(crashed.collection) is None  # nothing served from a partial build
        (partial,) = store.list_collections()
        assert store.get_metadata(partial)["status"] == "building"
        assert 16 <= store.count(partial) < 40
    finally:
        store.close()

    proc = _worker(crashed, [MINI_V11])  # the same command again
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["collection"] == partial
    assert summary["resumed_points"] >= 16
    assert summary["encoded"] == 40 - summary["resumed_points"]  # nothing written is encoded again
    _same_collection(_snapshot(clean), _snapshot(crashed))


def test_search_answers_from_the_old_collection_during_an_ingest(tmp_path, encoder):
    """Edge engine: a service process reads collection A while a worker process writes B, then follows
    the alias to B."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    first = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    changed = _edit_release(MINI_V12, tmp_path / "esco_v1.2.10_csv", lambda lang, rows: [
        {**r, "description": r["description"] + " Updated."} for r in rows])
    searcher = SkillSearch(settings, encoder=encoder, metadata_ttl=0.0)
    try:
        before = searcher.search("bake bread", limit=1)[0]
        proc = _worker(settings, [changed], ["en"], pause_after=8,
                       paused_flag=str(tmp_path / "paused"), go_flag=str(tmp_path / "go"))
        deadline = time.time() + 300
        while not (tmp_path / "paused").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline
            time.sleep(0.1)
        during = searcher.search("bake bread", limit=1)[0]  # the worker holds B half-written
        assert during == before and during.esco_version == "v1.1.9"
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        second = json.loads(out.strip().splitlines()[-1])
        after = searcher.search("bake bread", limit=1)[0]
        assert after.esco_version == "v1.2.10" and after.description.endswith("Updated.")
        assert searcher.store.resolve_alias(settings.collection) == second["collection"] != first.collection
    finally:
        searcher.close()


def test_local_mode_names_the_one_process_limit(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "local", model=encoder.model_name)
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False, limit=2)
    store = open_store(settings)
    try:
        proc = _worker(settings, [MINI_V11], ["en"])
        _, err = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert "StoreLocked" in err and "one process at a time" in err and "ESCO_QDRANT_URL" in err
    finally:
        store.close()


def test_upgrade_encodes_only_what_changed(embedded_kind, tmp_path, encoder):
    from tests.conftest import make_settings

    fx = fixtures()
    settings = make_settings(tmp_path, embedded_kind, model=encoder.model_name)
    first = run(settings, [MINI_V12], ["en", "de"], encoder=encoder, progress=False)
    assert first.encoded == 40

    def edit(lang, rows):
        out = []
        for r in rows:
            if r["conceptUri"] == fx.SKILL["bicycles"]:
                r = {**r, "description": r["description"] + (" Also e-bikes." if lang == "en" else " Auch E-Bikes.")}
            if r["conceptUri"] == fx.SKILL["forklift"]:
                r = {**r, "status": "obsolete"}  # no longer released: removed
            if r["conceptUri"] == fx.SKILL["research"]:
                r = {**r, "altLabels": r["altLabels"] + "\nnew alternative label"}  # payload only
            out.append(r)
        new = dict(out[0])
        new.update(conceptUri="http://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001",
                   preferredLabel="repair cameras" if lang == "en" else "Kameras reparieren",
                   description="Fix broken cameras." if lang == "en" else "Defekte Kameras reparieren.",
                   altLabels="", status="released")
        return out + [new]

    rel = _edit_release(MINI_V12, tmp_path / "esco_v1.2.10_csv", edit)  # the version comes from the name
    second = run(settings, [rel], ["en", "de"], encoder=encoder, progress=False)
    assert (second.unchanged, second.changed, second.new, second.removed) == (36, 2, 2, 2)
    assert second.encoded == 4 and second.reused == 36  # the alt-label change needed no new vector
    points = _snapshot(settings)
    assert len(points) == 40
    assert point_id(fx.SKILL["forklift"], "en") not in points
    research = points[point_id(fx.SKILL["research"], "en")][0]
    assert research[Field.ALT_LABELS][-1] == "new alternative label"
    assert research[Field.ESCO_VERSION] == "v1.2.10"


def test_payload_only_update_keeps_vectors(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False)
    before = _snapshot(settings)
    rel = tmp_path / "rel"
    shutil.copytree(MINI_V12, rel)
    occ = rel / "occupations_en.csv"
    occ.write_text(occ.read_text(encoding="utf-8").replace("baker", "master baker"), encoding="utf-8")
    s = run(settings, [rel], ["en"], encoder=encoder, progress=False, esco_version="v1.2.9")
    assert s.encoded == 0 and s.unchanged == 20
    after = _snapshot(settings)
    bread = point_id(fixtures().SKILL["bread"], "en")
    assert after[bread][0][Field.ESSENTIAL_FOR_LABELS] == ["master baker"]
    assert np.array_equal(after[bread][1], before[bread][1])


def test_rollback_list_and_retention(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name, keep_collections=2)
    names = []
    for version in ("v1.2.9", "v1.2.10", "v1.2.11"):
        names.append(run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, esco_version=version,
                         limit=3).collection)
    store = open_store(settings)
    try:
        rows = list_collections(store, settings.collection)
        assert [r["collection"] for r in rows] == names[:0:-1]  # the oldest was pruned
        assert rows[0]["served_by"] == settings.collection and rows[0]["esco_version"] == "v1.2.11"
        old, new = rollback(store, settings.collection, lock_folder=settings.lock_folder)
        assert (old, new) == (names[2], names[1])
        assert store.resolve_alias(settings.collection) == names[1]
        with pytest.raises(SearchError):
            rollback(store, settings.collection, to="no_such_collection", lock_folder=settings.lock_folder)
    finally:
        store.close()


def test_one_writer_per_alias_and_a_dead_holder_frees_the_lock(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from ingest.ownership import IngestLock; from pathlib import Path;"
         "held = IngestLock(Path(sys.argv[1]), 'esco_skills').acquire(); print('held', flush=True); time.sleep(600)",
         str(settings.lock_folder)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(IngestLocked, match=f"pid {holder.pid}"):
            run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False, limit=2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    s = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False, limit=2)
    assert s.points_written == {"en": 2}
    with IngestLock(settings.lock_folder, "esco_skills"), pytest.raises(IngestLocked):
        IngestLock(settings.lock_folder, "esco_skills").acquire()


def test_a_failed_ingest_serves_nothing_partial(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    first = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    changed = _edit_release(MINI_V12, tmp_path / "esco_v1.2.10_csv", lambda lang, rows: [
        {**r, "description": r["description"] + " Changed."} for r in rows])
    with pytest.raises(RuntimeError, match="the model broke"):
        run(settings, [changed], ["en"], encoder=FailingEncoder(encoder, 2), progress=False)
    store = open_store(settings)
    try:
        assert store.resolve_alias(settings.collection) == first.collection
        assert store.count(settings.collection) == 20
    finally:
        store.close()
    # and the next run resumes the unfinished build
    s = run(settings, [changed], ["en"], encoder=encoder, progress=False)
    assert s.resumed_points >= 8 and s.encoded == 20 - s.resumed_points


def test_store_locked_error_is_clear_for_a_second_local_process(tmp_path):
    from search.stores.qdrant import QdrantClientStore

    a = QdrantClientStore.local(tmp_path / "s")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from search.stores.qdrant import QdrantClientStore as Q; "
             "Q.local(sys.argv[1])", str(tmp_path / "s")],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "StoreLocked" in proc.stderr
    finally:
        a.close()
    assert StoreLocked.__mro__[1] is SearchError


def test_calibrated_threshold_carries_over_to_the_next_release_of_the_same_model(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3)
    store = open_store(settings)
    store.update_metadata(settings.collection, {"score_threshold": 0.42, "calibration": {"f1": 0.7}})
    store.close()
    second = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3, esco_version="v1.2.10")
    store = open_store(settings)
    try:
        meta = store.get_metadata(settings.collection)
        assert store.resolve_alias(settings.collection) == second.collection
        assert meta["score_threshold"] == 0.42
        assert meta["calibration"]["carried_from"] == second.previous_collection
    finally:
        store.close()
