"""Extraction from whole texts on a real collection (the mini release in English and German, all-MiniLM-L6-v2,
the embedded store): evidence offsets, texts over the window, filters, thresholds, batches, boilerplate."""

from __future__ import annotations

import io
import json
import sys

import pytest

from ingest.build import run
from search import InvalidFilter, InvalidQuery, SkillSearch
from search.extraction import WINDOW_TOKENS, ExtractedSkill, extract, extract_batch, segments_for
from tests.conftest import make_settings
from tests.helpers import MINI_V11, fixtures

COURSE = """Bakery assistant

Your tasks:
- bake bread and rolls in the oven every morning
- operate the cash register and serve customers
- keep the financial records of the shop

You also repair the bicycles of our delivery riders."""

BOILERPLATE = ("We are a family business founded in 1950 with three shops in the city centre. "
               "We offer 30 days of paid leave, flexible hours and a company pension. "
               "We are an equal opportunity employer and welcome all applications.")

DE_TEXT = """Die Teilnehmenden können:
• Brot backen und Teig kneten
• Patienten pflegen und betreuen"""


@pytest.fixture(scope="module")
def searcher(tmp_path_factory, encoder):
    settings = make_settings(tmp_path_factory.mktemp("extract"), "edge", model=encoder.model_name)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    s = SkillSearch(settings, encoder=encoder)
    yield s
    s.close()


def uris(skills: list[ExtractedSkill]) -> list[str]:
    return [s.concept_uri for s in skills]


def test_skills_of_a_job_ad_with_evidence_at_the_right_offsets(searcher):
    sk = fixtures().SKILL
    skills = extract(searcher, COURSE, threshold=0.45, limit=10, language="en")
    found = uris(skills)
    for key in ("bread", "cash_register", "financial_records", "bicycles"):
        assert sk[key] in found, key
    assert [s.score for s in skills] == sorted((s.score for s in skills), reverse=True)
    for s in skills:
        assert s.score == s.evidence[0].score == max(e.score for e in s.evidence)  # max aggregation
        assert s.hit.concept_uri == s.concept_uri and s.hit.score == s.score
        for e in s.evidence:
            assert COURSE[e.start:e.end] == e.text
            assert e.score >= 0.45
    # the best segment other than the whole text
    best = {s.concept_uri: next(e for e in s.evidence if e.kind != "document") for s in skills}
    assert best[sk["bread"]].text == "bake bread and rolls in the oven every morning"
    assert best[sk["bicycles"]].text == "You also repair the bicycles of our delivery riders."
    assert best[sk["cash_register"]].kind == "item"
    d = skills[0].to_dict()
    assert d["concept_uri"] == skills[0].concept_uri and d["evidence"][0]["text"] == skills[0].evidence[0].text


def test_the_whole_text_is_one_more_segment_when_it_fits(searcher):
    segs = segments_for(searcher, COURSE)
    assert segs[-1].kind == "document" and segs[-1].text == COURSE.strip()
    assert len(segments_for(searcher, COURSE, whole_text=False)) == len(segs) - 1
    assert [s.kind for s in segments_for(searcher, "Bake bread.")] == ["sentence"]  # one segment: no duplicate


def test_a_text_over_the_window_loses_nothing(searcher):
    window = searcher.encoder.max_seq_length
    filler = " ".join(["the weather was mild and the river was calm"] * 60)  # one sentence, no full stop
    text = filler + " and then I repair bicycles and replace worn chains and brakes"
    n = searcher.encoder.token_counts([text], searcher.encoder.query_prompt)[0]
    assert n > 1.5 * window
    bikes = fixtures().SKILL["bicycles"]
    # one search of the whole text reads only its first `window` tokens: the skill at the end is lost ...
    assert bikes not in [h.concept_uri for h in searcher.search(text, limit=5, threshold=0.25)]
    # ... extraction cuts it into overlapping windows and finds it, with the last window as evidence
    skills = extract(searcher, text, threshold=0.25, limit=5)
    assert bikes in uris(skills)
    ev = next(s for s in skills if s.concept_uri == bikes).evidence[0]
    assert ev.kind == "window" and text[ev.start:ev.end] == ev.text and ev.end == len(text)
    segs = segments_for(searcher, text)
    assert all(k == "window" for k in (s.kind for s in segs))  # too long for a whole-text segment
    counts = searcher.encoder.token_counts([s.text for s in segs], searcher.encoder.query_prompt)
    assert all(c <= WINDOW_TOKENS for c in counts) and len(segs) >= n // WINDOW_TOKENS
    assert segs[0].start == 0 and segs[-1].end == len(text)
    for a, b in zip(segs, segs[1:]):
        assert b.start < a.end, "neighbouring windows overlap"


