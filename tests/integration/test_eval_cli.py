"""`esco-search eval` end to end: the mini release ingested with a real small model into an embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.build import run
from search.cli import main as search_main
from search.evaluation import METRIC_ORDER, LabelIndex, LabelledSetError, build_labelled_set
from search.cli.eval import main
from search.service import SkillSearch
from search.settings import SearchSettings
from search.stores import open_store
from tests.conftest import make_settings
from tests.helpers import MINI_V11, fixtures


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, minilm_path: str, encoder):
    """The mini release (en + de, 40 points) in an edge store, ingested once for this module."""
    settings = make_settings(tmp_path_factory.mktemp("eval"), "edge", model=minilm_path)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    return settings


@pytest.fixture
def store_env(ingested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ESCO_* pointing the CLI at the ingested store."""
    settings = ingested
    monkeypatch.chdir(tmp_path)  # no stray .env; relative report folders land here
    for key, value in {
        "ESCO_QDRANT_PATH": str(settings.qdrant_path), "ESCO_EMBEDDED_ENGINE": "edge",
        "ESCO_MODEL": settings.model, "ESCO_COLLECTION": settings.collection, "ESCO_DEVICE": "cpu",
        "ESCO_PRECISION": "fp32",
    }.items():
        monkeypatch.setenv(key, value)
    return settings


