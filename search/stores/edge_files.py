"""The edge store's files on disk: names, the per-collection lock, the alias file and the engine version.

Layout of the store folder (``root``)::

    root/
      aliases.json              {"alias": "collection", ...}; replaced atomically (temp + fsync + rename)
      .store.lock               flock around read-modify-write of aliases.json and collection.json
      <collection>/
        collection.json         params, keyword fields, metadata and the engine version that wrote the shard;
                                written last on create, replaced atomically
        shard.lock              flock: shared while a process reads the shard, exclusive while one writes it
        shard/                  the EdgeShard (segments, edge_config.json; no WAL: every write is flushed)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.jsonfile import write_json_atomic as _write_json_atomic

__all__ = [
    "FORMAT_VERSION", "ALIASES_FILE", "META_FILE", "SHARD_DIR", "SHARD_LOCK", "STORE_LOCK", "NAME",
    "ENGINE_PACKAGE", "engine_version", "engine_record", "check_engine", "check_name", "check_id",
    "needs_engine_update", "fsync_dir", "write_json_atomic", "READER_RESERVE", "reader_space", "check_reader_space", "lock_holders", "ShardLock", "Busy", "AliasFile", "store_lock",
]

FORMAT_VERSION = 1
ALIASES_FILE = "aliases.json"
META_FILE = "collection.json"
SHARD_DIR = "shard"
SHARD_LOCK = "shard.lock"
STORE_LOCK = ".store.lock"
ENGINE_PACKAGE = "qdrant-edge-py"

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")

def check_name(name: str, what: str = "collection") -> str:
    """``name`` if it is a valid collection or alias name; else ValueError naming the rule."""
    if not isinstance(name, str) or not NAME.match(name) or name == ALIASES_FILE:
        raise ValueError(
            f"invalid {what} name {name!r}: use 1 to 255 letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit"
        )
    return name


def check_id(point_id: str) -> str:
    """The canonical form of a UUID point id; ValueError for anything else."""
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ValueError(f"invalid point id {point_id!r}: point ids are UUID strings") from None


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part (fsynced)."""
    _write_json_atomic(path, data, indent=2, sort_keys=True)


@contextlib.contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Exclusive lock of the root for read-modify-write of the small JSON files (blocks briefly)."""
    fd = os.open(root / STORE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the engine version ----------------------------------------------------------------------------
@functools.cache
def engine_version() -> str:
    """The installed qdrant-edge-py version (``"unknown"`` when its metadata is missing)."""
    try:
        return importlib_metadata.version(ENGINE_PACKAGE)
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def engine_record() -> dict[str, str]:
    """What collection.json records of the engine that writes the shard."""
    return {"package": ENGINE_PACKAGE, "version": engine_version()}


def _series(version: str) -> tuple[int, ...] | None:
    """The compatibility series of a version: the major, or (0, minor) below 1.0 (semver's rule for 0.x)."""
    m = re.match(r"^(\d+)\.(\d+)", version or "")
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    return (major,) if major > 0 else (0, minor)


def check_engine(meta: Mapping[str, Any], folder: Path) -> None:
    """Refuse a collection whose shard a newer, incompatible qdrant-edge-py wrote.

    Collections without a record (written before the version was recorded) are accepted. A shard of an
    older series is opened (the engine reads its older formats); a writer then records its own version.

    Raises:
        SearchError: the shard was written by a newer series than the installed engine, naming both and
            the fix.
    """
    rec = meta.get("engine") or {}
    written = str(rec.get("version") or "")
    have = engine_version()
    ws, hs = _series(written), _series(have)
    if ws is None or hs is None or ws <= hs:
        return
    raise SearchError(
        f"collection {folder.name!r} in {folder.parent} was written by {ENGINE_PACKAGE} {written}; this "
        f"environment has {have}, which cannot read a newer engine's files safely. Upgrade it "
        f"(pip install '{ENGINE_PACKAGE}=={written}') or re-ingest the collection with this version"
    )


def needs_engine_update(meta: Mapping[str, Any]) -> bool:
    """True when a writer of this environment should record its (newer or first) engine version."""
    written = str((meta.get("engine") or {}).get("version") or "")
    return written != engine_version()


# --- free space for readers ------------------------------------------------------------------------
#: What a reader's open writes, at most: the engine rewrites its small config files (edge_config.json,
#: segment.json: temp file + rename) when it loads a shard.
READER_RESERVE = 1 << 20
#: Filesystems on which touching a hole of a shared writable memory map allocates a page, even to read it.
_ALLOCATE_ON_FAULT = {"tmpfs", "ramfs", "shm", "hugetlbfs"}


def _fs_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/self/mountinfo; "" where unknown)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        real = os.path.realpath(path)
    except OSError:
        return ""
    best, kind = "", ""
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or not rparts:
            continue
        mount = parts[4].replace("\\040", " ")
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, rparts[0]
    return kind