def test_filters_hold(searcher):
    fx = fixtures()
    text = COURSE + "\n" + DE_TEXT
    knowledge = extract(searcher, text, threshold=-1.0, limit=50, skill_type="knowledge")
    assert knowledge and all(s.hit.skill_type == "knowledge" for s in knowledge)
    de = extract(searcher, text, threshold=-1.0, limit=50, language="de")
    assert de and all(s.hit.language == "de" and all(True for _ in s.evidence) for s in de)
    baker = extract(searcher, text, threshold=-1.0, limit=50, occupation=fx.OCCUPATION["baker"])
    assert fx.SKILL["bread"] in uris(baker)
    assert fx.SKILL["bicycles"] not in uris(baker)
    digital = extract(searcher, text, threshold=-1.0, limit=50, collection="digital")
    assert set(uris(digital)) <= {fx.SKILL[k] for k in ("python", "scripting", "automate", "spreadsheets")}
    with pytest.raises(InvalidFilter, match="skill_type"):
        extract(searcher, text, skill_type="skills")


def test_one_hit_per_concept_across_languages_and_segments(searcher):
    text = COURSE + "\n" + DE_TEXT + "\nBread baking: you bake bread."
    skills = extract(searcher, text, threshold=-1.0, limit=100)
    assert len(uris(skills)) == len(set(uris(skills)))
    bread = next(s for s in skills if s.concept_uri == fixtures().SKILL["bread"])
    assert len(bread.evidence) >= 3  # the English item, the German bullet, the last sentence (and the whole text)
    assert len({(e.start, e.end) for e in bread.evidence}) == len(bread.evidence)


def test_threshold_cuts_exactly_and_limit_holds(searcher):
    everything = extract(searcher, COURSE, threshold=-1.0, limit=100)
    assert len(everything) > 10
    for i in (0, 3, 7):
        cut = (everything[i].score + everything[i + 1].score) / 2
        kept = extract(searcher, COURSE, threshold=cut, limit=100)
        assert uris(kept) == uris(everything[: i + 1])
        assert all(s.score >= cut and all(e.score >= cut for e in s.evidence) for s in kept)
    assert uris(extract(searcher, COURSE, threshold=-1.0, limit=3)) == uris(everything[:3])
    sup = extract(searcher, COURSE, threshold=-1.0, limit=100, aggregation="support")
    by_uri = {s.concept_uri: s for s in everything}
    for s in sup:  # support never lowers a skill's score, and adds for agreeing segments only
        assert s.score >= by_uri[s.concept_uri].score - 1e-9


def test_batch_equals_single_calls_in_one_search_request(searcher, monkeypatch):
    texts = [COURSE, DE_TEXT, BOILERPLATE, "repair bicycles"]
    singles = [extract(searcher, t, threshold=0.2, limit=8) for t in texts]
    calls: list[int] = []
    real = searcher.search_batch

    def counting(queries, **kw):
        calls.append(len(queries))
        return real(queries, **kw)

    monkeypatch.setattr(searcher, "search_batch", counting)
    batch = extract_batch(searcher, texts, threshold=0.2, limit=8)
    assert len(calls) == 1, "every segment of every text in one search_batch (one encode, one store request)"
    assert calls[0] == sum(len(segments_for(searcher, t)) for t in texts)
    assert_same(batch, singles)
    calls.clear()
    grouped = extract_batch(searcher, texts, threshold=0.2, limit=8, max_segments_per_call=3)
    assert_same(grouped, singles)
    assert len(calls) > 1, "groups of about 3 segments: several requests, memory flat in the number of texts"


