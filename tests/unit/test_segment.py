"""Segmentation of whole texts: sentences, bullets, numbered learning outcomes, line lists, German forms,
boilerplate; offsets into the original; long segments cut into overlapping windows."""

from __future__ import annotations

import pytest

from search.extraction.segment import (
    DOCUMENT,
    ITEM,
    SENTENCE,
    WINDOW,
    Segment,
    document_segment,
    segment,
    split_long,
)


def texts(segs: list[Segment]) -> list[str]:
    return [s.text for s in segs]


def assert_offsets(text: str, segs: list[Segment]) -> None:
    for s in segs:
        assert text[s.start:s.end] == s.text, s
        assert s.text == s.text.strip() and s.text
    starts = [s.start for s in segs]
    assert starts == sorted(starts), "segments in text order"
    for a, b in zip(segs, segs[1:]):
        assert a.end <= b.start, "segments do not overlap"


EN_COURSE = """Data analysis with Python

This course introduces data analysis, e.g. with pandas and NumPy. It is taught by Dr. Smith.

Learning outcomes. On completion, students will be able to:
1. clean and transform data sets
2. visualise results with matplotlib
3) write reports for a non-technical audience
LO4: apply statistical tests; interpret p-values

Requirements
Python
SQL
"""


def test_english_course_sentences_numbered_outcomes_and_line_list():
    segs = segment(EN_COURSE, "en")
    assert_offsets(EN_COURSE, segs)
    assert texts(segs) == [
        "Data analysis with Python",
        "This course introduces data analysis, e.g. with pandas and NumPy.",
        "It is taught by Dr. Smith.",
        "Learning outcomes.",
        "On completion, students will be able to:",
        "clean and transform data sets",
        "visualise results with matplotlib",
        "write reports for a non-technical audience",
        "apply statistical tests;",
        "interpret p-values",
        "Requirements",
        "Python",
        "SQL",
    ]
    kinds = {s.text: s.kind for s in segs}
    assert kinds["clean and transform data sets"] == ITEM
    assert kinds["Python"] == ITEM  # a line of a list without a bullet
    assert kinds["It is taught by Dr. Smith."] == SENTENCE


DE_COURSE = """Modul Datenbanken

Die Teilnehmenden können:
• relationale Datenbanken entwerfen (z. B. mit PostgreSQL)
• SQL-Abfragen schreiben, d. h. SELECT und JOIN verwenden
– Normalformen anwenden

Die Teilnehmenden können nach Abschluss des Moduls Datenmodelle bewerten. Das Modul beginnt am 1. Oktober und \
endet am 15. Dezember. Die Prüfung dauert ca. 90 Minuten.
a) Projekte planen
b) Ergebnisse präsentieren
"""


def test_german_learning_outcomes_lead_in_bullets_abbreviations_and_ordinals():
    segs = segment(DE_COURSE, "de")
    assert_offsets(DE_COURSE, segs)
    assert texts(segs) == [
        "Modul Datenbanken",
        "Die Teilnehmenden können:",
        "relationale Datenbanken entwerfen (z. B. mit PostgreSQL)",
        "SQL-Abfragen schreiben, d. h. SELECT und JOIN verwenden",
        "Normalformen anwenden",
        "Die Teilnehmenden können nach Abschluss des Moduls Datenmodelle bewerten.",
        "Das Modul beginnt am 1. Oktober und endet am 15. Dezember.",
        "Die Prüfung dauert ca. 90 Minuten.",
        "Projekte planen",
        "Ergebnisse präsentieren",
    ]
    assert all(s.kind == ITEM for s in segs if s.text in ("Projekte planen", "Normalformen anwenden"))


JOB_AD = """Senior Backend Developer (m/f/d)
About us: Acme Inc. is a leading provider of logistics software with 500 employees in 12 countries.
Your tasks: You design REST APIs in Java and maintain our PostgreSQL databases. You review code of colleagues.
What we offer • flexible working hours • 30 days of paid leave • a company pension scheme
We are an equal opportunity employer and welcome applications from all backgrounds.
"""


def test_job_ad_with_boilerplate_and_inline_bullets():
    segs = segment(JOB_AD, "en")
    assert_offsets(JOB_AD, segs)
    assert texts(segs) == [
        "Senior Backend Developer (m/f/d)",
        "About us: Acme Inc. is a leading provider of logistics software with 500 employees in 12 countries.",
        "Your tasks: You design REST APIs in Java and maintain our PostgreSQL databases.",
        "You review code of colleagues.",
        "What we offer",
        "flexible working hours",
        "30 days of paid leave",
        "a company pension scheme",
        "We are an equal opportunity employer and welcome applications from all backgrounds.",
    ]


