"""Occupations end to end: the mini release (English and German) ingested with a real small model into the
embedded store; title search, name resolution, coverage ranking, evaluation, upgrade, resume, CLI."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ingest.esco.occupations import read_occupations
from ingest.occupations import build_occupations
from search.errors import InvalidFilter, InvalidQuery, SearchError
from search.occupations import (AmbiguousOccupation, OccupationNotFound, OccupationsNotIngested, occupations_from_skills,
                                resolve_occupation, resolve_occupations, search_occupations)
from search.occupations.index import ALIAS_TTL
from search.occupations.evaluation import ExactTitleIndex, dev_title_set, evaluate_titles, read_title_set
from search.stores import open_store
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
V12 = ROOT / "tests" / "data" / "esco_mini" / "v1.2.9"
_spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests" / "data" / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(fx)
OCC, SKILL = fx.OCCUPATION, fx.SKILL


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder, minilm_path):
    tmp = tmp_path_factory.mktemp("occ")
    settings = make_settings(tmp, model=minilm_path)
    store = open_store(settings)
    summary = build_occupations(settings, read_occupations([V12], ["en", "de"]), store, encoder)
    searcher = SimpleNamespace(encoder=encoder, store=store, settings=settings)
    yield SimpleNamespace(settings=settings, store=store, searcher=searcher, summary=summary, tmp=tmp)
    store.close()


def test_collection_behind_its_own_alias_with_indexes(served):
    s, store = served.summary, served.store
    assert (s.alias, s.points, s.new, s.encoded, s.reused) == ("esco_occupations", 16, 16, 16, 0)
    assert store.resolve_alias("esco_occupations") == s.collection
    assert s.collection.startswith("esco_occupations__v1-2-9__")
    meta = store.get_metadata(s.collection)
    assert meta["kind"] == "occupations" and meta["status"] == "complete" and meta["languages"] == ["en", "de"]
    if store.kind != "local":
        assert {"concept_uri", "isco_groups", "label_keys", "essential_skills", "language"} <= set(store.payload_indexes(s.collection))
    assert store.count(s.collection) == 16


def _labels(hits):
    return [(h.concept_uri, h.language, h.matched_label) for h in hits]


def test_title_search_exact_labels_first_then_by_cosine(served):
    srch = served.searcher
    hits = search_occupations(srch, "Bäckerin", limit=3)
    assert hits[0].concept_uri == OCC["baker"] and hits[0].matched_label == "Bäckerin" and hits[0].language == "de"
    assert len({h.concept_uri for h in hits}) == 3  # one hit per occupation across languages
    assert all(h.matched_label is None for h in hits[1:])
    gendered = search_occupations(srch, "verkäuferin", limit=1)[0]  # a gendered form of the preferred label
    assert (gendered.concept_uri, gendered.matched_label) == (OCC["shop_assistant"], "Verkäuferin")
    # a label matched whatever its score: the threshold drops only title-search hits
    low = search_occupations(srch, "Krankenschwester", threshold=0.99)
    assert [(h.concept_uri, h.matched_label) for h in low] == [(OCC["nurse"], "Krankenschwester")]
    # by meaning
    assert search_occupations(srch, "someone who fixes bikes", limit=1)[0].concept_uri == OCC["bike_mechanic"]
    en = search_occupations(srch, "someone who fixes bikes", language="en", limit=8, mode="dense")
    assert {h.language for h in en} == {"en"} and [h.score for h in en] == sorted((h.score for h in en), reverse=True)
    assert len(en) == 8
    fused = search_occupations(srch, "someone who fixes bikes", language="en", limit=8)  # hybrid: the fused order
    assert {h.language for h in fused} == {"en"} and len(fused) == 8 and fused[0].concept_uri == OCC["bike_mechanic"]
    # the order is the fusion's, the score stays the passage's cosine (thresholds mean the same in both modes)
    by_uri = {h.concept_uri: h.score for h in en}
    assert all(h.score == pytest.approx(by_uri[h.concept_uri], abs=1e-5) for h in fused if h.concept_uri in by_uri)
    assert [h.score for h in fused] != sorted((h.score for h in fused), reverse=True)
    isco = search_occupations(srch, "someone who fixes bikes", isco_group="72", limit=10)
    assert {h.concept_uri for h in isco} == {OCC["bike_mechanic"], OCC["welder"]}
    assert search_occupations(srch, "welder", isco_group="http://data.europa.eu/esco/isco/C2")[0].matched_label is None
    hit = search_occupations(srch, "nurse", language="en", limit=1)[0]
    assert hit.regulated_profession_note.endswith("/regulated") and hit.isco_groups == ("2", "22", "222", "2221")
    assert hit.to_dict()["isco_groups"] == ["2", "22", "222", "2221"]
    with pytest.raises(InvalidFilter, match="25x"):
        search_occupations(srch, "baker", isco_group="25x")
    with pytest.raises(InvalidFilter, match="fr"):
        search_occupations(srch, "baker", language="fr")
    with pytest.raises(InvalidQuery):
        search_occupations(srch, "   ")


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize("language", [None, "en", "de"])
@pytest.mark.parametrize("exact", [False, True])
def test_title_search_equals_an_exact_search(served, language, exact, mode):
    srch = served.searcher
    ref = ExactTitleIndex(srch, mode)
    titles = ["baker", "Bäckerin", "Python programmer", "programmer", "repairs bicycles", "Pflege von Patienten",
              "accounting clerk", "sales", "Schweißer", "data"]
    vectors = srch.encoder.encode_queries(titles)
    for title, v in zip(titles, vectors):
        got = search_occupations(srch, title, limit=5, language=language, exact=exact, mode=mode)
        want = ref.search(title, v, limit=5, language=language)
        assert [(h.concept_uri, h.matched_label is not None) for h in got] == [(u, m) for u, _l, _s, m in want], title
        assert [round(h.score, 4) for h in got] == [round(s, 4) for _u, _l, s, _m in want]


def test_label_resolution_exact_alternative_ambiguous_unknown(served):
    srch = served.searcher
    assert resolve_occupation(srch, "baker").uri == OCC["baker"]  # preferred label, English
    r = resolve_occupation(srch, "Bäcker")  # a gendered form, German
    assert (r.uri, r.how, r.label) == (OCC["baker"], "label", "Bäcker/Bäckerin")
    assert resolve_occupation(srch, "REGISTERED NURSE").uri == OCC["nurse"]  # alternative label, any case
    assert resolve_occupation(srch, "bakker").uri == OCC["baker"]  # hidden label
    assert resolve_occupation(srch, OCC["welder"]).how == "uri"
    with pytest.raises(AmbiguousOccupation) as e:
        resolve_occupation(srch, "Python programmer")  # an alternative label of two occupations
    msg = str(e.value)
    assert OCC["developer"] in msg and OCC["data_analyst"] in msg and "score 0." in msg
    assert {c.uri for c in e.value.candidates} == {OCC["developer"], OCC["data_analyst"]}
    assert isinstance(e.value, InvalidFilter)
    by_search = resolve_occupation(srch, "repairs bicycles")  # no label: the title search decides
    assert (by_search.uri, by_search.how) == (OCC["bike_mechanic"], "search") and by_search.score > 0.5
    with pytest.raises(OccupationNotFound) as nf:
        resolve_occupation(srch, "qqq zzz xxyy")
    assert "qqq zzz xxyy" in str(nf.value) and "closest:" in str(nf.value) and "URI" in str(nf.value)
    with pytest.raises(AmbiguousOccupation):
        resolve_occupation(srch, "repairs bicycles", margin=1.0)
    assert resolve_occupations(srch, [OCC["welder"], "Bäcker", "baker"]) == (OCC["welder"], OCC["baker"])


def test_occupations_from_skills_in_the_served_collection(served):
    got = occupations_from_skills(served.searcher, [SKILL["bread"], SKILL["cash_register"], SKILL["waste"]],
                                  limit=2, language="de")
    assert [(m.concept_uri, m.score) for m in got] == [(OCC["baker"], round(5 / 6, 6)),
                                                      (OCC["shop_assistant"], round(2 / 3, 6))]
    assert {r.label for r in got[0].matched_essential} == {"Brot backen", "Abfälle entsorgen"}
    assert json.loads(json.dumps(got[0].to_dict()))["matched_optional"][0]["label"] == "Registrierkasse bedienen"
    assert occupations_from_skills(served.searcher, [SKILL["bread"]], isco_group="2") == []


def test_evaluation_against_the_exact_search(served, tmp_path):
    srch = served.searcher
    dev = dev_title_set(srch)
    assert any(q.query == "Python programmer" and q.relevant == {OCC["developer"], OCC["data_analyst"]} for q in dev)
    assert any(q.query == "Bäckerin" and q.relevant == {OCC["baker"]} and q.language == "de" for q in dev)
    rep = evaluate_titles(srch, dev, k=5)
    assert rep["mode"] == "hybrid" and rep["queries"] == len(dev) and rep["same_top_k"] == 1.0
    assert all(v == pytest.approx(1.0) for v in rep["ratio"].values() if v is not None)
    assert rep["index"]["accuracy@1"] == 1.0  # alternative labels are exact labels
    dense = evaluate_titles(srch, dev, k=5, exact_labels=False, mode="dense")
    assert dense["same_top_k"] == 1.0 and dense["index"]["accuracy@1"] < 1.0  # by meaning alone: not all right
    fused = evaluate_titles(srch, dev, k=5, exact_labels=False)  # the labels are rows: found by meaning too
    assert fused["same_top_k"] == 1.0 and fused["index"]["mrr@10" if "mrr@10" in fused["index"] else "mrr"] >= \
        dense["index"]["mrr@10" if "mrr@10" in dense["index"] else "mrr"]
    p = tmp_path / "titles.jsonl"
    p.write_text(json.dumps({"query": "bread maker", "relevant": [OCC["baker"]]}) + "\n\n"
                 + json.dumps({"title": "Fahrradmechanikerin", "occupations": OCC["bike_mechanic"]}) + "\n")
    assert [q.query for q in read_title_set(p)] == ["bread maker", "Fahrradmechanikerin"]
    p.write_text('{"query": "x", "relevant": []}\n')
    with pytest.raises(InvalidQuery, match=r"titles.jsonl, line 1"):
        read_title_set(p)


def test_release_upgrade_changes_one_occupation(served, encoder, tmp_path):
    root = tmp_path / "v1.3.9"
    shutil.copytree(V12, root)
    p = root / "occupations_en.csv"
    old = "Welders operate welding equipment to fuse metal workpieces together."
    p.write_text(p.read_text(encoding="utf-8").replace(old, "Welders join metal parts with heat and filler."),
                 encoding="utf-8")
    before = served.store.resolve_alias("esco_occupations")
    s = build_occupations(served.settings, read_occupations([root], ["en", "de"]), served.store, encoder)
    assert (s.esco_version, s.changed, s.unchanged, s.new, s.removed) == ("v1.3.9", 1, 15, 0, 0)
    assert (s.encoded, s.reused, s.previous_collection) == (1, 15, before)
    assert served.store.resolve_alias("esco_occupations") == s.collection != before
    # every representation of the unchanged points carried over as stored (the label mean included)
    old_pts = {p.id: p for p in served.store.scroll(before, with_vectors=True)}
    new_pts = {p.id: p for p in served.store.scroll(s.collection, with_vectors=True)}
    kept = [i for i in new_pts if new_pts[i].payload["text_hash"] == old_pts[i].payload["text_hash"]]
    assert len(kept) == 15 and set(new_pts[kept[0]].vectors) == {"passage", "label_mean", "bm25"}
    for i in kept:
        assert np.array_equal(new_pts[i].vectors["label_mean"], old_pts[i].vectors["label_mean"])
        assert new_pts[i].payload["labels_hash"] == old_pts[i].payload["labels_hash"]
    time.sleep(ALIAS_TTL + 0.05)  # a searcher trusts its alias resolution this long
    hit = search_occupations(served.searcher, "welder", language="en", limit=1)[0]
    assert hit.description == "Welders join metal parts with heat and filler." and hit.esco_version == "v1.3.9"


def test_a_dense_occupations_collection_is_searched_by_its_passage_and_refuses_hybrid(encoder, minilm_path, tmp_path):
    settings = make_settings(tmp_path, model=minilm_path, representations="dense")
    with open_store(settings) as store:
        s = build_occupations(settings, read_occupations([V12], ["en"]), store, encoder)
        assert "representations" not in store.get_metadata(s.collection)
        srch = SimpleNamespace(encoder=encoder, store=store, settings=settings)
        hits = search_occupations(srch, "someone who fixes bikes", limit=3)
        assert hits[0].concept_uri == OCC["bike_mechanic"]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        with pytest.raises(SearchError, match="ESCO_REPRESENTATIONS=hybrid"):
            search_occupations(srch, "baker", mode="hybrid")
        # an exact label comes first, scored from the one unnamed vector the hit cache keeps: the engine's cosine
        first = search_occupations(srch, "baker", limit=3)[0]
        by_meaning = {h.concept_uri: h.score for h in search_occupations(srch, "baker", limit=50, exact_labels=False)}
        assert first.concept_uri == OCC["baker"] and first.matched_label == "baker"
        assert first.score == pytest.approx(by_meaning[OCC["baker"]], abs=1e-5)
        rep = evaluate_titles(srch, dev_title_set(srch), k=5, exact_labels=False)
        assert rep["mode"] == "dense" and rep["same_top_k"] == 1.0


def test_a_killed_build_resumes(encoder, minilm_path, tmp_path):
    settings = make_settings(tmp_path, model=minilm_path, upsert_batch_size=4, batch_size=4)
    store = open_store(settings)
    try:
        release = read_occupations([V12], ["en", "de"])

        def die(n: int) -> None:
            if n >= 8:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            build_occupations(settings, release, store, encoder, after_batch=die)
        assert store.resolve_alias("esco_occupations") is None  # nothing served before it is verified
        meta = store.get_metadata(store.list_collections()[0])
        s = build_occupations(settings, release, store, encoder)  # this process's own failed build: resumed
        assert meta["status"] == "building" and s.resumed_points == 8 and s.encoded == 8
        assert store.resolve_alias("esco_occupations") == s.collection and store.count(s.collection) == 16
    finally:
        store.close()


def test_no_collection_is_a_clear_error(encoder, minilm_path, tmp_path):
    settings = make_settings(tmp_path, model=minilm_path)
    store = open_store(settings)
    try:
        with pytest.raises(OccupationsNotIngested, match="ESCO_OCCUPATION_COLLECTION"):
            search_occupations(SimpleNamespace(encoder=encoder, store=store, settings=settings), "baker")
    finally:
        store.close()


def _cli(argv: list[str]) -> int:

    from search.cli import occupations as cli_occupations
    from search.cli.common import CliParser

    parser = CliParser(prog="esco-search")
    cli_occupations.add_parser(parser.add_subparsers(dest="command"))
    return cli_occupations.run(parser.parse_args(["occupations", *argv]))


def test_cli_title_from_skills_resolve_and_json(served, minilm_path, monkeypatch, capsys):
    monkeypatch.setenv("ESCO_QDRANT_PATH", str(served.settings.qdrant_path))
    monkeypatch.setenv("ESCO_MODEL", minilm_path)
    monkeypatch.setenv("ESCO_PRECISION", "fp32")
    assert _cli(["Bäckerin", "--limit", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "Bäcker/Bäckerin" in out[0] and "= 'Bäckerin'" in out[0] and OCC["baker"] in out[0]
    assert _cli(["someone who fixes bikes", "--language", "en", "--json", "--limit", "1"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)
    assert hit["concept_uri"] == OCC["bike_mechanic"] and hit["language"] == "en"
    for mode in ("dense", "hybrid"):  # --mode: the same hits as the library's mode=
        assert _cli(["someone who fixes bikes", "--language", "en", "--json", "--limit", "5", "--mode", mode]) == 0
        got = [(h["concept_uri"], round(h["score"], 5)) for h in json.loads(capsys.readouterr().out)]
        want = search_occupations(served.searcher, "someone who fixes bikes", language="en", limit=5, mode=mode)
        assert got == [(h.concept_uri, round(h.score, 5)) for h in want]
    assert _cli(["--from-skills", SKILL["bread"], SKILL["cash_register"], SKILL["waste"], "--json", "--limit", "1"]) == 0
    (m,) = json.loads(capsys.readouterr().out)
    assert m["concept_uri"] == OCC["baker"] and m["score"] == round(5 / 6, 6) and m["missing_essential"] == []
    assert _cli(["--from-skills", SKILL["bicycles"], "--language", "en"]) == 0
    text = capsys.readouterr().out
    assert "bicycle mechanic" in text and "essential 1/1 (100%)" in text
    assert _cli(["--resolve", "registered nurse"]) == 0
    assert capsys.readouterr().out.startswith(OCC["nurse"])
    with pytest.raises(InvalidQuery, match="one of them"):
        _cli(["baker", "--from-skills", SKILL["bread"]])
    with pytest.raises(AmbiguousOccupation):
        _cli(["--resolve", "Python programmer"])


def test_skill_search_takes_an_occupation_name(encoder, minilm_path, tmp_path):
    """`SkillSearch.search(..., occupation="Bäcker")`: the name resolves through the occupations collection."""
    from ingest.build import run
    from search import SkillSearch

    settings = make_settings(tmp_path, model=minilm_path)
    store = open_store(settings)
    try:
        run(settings, [V12], ["en", "de"], encoder=encoder, store=store, progress=False)
        build_occupations(settings, read_occupations([V12], ["en", "de"]), store, encoder)
        searcher = SkillSearch(settings, encoder=encoder, store=store)
        by_name = searcher.search("bread and waste", occupation="Bäcker", relation="essential", limit=10)
        by_uri = searcher.search("bread and waste", occupation=OCC["baker"], relation="essential", limit=10)
        assert [h.concept_uri for h in by_name] == [h.concept_uri for h in by_uri]
        assert {h.concept_uri for h in by_name} == {SKILL["bread"], SKILL["waste"]}
        with pytest.raises(AmbiguousOccupation):
            searcher.search("python", occupation="Python programmer")
        assert searcher.search_occupations("Bäckerin", limit=1)[0].concept_uri == OCC["baker"]
        assert searcher.occupations_from_skills([SKILL["bread"]], limit=1)[0].concept_uri == OCC["baker"]
    finally:
        store.close()
