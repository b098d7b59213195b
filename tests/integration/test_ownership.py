"""Build ownership fails closed: a live owner is never taken over, every phase of a build beats, a rollback
takes the writer's lock, and abandoned builds of other inputs are pruned once stale."""

from __future__ import annotations

import errno
import os
import socket
import time

import pytest

from ingest.build import run
from ingest.collections import list_collections, rollback
from ingest.errors import IngestLocked
from ingest.ownership import IngestLock, heartbeat_age, owner_alive
from search.stores import open_store
from tests.helpers import MINI_V11, MINI_V12, FailingEncoder


def _unfinished(settings, encoder, release=MINI_V11, **kw) -> str:
    """Leave an unfinished build of ``release`` behind; its name."""
    store = open_store(settings)
    try:
        before = set(store.list_collections())
    finally:
        store.close()
    with pytest.raises(RuntimeError, match="the model broke"):
        run(settings, [release], ["en"], encoder=FailingEncoder(encoder, 1), progress=False, **kw)
    store = open_store(settings)
    try:
        (name,) = set(store.list_collections()) - before
        assert store.get_metadata(name)["status"] == "building"
        return name
    finally:
        store.close()


def _set_meta(settings, name: str, **changes) -> None:
    store = open_store(settings)
    try:
        store.update_metadata(name, changes)
    finally:
        store.close()


def test_an_owner_that_kill_cannot_signal_is_alive(tmp_path, encoder, monkeypatch):
    """EPERM from kill(pid, 0): the process exists (another user's); its build is not taken over."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    name = _unfinished(settings, encoder)
    other = 4_000_000  # a pid of another user's worker on this host
    _set_meta(settings, name, owner_pid=other, owner_host=socket.gethostname())
    real_kill = os.kill

    def kill(pid, sig):
        if pid == other:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    with pytest.raises(IngestLocked, match=f"pid {other} on {socket.gethostname()}"):
        run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    monkeypatch.setattr(os, "kill", real_kill)  # the pid is gone: the same command resumes that build
    s = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    assert s.collection == name


class _SlowStore:
    """A store whose reuse reads and optimize take longer than the stale time; records the build's
    heartbeat age at the end of each slow call."""

    def __init__(self, inner, delay: float, stale: float) -> None:
        self._inner, self._delay, self._stale = inner, delay, stale
        self.ages: dict[str, list[float]] = {"retrieve": [], "optimize": []}
        self.alive_elsewhere: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _building(self):
        for name in self._inner.list_collections():
            meta = self._inner.get_metadata(name)
            if meta.get("status") == "building":
                return meta
        return None

    def _slow(self, what):
        time.sleep(self._delay)
        meta = self._building()
        if meta is not None:
            self.ages[what].append(heartbeat_age(meta))
            # as a worker on another host sharing the server sees the build now
            self.alive_elsewhere.append(owner_alive({**meta, "owner_host": "another-host"}, self._stale))

    def retrieve(self, name, ids, with_vectors=False, with_payload=True):
        out = self._inner.retrieve(name, ids, with_vectors, with_payload)
        if with_vectors and len(ids) > 1:  # the reuse phase (the probe reads one point)
            self._slow("retrieve")
        return out

    def optimize(self, name):
        self._inner.optimize(name)
        self._slow("optimize")


def test_every_phase_of_a_long_build_sends_heartbeats(tmp_path, encoder):
    """Reuse and optimize outlast the stale time; another host still sees a live owner throughout."""
    from tests.conftest import make_settings

    stale = 0.6
    settings = make_settings(tmp_path, "edge", model=encoder.model_name, lock_stale_seconds=stale)
    run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False)
    store = _SlowStore(open_store(settings), delay=3 * stale, stale=stale)
    try:
        s = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, esco_version="v1.2.10",
                store=store)
    finally:
        store.close()
    assert s.reused == 20
    assert store.ages["retrieve"] and store.ages["optimize"]
    for phase, ages in store.ages.items():
        assert max(ages) < stale, (phase, ages)
    assert store.alive_elsewhere and all(store.alive_elsewhere)


def test_rollback_takes_the_ingest_lock_and_waits_for_no_live_build(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name, lock_stale_seconds=60)
    first = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3).collection
    second = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3,
                 esco_version="v1.2.10").collection
    store = open_store(settings)
    try:
        with IngestLock(settings.lock_folder, settings.collection), pytest.raises(IngestLocked, match="pid"):
            rollback(store, settings.collection, lock_folder=settings.lock_folder)
        assert store.resolve_alias(settings.collection) == second
    finally:
        store.close()

    # A live build on another host: its switch at the end would undo the rollback, so it is refused.
    name = _unfinished(settings, encoder, MINI_V12, esco_version="v1.2.11", limit=5)  # 2 to encode: fails
    _set_meta(settings, name, owner_host="another-host", heartbeat_ts=time.time())
    store = open_store(settings)
    try:
        with pytest.raises(IngestLocked, match="another-host"):
            rollback(store, settings.collection, lock_folder=settings.lock_folder, stale_seconds=60)
        assert store.resolve_alias(settings.collection) == second
        store.update_metadata(name, {"heartbeat_ts": time.time() - 3600})  # that host died an hour ago
        assert rollback(store, settings.collection, lock_folder=settings.lock_folder, stale_seconds=60) == (
            second, first)
    finally:
        store.close()


def test_abandoned_builds_of_other_inputs_are_pruned_once_stale(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name, lock_stale_seconds=60)
    run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3)
    recent = _unfinished(settings, encoder, MINI_V12, esco_version="v1.2.11", limit=5)  # 2 to encode: fails
    old = _unfinished(settings, encoder, MINI_V12, esco_version="v1.2.10", limit=5)
    _set_meta(settings, old, heartbeat_ts=time.time() - 3600)  # abandoned an hour ago

    s = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=3, esco_version="v1.2.12")
    assert old in s.pruned and recent not in s.pruned
    store = open_store(settings)
    try:
        rows = {r["collection"]: r["status"] for r in list_collections(store, settings.collection)}
    finally:
        store.close()
    assert old not in rows
    assert rows[recent] == "building"  # kept: the same command run again soon resumes it
    again = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False, limit=5, esco_version="v1.2.11")
    assert again.collection == recent
