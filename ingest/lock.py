"""One writer per alias: an advisory file lock that dies with its process.

``fcntl.flock`` is released by the kernel when the holding process exits, however it exits (SIGKILL
included), so a crashed worker never leaves the lock stuck. The file records who holds it, for the message.
Workers on other hosts sharing a server are kept apart by the build's heartbeat in the collection metadata
(see :mod:`ingest.pipeline`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from search.errors import IngestLocked

__all__ = ["IngestLock"]


class IngestLock:
    """Hold ``<folder>/<alias>.lock`` exclusively while an ingest runs.

    Raises:
        IngestLocked: another live process holds it (its pid, host and start time are named).
    """

    def __init__(self, folder: Path, alias: str) -> None:
        self.path = Path(folder) / f"{alias}.lock"
        self._fd: int | None = None

    def acquire(self) -> IngestLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                holder = f" (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"
            except (ValueError, OSError):
                pass
            os.close(fd)
            raise IngestLocked(
                f"another ingest is writing to alias {self.path.stem!r}{holder}; wait for it to finish. "
                f"The lock ({self.path}) is released automatically when that process ends"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> IngestLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
