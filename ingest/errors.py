"""The ingest worker's error types: bad releases, a second writer, a collection that failed its checks,
a store without the room to write.

All derive from :class:`search.errors.SearchError`, so the command-line tools print them as one line and
exit with status 2.
"""

from __future__ import annotations

from pathlib import Path

from search.errors import SearchError

__all__ = ["EscoFormatError", "IngestLocked", "VerificationFailed", "InsufficientSpace"]


class EscoFormatError(SearchError):
    """An ESCO release that cannot be read; names the file, and the line and column where they apply."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class IngestLocked(SearchError):
    """Another ingest is writing to the same alias (its pid, host and start time are named)."""


class VerificationFailed(SearchError):
    """A freshly written collection did not pass its checks; the alias was not switched."""


class InsufficientSpace(SearchError, OSError):
    """The store's filesystem lacks the room the new collection needs, or ran out of it while writing.

    Also an ``OSError`` (``errno`` ENOSPC). The alias still serves the previous collection; free space and run
    the same command again to resume.
    """

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message