def test_hard_wrapped_paragraph_is_one_sentence_and_short_fragments_merge():
    text = ("Participants learn to plan construction projects, estimate their costs and\n"
            "schedule the work of subcontractors on site. Ok. They also learn to read plans.")
    segs = segment(text, "en")
    assert_offsets(text, segs)
    assert texts(segs) == [
        "Participants learn to plan construction projects, estimate their costs and\n"
        "schedule the work of subcontractors on site.",
        "Ok. They also learn to read plans.",  # "Ok." alone is too short to mean anything: merged forward
    ]


def test_a_list_of_lowercase_lines_stays_a_list():
    text = "What you will need\nadjust engineering models\noversee the maintenance of equipment\nengineering principles\n"
    segs = segment(text, "en")
    assert_offsets(text, segs)
    assert texts(segs) == ["What you will need", "adjust engineering models", "oversee the maintenance of equipment",
                           "engineering principles"]
    assert all(s.kind == ITEM for s in segs)


def test_any_language_code_and_blank_texts():
    fr = "Les participants savent analyser des données, p. ex. avec Python. Ils rédigent des rapports."
    assert texts(segment(fr, "fr")) == ["Les participants savent analyser des données, p. ex. avec Python.",
                                        "Ils rédigent des rapports."]
    # a language without rules of its own falls back (Maltese, Irish are ESCO languages)
    for lang in ("mt", "ga", "is", "uk"):
        assert len(segment("First part here. Second part here.", lang)) == 2
    assert segment("", "en") == [] and segment(" \n\t\n", "en") == []
    assert segment("- \n*\n----\n", "en") == []  # markers and rules only
    assert document_segment("  \n ") is None
    doc = document_segment("\n  Bake bread. Sell it.  \n")
    assert doc is not None and doc.kind == DOCUMENT and doc.text == "Bake bread. Sell it."
    with pytest.raises(TypeError, match="string"):
        segment(None, "en")  # type: ignore[arg-type]


def word_counter(prompt_tokens: int = 2):
    """Token counts where every word is one token, plus two special tokens per text."""
    return lambda ts: [len(t.split()) + prompt_tokens for t in ts]


def test_split_long_cuts_windows_that_overlap_and_cover_every_word():
    words = [f"W{i}" for i in range(100)]
    text = "An intro here. " + " ".join(words) + "."
    segs = segment(text, "en")
    long = split_long(segs, word_counter(), 20, overlap=5)
    assert long[0].text == "An intro here." and long[0].kind == SENTENCE
    wins = long[1:]
    assert len(wins) > 5 and all(w.kind == WINDOW for w in wins)
    assert_offsets_windows(text, wins)
    for w in wins:
        assert len(w.text.split()) + 2 <= 20
    covered = set()
    for w in wins:
        covered.update(w.text.rstrip(".").split())
    assert covered == set(words), "no word is lost"
    for a, b in zip(wins, wins[1:]):
        shared = set(a.text.split()) & set(b.text.split())
        assert 1 <= len(shared) <= 5, "neighbouring windows share at most the overlap"
    assert wins[-1].text.endswith("W99.")


def assert_offsets_windows(text: str, wins: list[Segment]) -> None:
    for w in wins:
        assert text[w.start:w.end] == w.text


def test_split_long_shrinks_when_words_tokenize_longer_in_context():
    text = " ".join(f"x{i}" for i in range(60))
    # a counter where joined words cost more than alone (as subword tokenizers can): 2 tokens per word in context
    def counter(ts):
        return [2 * len(t.split()) + 2 if len(t.split()) > 1 else 3 for t in ts]
    wins = split_long(segment(text, "en"), counter, 30, overlap=2)
    assert all(counter([w.text])[0] <= 30 for w in wins)
    assert " ".join(w.text for w in wins).split()[-1] == "x59"


def test_split_long_leaves_short_segments_and_checks_arguments():
    segs = segment("Bake bread. Sell it in the shop.", "en")
    assert split_long(segs, word_counter(), 100) == segs
    assert split_long([], word_counter(), 100) == []
    with pytest.raises(ValueError, match="overlap"):
        split_long(segs, word_counter(), 64, overlap=40)
    with pytest.raises(ValueError, match="max_tokens"):
        split_long(segs, word_counter(), 4)
