"""Text cleaning, one rule for what is stored and what is searched.

Passages and labels are cleaned by the ingest and queries by the searcher with the same function, so a
query holding a soft hyphen or a bidi mark ("Bäcker\u00adei") meets the stored form ("Bäckerei").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_text", "clean_text_flagged"]


# Invisible characters: control characters that are not whitespace, format characters (zero-width
# space/joiners, bidi marks and embeddings, soft hyphen, BOM, word joiner, tags ...) and surrogates.
# The Arabic/Syriac "prepended concatenation marks" (visible format characters) are kept.
_INVISIBLE_RANGES = (
    (0x00, 0x08), (0x0E, 0x1B), (0x7F, 0x84), (0x86, 0x9F), (0xAD, 0xAD), (0x61C, 0x61C),
    (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xD800, 0xDFFF), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_INVISIBLE = re.compile(
    "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in _INVISIBLE_RANGES) + "]"
)
_WHITESPACE = re.compile(r"\s+")


def clean_text_flagged(s: str) -> tuple[str, bool]:
    """:func:`clean_text`, and whether invisible characters were removed."""
    if not s:
        return "", False
    t = _INVISIBLE.sub("", s)
    removed = len(t) != len(s)
    if not t.isascii():
        t = unicodedata.normalize("NFC", t)
    return _WHITESPACE.sub(" ", t).strip(" "), removed


def clean_text(s: str) -> str:
    """NFC-normalise, drop invisible characters, collapse whitespace runs to one space, strip.

    Invisible: zero-width characters, BOM, soft hyphen, bidi marks, control characters (other than
    whitespace, which collapses to a space) and the other Unicode format characters. Idempotent.
    """
    return clean_text_flagged(s)[0]
