"""Skills of a whole text (a course description, a job ad): segment it, search every segment in one batch,
aggregate per skill, keep the evidence.

>>> from search import SkillSearch                                   # doctest: +SKIP
>>> from search.extraction import extract_batch
>>> with SkillSearch() as s:
...     [skills] = extract_batch(s, [open("course.txt").read()], language="en")
...     for sk in skills:
...         print(f"{sk.score:.3f} {sk.preferred_label}", [e.text for e in sk.evidence])

This package depends on a searcher only through :class:`SearcherLike` (``search_batch``, ``info``,
``default_threshold`` and the encoder's ``token_counts``); it never imports the searcher's module, so
``SkillSearch.extract`` can import it without an import circle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from search.errors import InvalidQuery
from search.extraction.aggregate import AGGREGATIONS, aggregate, retrieval_floor
from search.extraction.segment import Segment, document_segment, segment, split_long
from search.extraction.types import Evidence, ExtractedSkill, SearcherLike
from search.text import clean_text

__all__ = ["Evidence", "ExtractedSkill", "Segment", "SearcherLike", "extract", "extract_batch", "segments_for",
           "DEFAULT_LIMIT", "PER_SEGMENT", "MAX_SEGMENTS_PER_CALL", "THRESHOLD_KEY", "WINDOW_TOKENS", "default_threshold"]

DEFAULT_LIMIT = 20
# Sentences longer than this many tokens are cut into overlapping windows: a skill named in a long run-on
# sentence is not drowned by the rest (the model was tuned on texts of ~82 tokens); the whole text still gets
# the model's full window.
WINDOW_TOKENS = 128
PER_SEGMENT = 10
# Texts are searched in groups of about this many segments (a text's segments always stay together):
# memory stays flat in the number of texts.
MAX_SEGMENTS_PER_CALL = 256
# Collection metadata key of the threshold calibrated for extraction (search.extraction.evaluate writes it).
THRESHOLD_KEY = "extract_threshold"


def segments_for(searcher: SearcherLike, text: str, language: str = "en", *, whole_text: bool = True,
                 window_tokens: int = WINDOW_TOKENS, overlap: int = 32) -> list[Segment]:
    """The segments of ``text`` that extraction searches: sentences and list items, those over
    ``window_tokens`` (at most the model's window) cut into windows that overlap by ``overlap`` tokens, plus the
    whole text when it fits the model's window (and has more than one segment)."""
    enc = searcher.encoder
    window = int(enc.max_seq_length)
    cut = max(16, min(window, window_tokens))

    def count(ts: list[str]) -> list[int]:
        return list(enc.token_counts(ts, enc.query_prompt))

    segs = [s for s in segment(text, language) if clean_text(s.text)]
    segs = split_long(segs, count, cut, overlap=min(overlap, cut // 2 - 1))
    if whole_text and len(segs) > 1:
        doc = document_segment(text)
        if doc is not None and count([doc.text])[0] <= window:
            segs.append(doc)
    return segs


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidQuery(f"extract takes a text (a string), got {type(text).__name__}: {text!r:.80}")
    if not clean_text(text):
        raise InvalidQuery("the text is empty or blank: give a course description, a job ad or any text")
    return text


def _segment_language(language: str | Iterable[str] | None, segment_language: str | None) -> str:
    if segment_language:
        return segment_language
    if isinstance(language, str):
        return language
    return "en"


def extract_batch(
    searcher: SearcherLike,
    texts: Sequence[str],
    *,
    threshold: float | None = None,
    limit: int | None = None,
    language: str | Iterable[str] | None = None,
    segment_language: str | None = None,
    aggregation: str = "max",
    per_segment: int = PER_SEGMENT,
    whole_text: bool = True,
    window_tokens: int = WINDOW_TOKENS,
    max_segments_per_call: int = MAX_SEGMENTS_PER_CALL,
    **filters: Any,
) -> list[list[ExtractedSkill]]:
    """The skills of each text, best first, each with the segments that matched it.

    All segments of a group of texts are encoded in one encoder call and searched in one store batch request
    (``searcher.search_batch``) with the filters inside the search.

    Args:
        searcher: a ``search.SkillSearch`` (or anything :class:`SearcherLike`).
        texts: the texts.
        threshold: lowest skill score returned; default the collection's threshold calibrated for extraction
            (metadata ``extract_threshold``), else the searcher's :attr:`default_threshold`.
        limit: most skills per text (default 20).
        language: languages of the skill passages to match (a filter, as in search); a single one also sets
            the segmentation language.
        segment_language: the texts' language for the sentence splitter (default: ``language`` when it is
            one code, else ``en``; any ISO 639 code works).
        aggregation: ``max`` or ``support`` (:mod:`search.extraction.aggregate`).
        per_segment: hits searched per segment.
        whole_text: also search the whole text as one segment where it fits the model's window.
        window_tokens: a segment over this many tokens is cut into overlapping windows (default 128, at most
            the model's window).
        max_segments_per_call: texts are searched in groups of about this many segments.
        **filters: every filter of ``SkillSearch.search`` (skill_type, reuse_level, occupation, relation,
            skill_group, collection, status, one_per_concept).

    Raises:
        InvalidQuery: a text that is not a string or is blank, a bad limit or threshold.
        InvalidFilter: a bad filter value (as in search).
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidQuery("extract_batch takes a list of texts; use extract() for one text")
    docs = [_check_text(t) for t in texts]
    if aggregation not in AGGREGATIONS:
        raise InvalidQuery(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    lim = DEFAULT_LIMIT if limit is None else limit
    if isinstance(lim, bool) or not isinstance(lim, int) or lim < 1:
        raise InvalidQuery(f"limit must be a positive integer, got {lim!r}")
    if isinstance(per_segment, bool) or not isinstance(per_segment, int) or per_segment < 1:
        raise InvalidQuery(f"per_segment must be a positive integer, got {per_segment!r}")
    thr = threshold if threshold is not None else default_threshold(searcher)
    lang = _segment_language(language, segment_language)
    out: list[list[ExtractedSkill]] = []
    group: list[list[Segment]] = []
    for doc in docs:
        group.append(segments_for(searcher, doc, lang, whole_text=whole_text, window_tokens=window_tokens))
        if sum(len(g) for g in group) >= max_segments_per_call:
            out.extend(_search_group(searcher, group, thr, lim, language, aggregation, per_segment, filters))
            group = []
    if group:
        out.extend(_search_group(searcher, group, thr, lim, language, aggregation, per_segment, filters))
    return out


def extract(searcher: SearcherLike, text: str, **kwargs: Any) -> list[ExtractedSkill]:
    """The skills of one text: :func:`extract_batch` of ``[text]``."""
    return extract_batch(searcher, [text], **kwargs)[0]


def default_threshold(searcher: SearcherLike) -> float | None:
    """The collection's threshold calibrated for extraction, else the searcher's default threshold."""
    t = searcher.info().get(THRESHOLD_KEY)
    if t is not None:
        return float(t)
    return searcher.default_threshold


def _search_group(searcher: SearcherLike, group: list[list[Segment]], thr: float | None, limit: int,
                  language: Any, aggregation: str, per_segment: int, filters: dict[str, Any]) -> list[list[ExtractedSkill]]:
    flat = [s for segs in group for s in segs]
    floor = retrieval_floor(thr, aggregation, max(len(g) for g in group))
    # -1.0: no threshold in the search (None would mean the searcher's own default)
    hits = searcher.search_batch([s.text for s in flat], limit=per_segment,
                                 threshold=-1.0 if floor is None else floor, language=language, **filters)
    out, i = [], 0
    for segs in group:
        pairs = list(zip(segs, hits[i:i + len(segs)]))
        i += len(segs)
        out.append(aggregate(pairs, method=aggregation, threshold=thr, limit=limit))
    return out