def assert_same(a: list[list[ExtractedSkill]], b: list[list[ExtractedSkill]]) -> None:
    """Equal up to float noise (a batch pads texts to a common length)."""
    assert [uris(x) for x in a] == [uris(y) for y in b]
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys):
            assert x.score == pytest.approx(y.score, abs=1e-5)
            assert [(e.start, e.end, e.kind) for e in x.evidence] == [(e.start, e.end, e.kind) for e in y.evidence]


def test_boilerplate_adds_nothing_at_a_threshold(searcher):
    plain = extract(searcher, COURSE, threshold=0.45, limit=20)
    with_blurb = extract(searcher, COURSE + "\n\n" + BOILERPLATE, threshold=0.45, limit=20)
    assert uris(with_blurb) == uris(plain)
    start = len(COURSE) + 2
    for s in with_blurb:
        assert all(e.start < start or e.kind == "document" for e in s.evidence), "no boilerplate segment is evidence"
    assert extract(searcher, BOILERPLATE, threshold=0.45) == []


def test_bad_input_is_refused_with_the_reason(searcher):
    with pytest.raises(InvalidQuery, match="blank"):
        extract(searcher, "  \n ")
    with pytest.raises(InvalidQuery, match="list of texts"):
        extract_batch(searcher, "one text")  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery, match="string"):
        extract_batch(searcher, [COURSE, 3])  # type: ignore[list-item]
    with pytest.raises(InvalidQuery, match="aggregation"):
        extract(searcher, COURSE, aggregation="mean")
    with pytest.raises(InvalidQuery, match="limit"):
        extract(searcher, COURSE, limit=0)
    with pytest.raises(InvalidQuery, match="threshold"):
        extract(searcher, COURSE, threshold=2.0)
    assert extract_batch(searcher, []) == []


def _cli(argv: list[str]) -> int:
    """``esco-search extract ...`` through the dispatcher when it offers ``extract``, else the module itself."""
    import argparse

    from search.cli import COMMANDS, main

    if "extract" in COMMANDS:
        return main(["extract", *argv])
    from search.cli import extract as cli_extract
    from search.errors import SearchError

    p = argparse.ArgumentParser(prog="esco-search")
    cli_extract.add_parser(p.add_subparsers())
    try:
        return cli_extract.run(p.parse_args(["extract", *argv]))
    except SearchError as exc:
        sys.stderr.write(f"esco-search: error: {exc}\n")
        return 2


def test_cli_table_and_json(searcher, minilm_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ESCO_QDRANT_PATH", str(searcher.settings.qdrant_path))
    monkeypatch.setenv("ESCO_MODEL", minilm_path)
    monkeypatch.setenv("ESCO_BACKEND", "torch")
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "ad.txt"
    f.write_text(COURSE + "\n\n" + BOILERPLATE, encoding="utf-8")
    assert _cli([str(f), "--threshold", "0.45", "--language", "en"]) == 0
    out = capsys.readouterr().out
    assert "bake bread" in out and fixtures().SKILL["bread"] in out
    assert "bake bread and rolls in the oven every morning" in out  # the evidence snippet
    assert _cli([str(f), "--threshold", "0.45", "--language", "en", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    text = f.read_text(encoding="utf-8")
    assert {d["concept_uri"] for d in data} >= {fixtures().SKILL["bread"], fixtures().SKILL["bicycles"]}
    for d in data:
        assert d["score"] >= 0.45
        for e in d["evidence"]:
            assert text[e["start"]:e["end"]] == e["text"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("I repair bicycles."))
    assert _cli(["-", "--json", "--threshold", "0.3"]) == 0
    assert fixtures().SKILL["bicycles"] in {d["concept_uri"] for d in json.loads(capsys.readouterr().out)}
    assert _cli([str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.txt" in err and "no such file" in err


def test_the_searchers_methods_are_the_extraction(searcher):
    """SkillSearch.extract / extract_batch, what services call, give what search.extraction gives."""
    texts = [COURSE, DE_TEXT]
    assert_same([searcher.extract(t, threshold=0.3, limit=8) for t in texts],
                [extract(searcher, t, threshold=0.3, limit=8) for t in texts])
    assert_same(searcher.extract_batch(texts, threshold=0.3, limit=8), extract_batch(searcher, texts, threshold=0.3, limit=8))
    assert uris(searcher.extract(COURSE, threshold=0.45, limit=10, language="en"))
