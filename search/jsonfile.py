"""JSON files that a crash never leaves half written: the one writer of the project's small state files.

:func:`write_json_atomic` writes to a temporary file in the same folder, flushes and fsyncs it, renames it over
the target (atomic on POSIX and Windows) and fsyncs the folder, so that after a crash or power loss the file
holds either the old or the new document, never a torn one. :func:`read_json` reads one back, or returns a
default when the file is missing or damaged.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["read_json", "write_json_atomic"]


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON (UTF-8) to ``path`` atomically and durably; creates the parent folder.

    Raises:
        OSError: the folder cannot be created or written (nothing is left behind then).
        TypeError: ``obj`` is not JSON serialisable (the target is untouched).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:  # mkstemp makes 0600 files: keep the old file's mode, else the usual 0644 (others may read it)
            mode = target.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON document in ``path``, or ``default`` when the file is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