def _holes(folder: Path) -> int:
    """Bytes of the files under ``folder`` that are not allocated on disk (sparse files' holes)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:
                continue
            total += max(0, st.st_size - st.st_blocks * 512)
    return total


def reader_space(shard: Path) -> tuple[int, int, str]:
    """(free bytes, bytes a reader's open may need, filesystem type) for the shard folder ``shard``.

    qdrant-edge has no read-only open: loading a shard rewrites two small config files and maps the
    segment files writable. On a disk filesystem a reader then needs :data:`READER_RESERVE`; on tmpfs
    and its kin reading a hole of a writable shared map allocates it, so a reader also needs the holes.
    Without that space the engine dies of SIGBUS in the middle of the open.
    """
    st = os.statvfs(shard)
    free = st.f_bavail * st.f_frsize
    kind = _fs_type(shard)
    need = READER_RESERVE + (_holes(shard) if kind in _ALLOCATE_ON_FAULT else 0)
    return free, need, kind


def check_reader_space(shard: Path, name: str) -> None:
    """Refuse (SearchError, one line: needed, free, where) to open a shard whose open could crash the process."""
    free, need, kind = reader_space(shard)
    if free >= need:
        return
    raise SearchError(
        f"cannot open collection {name!r}: the filesystem of {shard} ({kind or 'unknown type'}) has "
        f"{free / 2**20:.1f} MiB free and qdrant-edge needs {need / 2**20:.1f} MiB to open a shard (it has no "
        f"read-only mode: it rewrites its config files and maps the segments writable, and would crash the "
        f"process with SIGBUS). Free space on that filesystem; processes that have the collection open "
        f"already keep serving it"
    )


# --- locks -----------------------------------------------------------------------------------------
def lock_holders(path: Path) -> list[int]:
    """Pids holding a flock on ``path`` (from /proc/locks; empty where that is not available)."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("->" marks a waiter)
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == want and parts[4].isdigit() and int(parts[4]) != os.getpid():
            pids.append(int(parts[4]))
    return sorted(set(pids))


class Busy(Exception):
    """The lock is held by another process in a conflicting mode (``lost``: this process lost its own)."""

    def __init__(self, mode: str, lost: bool = False) -> None:
        self.mode = mode
        self.lost = lost


class ShardLock:
    """An flock on ``<collection>/shard.lock``: ``"r"`` shared, ``"w"`` exclusive, never blocking."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if mode == "w" or exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            self.fd = os.open(path, os.O_RDONLY)  # a read-only store: a shared flock needs no write access
        self.mode = ""
        try:
            self._flock(mode)
            # The folder may have been deleted (and the file unlinked) before we got the lock.
            if os.fstat(self.fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(errno.ENOENT, "collection deleted", str(path))
        except BaseException:
            os.close(self.fd)
            raise

    def _flock(self, mode: str) -> None:
        op = fcntl.LOCK_EX if mode == "w" else fcntl.LOCK_SH
        try:
            fcntl.flock(self.fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(mode) from None
        self.mode = mode

    def upgrade(self) -> None:
        """Shared -> exclusive. Linux drops the shared lock first, so on failure take it back."""
        try:
            self._flock("w")
        except Busy:
            try:
                self._flock("r")
            except Busy:  # a writer slipped in between: this process's view is stale
                self.mode = ""
                raise Busy("w", lost=True) from None
            raise

    def downgrade(self) -> None:
        """Exclusive -> shared (never waits)."""
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.mode = "r"

    def release(self) -> None:
        """Close the file, which drops the flock. Idempotent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.mode = ""


# --- the alias file --------------------------------------------------------------------------------
@dataclass
class AliasFile:
    """``root/aliases.json``, re-read only when it was replaced (one ``stat`` per lookup).

    A replaced file has a new inode and mtime; but file timestamps are coarse (a few ms) and inodes get
    reused, so a copy read less than a second after the file's mtime is not trusted and read again.
    """

    path: Path
    stamp: tuple[int, int, int] | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    trusted: bool = False

    def current(self) -> tuple[dict[str, str], dict[str, str] | None]:
        """The alias map, and the previous map when the file changed since the last call (else None).

        The caller serialises calls (the store's mutex).
        """
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            mtime = st.st_mtime
        except FileNotFoundError:
            stamp, mtime = None, 0.0
        if stamp == self.stamp and self.trusted:
            return self.mapping, None
        read_at = time.time()
        mapping: dict[str, str] = {}
        if stamp is not None:
            with contextlib.suppress(FileNotFoundError):
                mapping = json.loads(self.path.read_text(encoding="utf-8"))
        old = self.mapping
        self.stamp, self.mapping, self.trusted = stamp, mapping, read_at - mtime > 1.0
        return mapping, old

    def write(self, mapping: Mapping[str, str]) -> None:
        """Replace the file (the caller holds :func:`store_lock`)."""
        write_json_atomic(self.path, dict(sorted(mapping.items())))
