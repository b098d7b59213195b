"""Sentence splitters compared on real texts: boundary precision / recall / F1 and speed.

Candidates: sentencex (Wikimedia), pySBD, syntok, blingfire. Texts: the paragraphs of
``benchmarks/data/segmentation_gold.json`` (English and German, written with the usual traps), and job-ad
sentences of ``../shared/eval/jobads-validation`` joined into paragraphs of five (consecutive sentences of
one posting; the set's tokenizer spacing ``word .`` undone, a final full stop added where a line has none).
A boundary counts when a splitter ends a sentence exactly where the gold sentence ends (blanks ignored).

    python -m benchmarks.bench_extract segmenters [--rounds 5]
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED

GOLD = Path(__file__).resolve().parent / "data" / "segmentation_gold.json"
JOBADS = SHARED / "eval" / "jobads-validation"

Spans = list[tuple[int, int]]


def _sentencex(text: str, lang: str) -> Spans:
    from search.extraction.segment import sentence_spans

    return sentence_spans(text, lang)


_PYSBD: dict[str, Any] = {}


def _pysbd(text: str, lang: str) -> Spans:
    import pysbd

    if lang not in _PYSBD:
        code = lang if lang in pysbd.languages.LANGUAGE_CODES else "en"
        _PYSBD[lang] = pysbd.Segmenter(language=code, clean=False, char_span=True)
    return [(s.start, s.end) for s in _PYSBD[lang].segment(text)]


def _syntok(text: str, lang: str) -> Spans:
    import syntok.segmenter as seg

    out = []
    for para in seg.analyze(text):
        for sent in para:
            toks = list(sent)
            if toks:
                out.append((toks[0].offset, toks[-1].offset + len(toks[-1].value)))
    return out


def _blingfire(text: str, lang: str) -> Spans:
    import blingfire

    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    return [(int(a), int(b)) for a, b in offsets]


SPLITTERS: dict[str, Callable[[str, str], Spans]] = {
    "sentencex": _sentencex, "pysbd": _pysbd, "syntok": _syntok, "blingfire": _blingfire,
}


def _detokenize(s: str) -> str:
    s = re.sub(r"\s+([.,;:!?)])", r"\1", s)
    s = re.sub(r"\(\s+", "(", s).strip()
    return s if s[-1:] in ".!?" else s + "."


def jobad_paragraphs(size: int = 5) -> list[list[str]]:
    """Consecutive distinct sentences of the job-ad sets, in paragraphs of ``size``."""
    paras: list[list[str]] = []
    for name in ("tech", "house"):
        path = JOBADS / f"{name}_validation_annotations.csv"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            sents = list(dict.fromkeys(_detokenize(r["sentence"]) for r in csv.DictReader(f) if r["sentence"].strip()))
        paras.extend(sents[i:i + size] for i in range(0, len(sents), size))
    return [p for p in paras if len(p) > 1]


def corpora() -> dict[str, tuple[str, list[list[str]]]]:
    gold = json.loads(GOLD.read_text(encoding="utf-8"))
    out = {"written-en": ("en", gold["en"]), "written-de": ("de", gold["de"])}
    jobs = jobad_paragraphs()
    if jobs:
        out["jobads-en"] = ("en", jobs)
    return out


def _ends(text: str, spans: Spans) -> set[int]:
    ends = set()
    for a, b in spans:
        while b > a and text[b - 1].isspace():
            b -= 1
        ends.add(b)
    ends.discard(len(text))
    return ends


def score(splitter: Callable[[str, str], Spans], lang: str, paras: list[list[str]]) -> dict[str, float]:
    tp = fp = fn = exact = 0
    for sents in paras:
        text = " ".join(sents)
        gold, pos = set(), 0
        for s in sents[:-1]:
            pos += len(s)
            gold.add(pos)
            pos += 1
        pred = _ends(text, splitter(text, lang))
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
        exact += pred == gold
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "paragraphs_exact": exact / len(paras)}


def score_pipeline(splitter: Callable[[str, str], Spans], lang: str, paras: list[list[str]]) -> dict[str, float]:
    """Boundaries of :func:`search.extraction.segment.segment` with this splitter inside (the layout layer cuts
    inline bullets first); gold sentences without a word (a stray ``*``) are no sentences."""
    from search.extraction.segment import segment

    tp = fp = fn = 0
    for sents in paras:
        text = " ".join(sents)
        gold, pos = set(), 0
        for s in sents:
            pos += len(s)
            if re.search(r"\w", s):
                gold.add(pos)
            pos += 1
        gold.discard(len(text))
        pred = {seg.end for seg in segment(text, lang, splitter=splitter, min_words=1, min_clause_words=999)}
        pred.discard(len(text))
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def compare(rounds: int = 5) -> list[dict[str, Any]]:
    rows = []
    corp = corpora()
    chars = sum(len(" ".join(s)) for _lang, paras in corp.values() for s in paras)
    for name, fn in SPLITTERS.items():
        try:
            fn("Warm up. Twice.", "en")
        except ImportError:
            rows.append({"splitter": name, "error": "not installed"})
            continue
        row: dict[str, Any] = {"splitter": name}
        for cname, (lang, paras) in corp.items():
            m = score(fn, lang, paras)
            row[f"{cname} f1"] = round(m["f1"], 3)
            row[f"{cname} P"] = round(m["precision"], 3)
            row[f"{cname} R"] = round(m["recall"], 3)
            row[f"{cname} f1 in segment()"] = round(score_pipeline(fn, lang, paras)["f1"], 3)
        # every round its own texts: a splitter that caches results must not time its cache
        texts = [(lang, f"Round {i} here. " + " ".join(sents)) for i in range(rounds)
                 for lang, paras in corp.values() for sents in paras]
        t = time.perf_counter()
        for lang, text in texts:
            fn(text, lang)
        secs = (time.perf_counter() - t) / rounds
        row["chars/s"] = round(chars / secs)
        rows.append(row)
    fastest = max(r.get("chars/s", 0) for r in rows) or 1
    for r in rows:
        if "chars/s" in r:
            r["speed vs fastest"] = round(r["chars/s"] / fastest, 3)
    return rows
