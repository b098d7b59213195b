"""Build ownership: one writer per alias, on one host and across hosts.

* On one host, :class:`IngestLock` (a ``filelock`` lock on ``<lock folder>/<alias>.lock``) keeps a second
  worker out; the kernel releases it when the holder exits, however it exits (SIGKILL included). Who holds
  it is recorded beside it (``<alias>.lock.json``) for the message.
* Across hosts that share a Qdrant server, a collection being built records its owner (host, pid) and a
  heartbeat in its metadata. :class:`Heartbeat` refreshes it from a background thread for the whole
  build (reuse, encode, optimize, verify alike). :func:`owner_alive` decides whether another worker still
  owns a build: on the same host by its pid (EPERM from ``kill(pid, 0)`` means it lives), on another host
  by a heartbeat younger than ``ESCO_LOCK_STALE_SECONDS``.
* :func:`claim_builds` looks at every unfinished build of the alias: refuses when a live worker owns one,
  returns the one of the same input (to resume it), and names the abandoned ones of other inputs whose
  heartbeat is stale (to prune them).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from filelock import FileLock, Timeout

from ingest.errors import IngestLocked
from search.stores import Store

logger = logging.getLogger(__name__)

__all__ = [
    "STATUS_BUILDING",
    "STATUS_COMPLETE",
    "IngestLock",
    "Heartbeat",
    "owner_alive",
    "owner_fields",
    "heartbeat_fields",
    "heartbeat_interval",
    "Claim",
    "claim_builds",
]

STATUS_BUILDING = "building"
STATUS_COMPLETE = "complete"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class IngestLock:
    """Hold ``<folder>/<alias>.lock`` exclusively while an ingest (or a rollback) runs.

    Raises:
        IngestLocked: another live process holds it (its pid, host and start time are named).
    """

    def __init__(self, folder: Path, alias: str) -> None:
        self.path = Path(folder) / f"{alias}.lock"
        self.info_path = Path(folder) / f"{alias}.lock.json"
        self.alias = alias
        self._lock = FileLock(str(self.path), timeout=0, thread_local=False)

    def acquire(self) -> IngestLock:
        """Take the lock now or raise :class:`IngestLocked` naming the holder (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise IngestLocked(
                f"another ingest is writing to alias {self.alias!r}{self._holder()}; wait for it to finish. "
                f"The lock ({self.path}) is released automatically when that process ends"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        tmp = self.info_path.with_name(f"{self.info_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, self.info_path)
        return self

    def _holder(self) -> str:
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8") or "{}")
        except (ValueError, OSError):
            return ""
        return f" (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._lock.is_locked:
            try:
                self.info_path.unlink()
            except OSError:
                pass
            self._lock.release(force=True)

    def __enter__(self) -> IngestLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def owner_fields() -> dict[str, Any]:
    """The metadata that names this process as a build's owner, with a fresh heartbeat."""
    return {"owner_host": socket.gethostname(), "owner_pid": os.getpid(), **heartbeat_fields()}


def heartbeat_fields() -> dict[str, Any]:
    """A fresh heartbeat (readable and as a timestamp)."""
    return {"heartbeat": _now(), "heartbeat_ts": time.time()}


def heartbeat_interval(stale_seconds: float) -> float:
    """How often a build beats: well within the stale time (five beats per stale period, at most 30 s)."""
    return max(0.05, min(30.0, stale_seconds / 5))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # EPERM: the process exists, it belongs to another user
        return True
    return True


def owner_alive(meta: dict[str, Any], stale_seconds: float) -> bool:
    """Whether another live worker owns the build that ``meta`` describes.

    This process never counts (its own earlier, failed run in the same process is resumable). On this
    host the owner's pid decides; on another host a heartbeat younger than ``stale_seconds``.
    """
    host, pid = meta.get("owner_host"), meta.get("owner_pid")
    if host == socket.gethostname():
        return isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)
    return heartbeat_age(meta) < stale_seconds


def heartbeat_age(meta: dict[str, Any]) -> float:
    """Seconds since the build's last heartbeat (infinite when it never sent one)."""
    try:
        return time.time() - float(meta["heartbeat_ts"])
    except (KeyError, TypeError, ValueError):
        return float("inf")


@dataclass
class Claim:
    """What :func:`claim_builds` found: the build to resume, and abandoned builds of other inputs."""

    resume: str | None = None
    abandoned: list[str] = field(default_factory=list)


def claim_builds(store: Store, alias: str, build_key: str | None, stale_seconds: float) -> Claim:
    """Look at every unfinished build of ``alias``.

    Raises:
        IngestLocked: a live worker (see :func:`owner_alive`) builds one of them.

    Returns the build of the same input (``build_key``) to resume, and the builds of other inputs whose
    owner is gone and whose last heartbeat is older than ``stale_seconds`` (kept until then, so that the
    same command run again soon still resumes them).
    """
    claim = Claim()
    for name in store.list_collections():
        if not name.startswith(f"{alias}__"):
            continue
        meta = store.get_metadata(name)
        if meta.get("status") != STATUS_BUILDING:
            continue
        if owner_alive(meta, stale_seconds):
            raise IngestLocked(
                f"collection {name!r} is being built for alias {alias!r} by pid {meta.get('owner_pid')} on "
                f"{meta.get('owner_host')} (last heartbeat {meta.get('heartbeat')}); wait for it to finish"
            )
        if build_key is not None and meta.get("build_key") == build_key:
            claim.resume = name
        elif heartbeat_age(meta) >= stale_seconds:
            claim.abandoned.append(name)
    return claim


class Heartbeat:
    """Refresh a build's heartbeat every ``interval`` seconds from a background thread, while in the block.

    A failed beat is logged and tried again at the next one: the build itself goes on.
    """

    def __init__(self, store: Store, collection: str, interval: float) -> None:
        self.store, self.collection, self.interval = store, collection, interval
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.update_metadata(self.collection, heartbeat_fields())
                self.beats += 1
            except Exception as exc:  # noqa: BLE001 - a missed beat must not kill the build
                logger.warning("heartbeat of %s failed (%s); trying again in %.0f s", self.collection, exc,
                               self.interval)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.collection}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
