"""The project's error types.

Every error a user can cause derives from :class:`SearchError`; the command-line tools catch it and print
one line. Programming mistakes stay plain ``ValueError``/``TypeError``.
"""

from __future__ import annotations

__all__ = [
    "SearchError",
    "ConfigError",
    "InvalidQuery",
    "InvalidFilter",
    "CollectionNotFound",
    "EncoderMismatch",
    "QdrantUnavailable",
    "StoreLocked",
]


class SearchError(Exception):
    """Base class of every error this project raises on bad input or an unusable environment."""


class ConfigError(SearchError):
    """Settings that conflict or name something that does not exist."""


class InvalidQuery(SearchError):
    """A query text, limit or threshold that cannot be searched."""


class InvalidFilter(SearchError):
    """A filter value that is not one of the valid values; the message lists them."""

    def __init__(self, field: str, value: object, valid: list[str] | None = None, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.valid = valid or []
        msg = f"invalid {field}: {value!r}"
        if self.valid:
            msg += f"; valid values are: {', '.join(self.valid)}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class CollectionNotFound(SearchError):
    """The collection (or alias) to search does not exist."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(
            f"collection {name!r} not found in {where}. Ingest a release first, e.g. "
            f"`esco-ingest --release ../shared/esco/v1.1.1 --language en`, or set ESCO_COLLECTION "
            f"to an existing collection (`esco-ingest list` shows them)."
        )


class EncoderMismatch(SearchError):
    """The collection was written with another model, vector size or prompts than the searcher uses."""


class QdrantUnavailable(SearchError):
    """The Qdrant server cannot be reached, or answered with errors after the retries."""


class StoreLocked(SearchError):
    """The embedded store is opened by another process."""
