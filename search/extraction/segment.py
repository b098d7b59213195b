"""Segmentation of a whole text into sentences and list items, each with its character offsets.

Layout first, then sentences: the text is cut into blocks at blank lines, bullets, numbered items
(``1.``, ``2)``, ``a)``, ``iv.``, ``LO3:``) and lines of a list; each block is split into sentences by
`sentencex <https://github.com/wikimedia/sentencex>`_ (Wikimedia's splitter: rules for ~300 languages with
fallback chains, so every ESCO language; nothing is downloaded; chosen by measurement, see
docs/extraction.md); clauses joined by ``;`` become segments of their own; fragments too short to mean
anything (``z.``, ``Requirements``) are merged into their neighbour. Every :class:`Segment` keeps
``text == original[start:end]``.

:func:`split_long` cuts segments longer than the model's window into overlapping windows;
:func:`document_segment` is the whole text as one segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Segment", "SENTENCE", "ITEM", "WINDOW", "DOCUMENT", "segment", "split_long", "document_segment",
           "sentence_spans"]

SENTENCE = "sentence"
ITEM = "item"
WINDOW = "window"
DOCUMENT = "document"

# A splitter gives the (start, end) character spans of the sentences of one block of text.
Splitter = Callable[[str, str], list[tuple[int, int]]]


@dataclass(frozen=True)
class Segment:
    """A piece of the original text.

    Attributes:
        start: offset of its first character in the original text.
        end: offset just past its last character (``text == original[start:end]``).
        text: the piece itself.
        kind: ``sentence``, ``item`` (a bullet, a numbered item or a line of a list), ``window`` (part of a
            segment longer than the model's window) or ``document`` (the whole text).
    """

    start: int
    end: int
    text: str
    kind: str = SENTENCE


# Bullets and numbering at the start of a line: the marker is not part of the segment.
_MARKER = re.compile(
    r"""[ \t]*(?:
        [-–—•·▪▫◦‣●○■□*+»✓✔➢➤→►](?=\s)              # bullets
      | \(?(?:\d{1,3}(?:\.\d{1,3})*|[a-zA-Z]|[ivxIVX]{1,5})[.):](?=\s)   # 1.  1.2.  2)  a)  (b)  iv.  3:
      | \d{1,3}(?:\.\d{1,3})+(?=\s)                  # 1.2 without a final dot
      | (?:LO|LE|LZ|CLO|ILO)[ \t]?\d{1,3}[.:)]?(?=\s)   # learning-outcome codes: LO3:  LZ 2
    )[ \t]*""",
    re.VERBOSE,
)
# Bullets inside a line (texts pasted from web pages often flatten a list into one line).
_INLINE_BULLET = re.compile(r"\s[•·▪●◦‣►➢➤✓✔]\s+")
_TERMINAL = ".!?:;…"
# A line narrower than this is never taken for hard-wrapped text (lowercase lists: "clean data", "write reports").
_WRAP_WIDTH = 40
_WORD = re.compile(r"\w+", re.UNICODE)
_SEMICOLON = re.compile(r";\s+")


def sentence_spans(text: str, language: str = "en") -> list[tuple[int, int]]:
    """The sentence spans of ``text`` by sentencex (``language``: any ISO 639 code; unknown ones fall back)."""
    import sentencex

    spans = []
    for b in sentencex.get_sentence_boundaries(language or "en", text):
        spans.append((int(b["start_index"]), int(b["end_index"])))
    return spans


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _lines(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^\n\r\u2028\u2029]*", text)
            if m.start() != m.end() or m.start() == 0]


def _blocks(text: str) -> list[tuple[int, int, bool]]:
    """Blocks of layout: (start, end, is_item). A line continues the block above (a list item included) when
    it looks like a hard wrap: the line above is wide (``_WRAP_WIDTH``) and does not end a sentence, and this
    line starts small or with a digit, or the line above breaks off mid-phrase (a comma, a hyphen). A blank
    line ends a block."""
    blocks: list[list[int | bool]] = []
    prev_open = False  # the last block may take a continuation line
    prev_len = 0  # width of the line above: wrapped text runs wide, the lines of a list are short
    for ls, le in _lines(text):
        s, e = _strip(text, ls, le)
        if s == e or not _WORD.search(text, s, e):
            prev_open = prev_open and s != e  # a line of only punctuation (a rule) neither ends nor adds
            continue
        m = _MARKER.match(text, s, e)
        if m and m.end() < e:
            blocks.append([m.end(), e, True])
            prev_open, prev_len = True, e - s
            continue
        if prev_open and blocks:
            last = text[int(blocks[-1][1]) - 1]
            # a hard wrap: the line above does not end a sentence, and this line starts small or the one
            # above breaks off mid-phrase (a comma, a hyphen); a capital after a plain word starts a new line
            # of a list (German nouns wrapped onto a new line are cut there: both parts are still searched)
            if last not in _TERMINAL and prev_len >= _WRAP_WIDTH and (
                    text[s].islower() or last in ",-–(/&" or text[s].isdigit()):
                blocks[-1][1] = e
                prev_len = e - s
                continue
        blocks.append([s, e, False])
        prev_open = True
        prev_len = e - s
    return [(int(a), int(b), bool(c)) for a, b, c in blocks]


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A block cut at bullets inside its lines."""
    out, pos = [], start
    for m in _INLINE_BULLET.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    return [p for p in (_strip(text, a, b) for a, b in out) if p[0] < p[1]]


def _words(s: str) -> int:
    return len(_WORD.findall(s))


