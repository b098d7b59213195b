"""Disk space for an embedded store's new collection: estimated before the build, checked before every write.

The embedded stores write through memory maps: a write into a page the filesystem cannot back ends the
process with SIGBUS, no exception, no message. So the worker refuses to start a build the filesystem
cannot hold (:func:`check`), checks again before each upsert request with a margin (:class:`SpaceGuard`),
turns ENOSPC into :class:`~ingest.errors.InsufficientSpace`, and, as the last resort for what another
process fills meanwhile, ``esco-ingest`` prints one line for a SIGBUS (:func:`sigbus_message`).

Sizes (``benchmarks/bench_disk.py``, the real v1.1.1 English release, qdrant-edge 0.9; docs/edge-store.md):
a dense point takes 4 bytes per dimension plus about 1.13 times its payload's JSON (3,360 B on average
there): 5,345 B at 384 dimensions, 6,881 B at 768. A hybrid point (passage, pref, 7.17 label rows on
average, BM25 terms; first 3,000 skills) 19,635 B at 384 dimensions (dense there: 5,480 B): each further
row costs its 4 bytes per dimension and ~64 B. :func:`point_bytes` rounds all of that up (20,108 B and
6,011 B for those two).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from ingest.errors import InsufficientSpace

__all__ = ["MIB", "point_bytes", "collection_bytes", "free_bytes", "check", "SpaceGuard", "sigbus_message", "is_no_space"]

MIB = 1024 * 1024
PAYLOAD_FACTOR = 1.25  # measured 1.13 on the real release
POINT_OVERHEAD = 256  # ids, offsets, version and bitmask entries per point (rounded up)
FIXED_BYTES = 8 * MIB  # a new collection's files and the page-granular growth of its memory maps
WRITE_MARGIN = 8 * MIB  # kept free beyond each request's own estimate


def point_bytes(dim: int, payload_json_bytes: int, quantization: str = "none", rows: int = 1,
                sparse_terms: int = 0) -> int:
    """What one point takes on disk in the embedded store (from above): ``rows`` dense rows of ``dim``
    (a hybrid point: passage, pref and its label rows) and ``sparse_terms`` BM25 terms (id and weight)."""
    vec = rows * (4 * dim + (dim if quantization == "int8" else 0)) + 128 * (rows - 1) + 48 * sparse_terms
    return vec + math.ceil(PAYLOAD_FACTOR * payload_json_bytes) + POINT_OVERHEAD


def collection_bytes(todo: Iterable[int], every: Iterable[int] = (), *, indexes: bool = False,
                     hnsw_m: int = 16) -> int:
    """The space a build still needs: the points still to write (``todo``: each one's :func:`point_bytes`),
    and, when ``optimize`` will index the whole collection (``every``; ``indexes``:
    :meth:`~search.stores.CollectionParams.indexes`), what it needs: it writes the indexed segment beside the
    plain one before it deletes that (the data once more), plus the HNSW graph where one is built (``hnsw_m``
    links of 4 bytes both ways on the bottom level, a quarter more above; 0: none)."""
    need = sum(todo) + FIXED_BYTES
    sizes = list(every)
    if indexes:
        need += sum(sizes) + math.ceil(len(sizes) * hnsw_m * 2 * 4 * 1.25)
    return need


def _existing(path: Path) -> Path:
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``path`` (or its nearest parent)."""
    st = os.statvfs(_existing(path))
    return st.f_bavail * st.f_frsize


def _fmt(n: int) -> str:
    return f"{n / MIB:,.1f} MiB"


def check(where: Path, needed: int, what: str) -> None:
    """Raise :class:`InsufficientSpace` when the filesystem of ``where`` has less than ``needed`` bytes free."""
    free = free_bytes(where)
    if free < needed:
        raise InsufficientSpace(
            errno.ENOSPC,
            f"not enough disk space {what}: needs about {_fmt(needed)}, {_fmt(free)} free on the filesystem of "
            f"{_existing(where)}; the alias still serves the previous collection. Free space there (or set "
            f"ESCO_QDRANT_PATH to a larger disk) and run the same command again: it resumes",
        )


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full (ENOSPC, EDQUOT, or the engine's message for them)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


class SpaceGuard:
    """Checks the filesystem of an embedded store (``where``; None for a server: nothing to check) before
    each write: the write's own estimate plus :data:`WRITE_MARGIN` must be free."""

    def __init__(self, where: Path | None) -> None:
        self.where = where

    def before_write(self, needed: int, what: str = "to go on writing the new collection") -> None:
        """Refuse a write the filesystem cannot hold (:class:`InsufficientSpace`), before it is made."""
        if self.where is not None:
            check(self.where, needed + WRITE_MARGIN, what)

    def converted(self, exc: BaseException) -> BaseException:
        """``exc`` as :class:`InsufficientSpace` when it says the disk is full, else ``exc`` itself."""
        if self.where is None or isinstance(exc, InsufficientSpace) or not is_no_space(exc):
            return exc
        where = self.where
        return InsufficientSpace(
            errno.ENOSPC,
            f"no space left on the device while writing the new collection ({exc}); {_fmt(free_bytes(where))} "
            f"free on the filesystem of {_existing(where)}; the alias still serves the previous collection. Free "
            f"space there and run the same command again: it resumes",
        )


_SIGBUS_KEEP: list[object] = []  # C callbacks must outlive every call that may run them


@contextlib.contextmanager
def sigbus_message(where: Path, prog: str = "esco-ingest", exit_code: int = 2) -> Iterator[bool]:
    """While in the block, a SIGBUS (a memory-mapped write the full filesystem of ``where`` cannot back)
    ends this process with one line on stderr and ``exit_code`` instead of a bare "Bus error"; the
    previous handler is put back after. Yields False where it cannot be installed (no libc).

    Python's own signal handlers cannot do this: they run later, in the main thread, while the faulting
    write is retried forever. This handler is a C callback (ctypes) that writes the line with ``write(2)``
    and leaves with ``_exit``.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not hasattr(signal, "SIGBUS"):
        yield False
        return
    libc = ctypes.CDLL(name, use_errno=True)
    line = (
        f"{prog}: error: the disk of {where} filled up during a memory-mapped write (SIGBUS); the alias still "
        f"serves the previous collection. Free space there and run the same command again: it resumes\n"
    ).encode()
    buf = ctypes.create_string_buffer(line, len(line))
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture without a descriptor
        stderr_fd = 2

    handler_t = ctypes.CFUNCTYPE(None, ctypes.c_int)

    def on_sigbus(_signum: int) -> None:  # pragma: no cover - runs in the dying process
        libc.write(stderr_fd, buf, len(line))
        libc._exit(exit_code)

    cb = handler_t(on_sigbus)
    _SIGBUS_KEEP.append((cb, buf, libc))
    set_handler = libc.signal
    set_handler.restype = ctypes.c_void_p
    set_handler.argtypes = [ctypes.c_int, ctypes.c_void_p]
    previous = set_handler(signal.SIGBUS, ctypes.cast(cb, ctypes.c_void_p))
    try:
        yield True
    finally:
        set_handler(signal.SIGBUS, previous)