def test_build_set_then_eval_then_store_threshold(store_env, tmp_path: Path, capsys) -> None:
    labelled = tmp_path / "alt.jsonl"
    assert main(["--build-set", str(labelled), "--n", "500", "--seed", "3", "--language", "en"]) == 0
    assert "queries to" in capsys.readouterr().out
    lines = [json.loads(x) for x in labelled.read_text(encoding="utf-8").splitlines()]
    fx = fixtures()
    assert 15 <= len(lines) <= 20  # every skill with a usable alternative label (n is capped)
    for obj in lines:
        (uri,) = obj["relevant"]
        assert uri in fx.SKILL.values()
        assert obj["query"].casefold() != obj["preferred_label"].casefold()

    report_dir = tmp_path / "report"
    rc = main([str(labelled), "--json", "--report-dir", str(report_dir), "--store-threshold", "best-f1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["metrics"]) == METRIC_ORDER  # accuracy@1 ... map@100, no cosine_ prefix
    assert set(out["exact"]) == set(METRIC_ORDER)
    # the embedded store searches exactly here: the index equals brute force over its own vectors
    assert all(v == pytest.approx(1.0) for v in out["ratio"].values()), out["ratio"]
    assert out["overlap_at_10"] == pytest.approx(1.0)
    assert out["metrics"]["accuracy@10"] > 0.5
    assert out["n_queries"] == len(lines)
    assert out["languages"] == ["en", "de"]
    assert out["model_card"]["accuracy@1"] == 0.8582
    for name in ("metrics.json", "calibration.csv", "queries.csv", "score_distributions.png", "threshold_curves.png"):
        assert (report_dir / name).stat().st_size > 0, name
    assert (report_dir / "score_distributions.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((report_dir / "metrics.json").read_text())["metrics"] == out["metrics"]

    best = out["calibration"]["best_f1"]["threshold"]
    assert out["stored_threshold"]["score_threshold"] == best
    with SkillSearch(SearchSettings(_env_file=None)) as s:  # type: ignore[call-arg]
        assert s.default_threshold == pytest.approx(best)
        cal = s.info()["calibration"]
        assert cal["set"] == "alt.jsonl" and cal["queries"] == len(lines) and "date" in cal

    # a given number, through the `esco-search eval` entry point, with a filter and the readable table
    assert search_main(["eval", str(labelled), "--no-exact", "--no-report", "--language", "en",
                        "--store-threshold", "0.42"]) == 0
    text = capsys.readouterr().out
    assert "accuracy@1" in text and "model card" in text and "0.8582" in text
    assert "stored       score_threshold 0.420" in text
    with SkillSearch(SearchSettings(_env_file=None)) as s:  # type: ignore[call-arg]
        assert s.default_threshold == pytest.approx(0.42)


def test_csv_labels_and_errors(store_env, tmp_path: Path, capsys) -> None:
    csv_path = tmp_path / "set.csv"
    csv_path.write_text(
        "query,relevant\n"
        "I can bake rolls and loaves,bake bread\n"
        "fixing a flat tyre on a bike,Repair Bicycles|operate forklift\n"
        "Buchhaltung machen,Rechnungswesen\n"  # a German preferred label
        "something,no such skill\n",
        encoding="utf-8",
    )
    rc = main([str(csv_path), "--json", "--no-report", "--skill-type", "skill/competence"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_queries"] == 3
    ls = out["labelled_set"]
    assert ls["unresolved"] == 1 and ls["dropped_queries"] == 1
    assert ls["unresolved_examples"] == [{"line": 5, "label": "no such skill"}]
    assert out["filters"] == {"skill_type": ["skill/competence"]}
    assert all(v == pytest.approx(1.0) for v in out["ratio"].values() if v is not None)

    # errors: one line, exit code 2, naming the file and line
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "relevant": ["http://data.europa.eu/esco/skill/x"]}\n{oops\n', encoding="utf-8")
    assert search_main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"esco-search: error: {bad}, line 2: invalid JSON (Expecting property name enclosed in double " \
        "quotes, column 2)\n"  # one line, before any model is loaded
    assert search_main(["eval", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert search_main(["eval", str(csv_path), "--store-threshold", "high"]) == 2
    assert "--store-threshold takes best-f1" in capsys.readouterr().err
    assert search_main(["eval"]) == 2
    assert "give a labelled set" in capsys.readouterr().err


def test_library_api_on_the_same_store(store_env) -> None:
    store = open_store(store_env)
    try:
        idx = LabelIndex.from_store(store, store_env.collection)
        built = build_labelled_set(store, store_env.collection, n=5, seed=1, language="de", index=idx)
        again = build_labelled_set(store, store_env.collection, n=5, seed=1, language="de")
        with pytest.raises(LabelledSetError, match="language 'fr' is not in collection"):
            build_labelled_set(store, store_env.collection, language="fr", index=idx)
    finally:
        store.close()
    assert len(built) == 5 and built.info["language"] == "de"
    assert built.name == "esco-alt-labels-de-n5-seed1"
    # deterministic for a seed
    assert [(q.query, q.relevant) for q in again.queries] == [(q.query, q.relevant) for q in built.queries]


def test_alias_switched_during_the_run_stores_into_the_evaluated_collection(
    tmp_path: Path, minilm_path: str, encoder, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Defect 3b: the threshold went into whatever the alias served at the end, not the collection evaluated."""
    settings = make_settings(tmp_path / "two", "edge", model=minilm_path)
    first = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False).collection
    second = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False).collection
    assert first != second
    store = open_store(settings)
    try:
        store.switch_alias(settings.collection, first)
        built = build_labelled_set(store, settings.collection, n=8, seed=2, language="en")
    finally:
        store.close()
    labelled = tmp_path / "alt.jsonl"
    from search.evaluation import write_labelled_jsonl

    write_labelled_jsonl(built, labelled)
    monkeypatch.chdir(tmp_path)
    for key, value in {"ESCO_QDRANT_PATH": str(settings.qdrant_path), "ESCO_EMBEDDED_ENGINE": "edge",
                       "ESCO_MODEL": minilm_path, "ESCO_COLLECTION": settings.collection,
                       "ESCO_DEVICE": "cpu", "ESCO_PRECISION": "fp32"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("search.service.load_encoder", lambda s: encoder)

    original = SkillSearch.search_batch
    switched: list[str] = []

    def search_then_switch(self, texts, **kw):
        hits = original(self, texts, **kw)
        if not switched:  # an ingest elsewhere switches the alias while the evaluation runs
            self.store.switch_alias(settings.collection, second)
            switched.append(second)
        return hits

    monkeypatch.setattr(SkillSearch, "search_batch", search_then_switch)
    rc = main([str(labelled), "--json", "--no-report", "--batch-size", "3", "--store-threshold", "0.37"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert switched == [second]
    out = json.loads(captured.out)
    assert out["resolved_collection"] == first
    assert out["languages"] == ["en", "de"]  # the evaluated collection's, not the one switched to
    assert out["n_queries"] == 8
    # every chunk searched the pinned collection: the index still equals the exact reference over it
    assert all(v == pytest.approx(1.0) for v in out["ratio"].values() if v is not None), out["ratio"]
    assert out["stored_threshold"]["collection"] == first
    assert out["stored_threshold"]["alias_now_serves"] == second
    assert f"the threshold went into {first!r}" in captured.err
    store = open_store(settings)
    try:
        assert store.resolve_alias(settings.collection) == second
        assert store.get_metadata(first)["score_threshold"] == pytest.approx(0.37)
        assert "score_threshold" not in store.get_metadata(second)
    finally:
        store.close()


def test_modes_are_checked(store_env, tmp_path: Path, capsys) -> None:
    labelled = tmp_path / "one.jsonl"
    labelled.write_text(json.dumps({"query": "bake bread", "relevant": [fixtures().SKILL["bread"]]}) + "\n",
                        encoding="utf-8")
    assert main([str(labelled), "--mode", "sparse"]) == 2
    assert "--mode takes dense, hybrid or several of them" in capsys.readouterr().err
    assert main([str(labelled), "--mode", "dense,hybrid", "--store-threshold", "0.5"]) == 2
    assert "--store-threshold calibrates one mode: give one --mode with it, not dense,hybrid" in capsys.readouterr().err
    # a collection written without the hybrid representations: hybrid is refused, naming what is missing
    store = open_store(store_env)
    try:
        target = store.resolve_alias(store_env.collection)
        before = store.get_metadata(target).get("representations")
        store.update_metadata(target, {"representations": {"passage": {"kind": "dense"}}})
    finally:
        store.close()
    try:
        assert main([str(labelled), "--mode", "dense,hybrid", "--no-report"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"collection {target!r} was built without the " in err
        assert "labels" in err and "bm25" in err and "representations that search mode 'hybrid' needs" in err
        assert "re-ingest the release" in err
    finally:
        store = open_store(store_env)
        try:
            store.update_metadata(target, {"representations": before})
        finally:
            store.close()
    # dense, named twice: one report, the mode recorded
    assert main([str(labelled), "--mode", "dense,dense", "--json", "--no-report", "--no-exact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "dense" and out["n_queries"] == 1


def test_targets_documents_and_occupations(store_env, encoder, tmp_path: Path, capsys) -> None:
    fx = fixtures()
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        json.dumps({"text": "We bake bread every morning. We also repair bicycles.",
                    "relevant": [fx.SKILL["bread"]]}) + "\n"
        + json.dumps({"text": "Python scripting for automation.", "relevant": [fx.SKILL["python"]]}) + "\n",
        encoding="utf-8")
    assert main([str(docs), "--target", "documents", "--json", "--no-report"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "documents" and out["documents"] == 2
    assert out["resolved_collection"].startswith(store_env.collection)
    assert 0 < out["extract:max"]["mrr@10"] <= 1
    assert main([str(docs), "--target", "documents", "--store-threshold", "0.5"]) == 2
    assert "--store-threshold calibrates the skill search (--target skills)" in capsys.readouterr().err
    assert main(["--target", "documents"]) == 2
    assert "give a document set" in capsys.readouterr().err
    # occupations: ESCO's own alternative titles, the served title search against its exact reference
    from ingest.occupations import run_occupations

    run_occupations(store_env, [MINI_V11], ["en", "de"], encoder=encoder)
    assert main(["--target", "occupations", "--json", "--report-dir", str(tmp_path / "occ")]) == 0
    occ = json.loads(capsys.readouterr().out)
    assert occ["target"] == "occupations" and occ["queries"] > 0
    assert all(v == pytest.approx(1.0) for v in occ["ratio"].values() if v is not None), occ["ratio"]
    assert json.loads((tmp_path / "occ" / "metrics.json").read_text())["index"] == occ["index"]
    assert occ["mode"] == "hybrid"  # the default where the collection holds the label mean and BM25
    assert main(["--target", "occupations", "--mode", "dense,hybrid", "--json", "--no-report"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["modes"] == ["dense", "hybrid"] and both["hybrid index"] == occ["index"]
    assert all(v == pytest.approx(1.0) for m in both["modes"] for v in both[f"{m} ratio"].values() if v is not None)
    assert set(both["same_top_k"]) == {"dense", "hybrid"}


def test_dense_and_hybrid_side_by_side(store_env, tmp_path: Path, capsys) -> None:
    labelled = tmp_path / "alt.jsonl"
    assert main(["--build-set", str(labelled), "--n", "500", "--seed", "5", "--language", "en"]) == 0
    capsys.readouterr()
    assert main([str(labelled), "--mode", "dense,hybrid", "--json", "--report-dir", str(tmp_path / "r"),
                 "--batch-size", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modes"] == ["dense", "hybrid"]
    dense, fused = out["reports"]
    assert (dense["mode"], fused["mode"]) == ("dense", "hybrid")
    assert dense["n_queries"] == fused["n_queries"] >= 15
    for r in (dense, fused):
        # the exact side of each mode is its own numpy reference: index == exact on the embedded store
        assert all(v == pytest.approx(1.0) for v in r["ratio"].values() if v is not None), (r["mode"], r["ratio"])
        assert r["overlap_at_10"] == pytest.approx(1.0), r["mode"]
        assert (tmp_path / "r" / r["mode"] / "metrics.json").is_file()
    # the queries are alternative labels: exact-label promotion puts each query's skill first in hybrid
    assert fused["metrics"]["accuracy@1"] == pytest.approx(1.0)
    assert fused["metrics"]["mrr@10"] >= dense["metrics"]["mrr@10"]
    # the readable table: both modes side by side with the gain of hybrid over dense
    assert main([str(labelled), "--mode", "dense,hybrid", "--no-report", "--no-exact"]) == 0
    text = capsys.readouterr().out
    assert "modes        dense, hybrid" in text and "x hybrid" in text