def segment(
    text: str,
    language: str = "en",
    *,
    min_words: int = 2,
    min_clause_words: int = 2,
    splitter: Splitter | None = None,
) -> list[Segment]:
    """The sentences and list items of ``text``, in order, with offsets into ``text``.

    Args:
        text: any text (a course description, a job ad, ...).
        language: the text's language (ISO 639-1, e.g. ``de``); it picks the splitter's abbreviation rules.
        min_words: a sentence fragment of fewer words is merged into its neighbour in the same block (a list
            item or a line of its own is kept however short: ``Python`` is a perfect query).
        min_clause_words: clauses joined by ``;`` are split when each side has at least this many words.
        splitter: ``(text, language) -> [(start, end), ...]`` instead of sentencex (for comparisons).

    Returns:
        Segments of kind ``sentence`` or ``item``; none for a blank text.
    """
    if not isinstance(text, str):
        raise TypeError(f"segment() takes a string, got {type(text).__name__}")
    split = splitter or sentence_spans
    out: list[Segment] = []
    for bs, be, is_item in _blocks(text):
        frags: list[tuple[int, int]] = []
        for ps, pe in _pieces(text, bs, be):
            chunk = text[ps:pe]
            for ss, se in split(chunk, language):
                a, b = _strip(text, ps + ss, ps + se)
                if a < b and _WORD.search(text, a, b):  # a stray bullet or rule is no segment
                    frags.extend(_split_clauses(text, a, b, min_clause_words))
        frags = _merge_short(text, frags, min_words)
        single_line = len(frags) == 1 and "\n" not in text[bs:be]
        for a, b in frags:
            kind = ITEM if is_item or (single_line and text[b - 1] not in ".!?") else SENTENCE
            out.append(Segment(a, b, text[a:b], kind))
    return out


def _split_clauses(text: str, a: int, b: int, min_words: int) -> list[tuple[int, int]]:
    parts, pos = [], a
    for m in _SEMICOLON.finditer(text, a, b):
        if _words(text[pos:m.start()]) >= min_words and _words(text[m.end():b]) >= min_words:
            parts.append((pos, m.start() + 1))  # the ';' stays with its clause
            pos = m.end()
    parts.append((pos, b))
    return parts


def _merge_short(text: str, frags: list[tuple[int, int]], min_words: int) -> list[tuple[int, int]]:
    if len(frags) < 2 or min_words <= 1:
        return frags
    merged: list[list[int]] = []
    carry: int | None = None  # start of short fragments waiting for the next one
    for a, b in frags:
        if carry is not None:
            a, carry = carry, None
        if _words(text[a:b]) < min_words:
            carry = a
            continue
        merged.append([a, b])
    if carry is not None:  # short fragments at the end of the block join the one before
        if merged:
            merged[-1][1] = frags[-1][1]
        else:
            merged.append([carry, frags[-1][1]])
    return [(a, b) for a, b in merged]


def document_segment(text: str) -> Segment | None:
    """The whole text (without surrounding blanks) as one segment, or None for a blank text."""
    a, b = _strip(text, 0, len(text))
    return Segment(a, b, text[a:b], DOCUMENT) if a < b else None


def split_long(
    segments: Sequence[Segment],
    token_counts: Callable[[list[str]], list[int]],
    max_tokens: int,
    *,
    overlap: int = 32,
) -> list[Segment]:
    """Segments of at most ``max_tokens`` tokens: a longer one is cut into windows of whole words that overlap
    by about ``overlap`` tokens, so a skill named across a cut is still read whole in one window.

    Args:
        segments: segments in text order (offsets into the original text).
        token_counts: tokens of each text as the model reads it (prompt and special tokens included).
        max_tokens: the model's window (its ``max_seq_length``).
        overlap: tokens shared by two neighbouring windows (less than half the window).

    Raises:
        ValueError: ``max_tokens`` too small to hold a word, or ``overlap`` not below half the window.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"overlap must be from 0 to below half the window ({max_tokens // 2}), got {overlap}")
    if not segments:
        return []
    counts = token_counts([s.text for s in segments])
    out: list[Segment] = []
    fixed = token_counts([""])[0]  # prompt and special tokens of every text
    for seg, n in zip(segments, counts):
        if n <= max_tokens:
            out.append(seg)
            continue
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", seg.text)]
        per_word = [max(1, c - fixed) for c in token_counts([seg.text[a:b] for a, b in words])]
        budget = max_tokens - fixed
        for _attempt in range(6):
            windows = _windows(per_word, budget, overlap)
            spans = [(seg.start + words[i][0], seg.start + words[j - 1][1]) for i, j in windows]
            real = token_counts([seg.text[a - seg.start:b - seg.start] for a, b in spans])
            if all(r <= max_tokens for r in real):
                break
            budget = int(budget * 0.9)  # words tokenize a little differently in context: shrink and retry
        for a, b in spans:
            out.append(Segment(a, b, seg.text[a - seg.start:b - seg.start], WINDOW))
    return out


def _windows(per_word: list[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Word ranges [i, j) of at most ``budget`` tokens each, neighbours sharing about ``overlap`` tokens."""
    wins, i, n = [], 0, len(per_word)
    while i < n:
        j, total = i, 0
        while j < n and (total + per_word[j] <= budget or j == i):
            total += per_word[j]
            j += 1
        wins.append((i, j))
        if j >= n:
            break
        # step back from j while the shared part stays within the overlap
        k, shared = j, 0
        while k - 1 > i and shared + per_word[k - 1] <= overlap:
            k -= 1
            shared += per_word[k]
        i = k
    return wins
