"""search.evaluation: metrics (by hand and against sentence-transformers as the oracle), loaders, calibration, plots."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.errors import InvalidQuery, SearchError
from search.evaluation import (
    METRIC_ORDER,
    LabelIndex,
    LabelledSetError,
    calibrate,
    ir_metrics,
    load_labelled,
    plot_calibration,
)

A = "http://data.europa.eu/esco/skill/aaaa"
B = "http://data.europa.eu/esco/skill/bbbb"
C = "http://data.europa.eu/esco/skill/cccc"
D = "http://data.europa.eu/esco/skill/dddd"


# --- metrics by hand -----------------------------------------------------------------------------------
def test_metrics_hand_computed() -> None:
    rankings = [
        ["a", "x", "b", "y", "z"],  # q1: relevant {a, b} at ranks 1 and 3
        ["x", "y", "c"],  # q2: relevant {c} at rank 3
        ["x"],  # q3: relevant {d} never returned
    ]
    relevant = [{"a", "b"}, {"c"}, {"d"}]
    m = ir_metrics(rankings, relevant)
    assert list(m) == METRIC_ORDER
    # accuracy@1: only q1 has a relevant first hit -> 1/3; @3: q1 and q2 -> 2/3
    assert m["accuracy@1"] == pytest.approx(1 / 3)
    assert m["accuracy@3"] == pytest.approx(2 / 3)
    assert m["accuracy@10"] == pytest.approx(2 / 3)
    # precision@1: (1 + 0 + 0) / 3; precision@3: (2/3 + 1/3 + 0) / 3; precision@10 divides by 10 even when
    # fewer hits were returned: (2/10 + 1/10 + 0) / 3
    assert m["precision@1"] == pytest.approx(1 / 3)
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["precision@10"] == pytest.approx(0.1)
    # recall@1: q1 found 1 of its 2 -> (1/2 + 0 + 0) / 3; recall@3: (1 + 1 + 0) / 3
    assert m["recall@1"] == pytest.approx(1 / 6)
    assert m["recall@3"] == pytest.approx(2 / 3)
    # mrr@10: (1/1 + 1/3 + 0) / 3
    assert m["mrr@10"] == pytest.approx(4 / 9)
    # ndcg@5: q1 DCG = 1/log2(2) + 1/log2(4) = 1.5, IDCG over its 2 relevant = 1 + 1/log2(3);
    #         q2 DCG = 1/log2(4) = 0.5, IDCG = 1; q3 0
    q1 = 1.5 / (1 + 1 / math.log2(3))
    assert m["ndcg@5"] == pytest.approx((q1 + 0.5 + 0) / 3)
    # map@100: q1 (1/1 + 2/3) / min(100, 2); q2 (1/3) / 1; q3 0
    assert m["map@100"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3 + 0) / 3)


def test_map_divides_by_min_k_and_relevant() -> None:
    # map@1 of [a] with 3 relevant ids: precision 1/1 at rank 1, divided by min(1, 3) = 1 -> 1.0
    m = ir_metrics([["a", "b"]], [{"a", "b", "c"}], map_at=(1, 2, 100))
    assert m["map@1"] == 1.0
    assert m["map@2"] == 1.0  # (1/1 + 2/2) / min(2, 3)
    assert m["map@100"] == pytest.approx(2 / 3)  # (1 + 1) / min(100, 3)


def test_queries_without_relevant_are_skipped_and_errors() -> None:
    assert ir_metrics([["a"], ["b"]], [{"a"}, set()])["accuracy@1"] == 1.0
    with pytest.raises(ValueError):
        ir_metrics([["a"]], [set()])
    with pytest.raises(ValueError):
        ir_metrics([["a"]], [{"a"}, {"b"}])


# --- metrics against InformationRetrievalEvaluator (the oracle) -----------------------------------------
def _oracle(rankings: list[list[str]], relevant: list[set[str]], **ks: list[int]) -> dict[str, float]:
    """sentence-transformers' own compute_metrics on the same rankings (strictly decreasing scores keep the order)."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # older layout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sentence_transformers.evaluation import InformationRetrievalEvaluator
    corpus = {d: d for r in rankings for d in r} | {d: d for rel in relevant for d in rel}
    queries = {f"q{i}": f"query {i}" for i in range(len(rankings))}
    rel_docs = {f"q{i}": set(rel) for i, rel in enumerate(relevant)}
    ev = InformationRetrievalEvaluator(queries, corpus, rel_docs, write_csv=False, **ks)
    # the evaluator keeps only queries with relevant docs, in order: align our results with its query ids
    by_qid = {f"q{i}": [{"corpus_id": d, "score": 1.0 - j / 1000} for j, d in enumerate(r)]
              for i, r in enumerate(rankings)}
    scores = ev.compute_metrics([by_qid[qid] for qid in ev.queries_ids])
    out = {}
    for name, per_k in scores.items():
        for k, v in per_k.items():
            out[name.replace("@k", f"@{k}")] = float(v)
    return out


KS = dict(accuracy_at_k=[1, 3, 5, 10], precision_recall_at_k=[1, 3, 5, 10], mrr_at_k=[10], ndcg_at_k=[5, 10],
          map_at_k=[100])


def _ours(rankings, relevant):
    return ir_metrics(rankings, relevant, accuracy_at=(1, 3, 5, 10), precision_recall_at=(1, 3, 5, 10),
                      mrr_at=(10,), ndcg_at=(5, 10), map_at=(100,))


def test_matches_oracle_on_fixed_case() -> None:
    rankings = [["a", "x", "b", "y", "z"], ["x", "y", "c"], ["x"], [f"n{i}" for i in range(30)] + ["e"]]
    relevant = [{"a", "b"}, {"c"}, {"d"}, {"e", "n3", "n25", "f"}]
    ours, theirs = _ours(rankings, relevant), _oracle(rankings, relevant, **KS)
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k] == pytest.approx(theirs[k], abs=1e-12), k


DOCS = [f"d{i}" for i in range(25)]


@settings(max_examples=60, deadline=None)
@given(st.lists(
    st.tuples(
        st.lists(st.sampled_from(DOCS), unique=True, max_size=20),
        st.sets(st.sampled_from(DOCS), min_size=1, max_size=6),
    ),
    min_size=1, max_size=8,
))
def test_matches_oracle_on_random_rankings(cases: list[tuple[list[str], set[str]]]) -> None:
    rankings = [r for r, _ in cases]
    relevant = [rel for _, rel in cases]
    ks = dict(accuracy_at_k=[1, 2, 5], precision_recall_at_k=[1, 4, 10], mrr_at_k=[3, 10], ndcg_at_k=[2, 10],
              map_at_k=[3, 100])
    ours = ir_metrics(rankings, relevant, accuracy_at=(1, 2, 5), precision_recall_at=(1, 4, 10), mrr_at=(3, 10),
                      ndcg_at=(2, 10), map_at=(3, 100))
    theirs = _oracle(rankings, relevant, **ks)
    assert set(ours) == set(theirs)
    for k in ours:
        assert ours[k] == pytest.approx(theirs[k], abs=1e-12), k


# --- loaders -------------------------------------------------------------------------------------------
@pytest.fixture
def index() -> LabelIndex:
    return LabelIndex.from_records([
        (A, "en", "bake bread", ["make bread", "produce bread"]),
        (A, "de", "Brot backen", ["Brot herstellen"]),
        (B, "en", "repair bicycles", ["fix bikes"]),
        (C, "en", "accounting", ["bookkeeping"]),
        (D, "en", "keep financial records", ["bookkeeping"]),  # an alt label of two skills
    ])


def test_jsonl(tmp_path: Path, index: LabelIndex) -> None:
    p = tmp_path / "set.jsonl"
    p.write_text(
        json.dumps({"query": "baking", "relevant": [A]}) + "\n\n"
        + json.dumps({"query": "bikes", "relevant": B, "note": "extra keys are ignored"}) + "\n"
        + json.dumps({"query": "gone", "relevant": ["http://data.europa.eu/esco/skill/none"]}) + "\n",
        encoding="utf-8",
    )
    ls = load_labelled(p, index=index)
    assert [(q.query, set(q.relevant), q.line) for q in ls.queries] == [("baking", {A}, 1), ("bikes", {B}, 3)]
    assert ls.dropped_queries == 1
    assert ls.unresolved == [{"line": 4, "label": "http://data.europa.eu/esco/skill/none"}]
    assert ls.summary()["unresolved"] == 1
    # without an index URIs are taken as they are
    assert len(load_labelled(p)) == 3


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: invalid JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ('{"query": "", "relevant": ["x"]}', "line 2: 'query' must be a non-empty string"),
    ('{"query": "q", "relevant": []}', "line 2: 'relevant' must be a non-empty list"),
    ('{"query": "q"}', "line 2: 'relevant' must be a non-empty list"),
])
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"query": "ok", "relevant": [A]}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match=message) as exc:
        load_labelled(p)
    assert str(p) in str(exc.value)
    assert exc.value.line == 2
    assert isinstance(exc.value, InvalidQuery) and isinstance(exc.value, SearchError)


def test_csv_labels_resolved(tmp_path: Path, index: LabelIndex) -> None:
    p = tmp_path / "set.csv"
    p.write_text(
        "id,query,relevant\n"
        "1,Brot und Brötchen backen,Bake  Bread\n"  # case and blanks ignored
        "2,\"fahrräder, reparieren\",repair bicycles|bake bread\n"  # two labels
        "3,zahlen,Brot backen; no such skill\n"  # German preferred label + an unknown one
        "4,fix my bike,fix bikes\n"  # an alternative label: resolved and reported
        "5,books,bookkeeping\n"  # alternative label of two skills: both relevant, reported
        "6,nothing,unknown label\n",  # nothing resolves: dropped, reported
        encoding="utf-8",
    )
    ls = load_labelled(p, index=index)
    got = {q.line: set(q.relevant) for q in ls.queries}
    assert got == {2: {A}, 3: {A, B}, 4: {A}, 5: {B}, 6: {C, D}}
    assert ls.dropped_queries == 1
    assert ls.unresolved == [{"line": 4, "label": "no such skill"}, {"line": 7, "label": "unknown label"}]
    assert [r["label"] for r in ls.resolved_by_alt_label] == ["fix bikes", "bookkeeping"]
    assert ls.ambiguous_labels[0]["uris"] == sorted([C, D])


def test_repeated_query_rows_are_one_query(tmp_path: Path, index: LabelIndex) -> None:
    """A set with one row per labelled span (the job-ad sets) repeats a sentence: its skills are the union."""
    p = tmp_path / "spans.csv"
    p.write_text(
        "sentence,span,label\n"
        "We bake and fix bikes,bake,bake bread\n"
        "Keep the books,books,LABEL NOT PRESENT\n"  # an unresolved first row ...
        "We bake and fix bikes,fix bikes,repair bicycles\n"
        "Keep the books,books,accounting\n"  # ... then a resolved one: kept, at its first line
        "Only markers,x,UNDERSPECIFIED\n",
        encoding="utf-8",
    )
    ls = load_labelled(p, index=index, query_column="sentence")
    assert [(q.query, set(q.relevant), q.line) for q in ls.queries] == [
        ("We bake and fix bikes", {A, B}, 2), ("Keep the books", {C}, 3)]
    assert ls.merged_rows == 2 and ls.dropped_queries == 1
    assert ls.summary()["merged_rows"] == 2


def test_tsv_and_custom_columns(tmp_path: Path, index: LabelIndex) -> None:
    p = tmp_path / "set.tsv"
    p.write_text("text\tskill\nbake some bread\tbake bread\nbikes\t" + B + "\n", encoding="utf-8")
    ls = load_labelled(p, index=index, query_column="text", label_column="skill")
    assert [set(q.relevant) for q in ls.queries] == [{A}, {B}]
    p2 = tmp_path / "label.csv"
    p2.write_text("Query,Label\nbread,bake bread\n", encoding="utf-8")  # default 'label' column, any case
    assert len(load_labelled(p2, index=index)) == 1


def test_csv_errors(tmp_path: Path, index: LabelIndex) -> None:
    p = tmp_path / "cols.csv"
    p.write_text("text,skill\nq,bake bread\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match=r"line 1: no query column 'query'.*columns are 'text', 'skill'"):
        load_labelled(p, index=index)
    p.write_text("query,relevant\nq,bake bread\nonly one field\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match="line 3: 1 fields"):
        load_labelled(p, index=index)
    p.write_text("query,relevant\nq, | ;\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match="line 2: no label"):
        load_labelled(p, index=index)
    p.write_text("query,relevant\nq,bake bread\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match="line 2: 'bake bread' is a label, not a concept URI"):
        load_labelled(p)
    p.write_text("query,relevant\nq,nope\n", encoding="utf-8")
    with pytest.raises(LabelledSetError, match="no usable query.*'nope'"):
        load_labelled(p, index=index)
    with pytest.raises(LabelledSetError, match="no such file"):
        load_labelled(tmp_path / "missing.csv", index=index)
    with pytest.raises(LabelledSetError, match="unknown file type"):
        load_labelled(tmp_path / "set.xlsx", index=index)


def test_multiline_csv_reports_physical_line(tmp_path: Path, index: LabelIndex) -> None:
    p = tmp_path / "ml.csv"
    p.write_text('query,relevant\n"two\nlines",bake bread\nq,\n', encoding="utf-8")
    with pytest.raises(LabelledSetError, match="line 4: no label"):
        load_labelled(p, index=index)


# --- calibration ---------------------------------------------------------------------------------------
def _case():
    rankings = [
        [("a", 0.90), ("x", 0.70)],  # relevant a at 0.90
        [("y", 0.82), ("b", 0.80)],  # relevant b at 0.80, beaten by an irrelevant 0.82
        [("z", 0.60), ("w", 0.55)],  # relevant c never returned
    ]
    return rankings, [{"a"}, {"b"}, {"c"}]


def test_calibration_known_best_threshold() -> None:
    # 3 relevant in all. t <= 0.55: 6 predicted, 2 right -> P 1/3, R 2/3, F1 4/9
    # 0.70 < t <= 0.80: {0.90, 0.82, 0.80} -> P 2/3, R 2/3, F1 2/3   <- best, lowest such t on the grid: 0.71
    # 0.80 < t <= 0.82: {0.90, 0.82} -> P 1/2, R 1/3, F1 0.4
    # 0.82 < t <= 0.90: {0.90} -> P 1, R 1/3, F1 1/2                  <- first precision >= 0.9: 0.83
    rankings, relevant = _case()
    cal = calibrate(rankings, relevant, k=10, step=0.01, target_precision=0.9)
    assert cal.thresholds[0] == 0.55 and cal.thresholds[-1] == 0.90
    assert cal.total_relevant == 3
    assert cal.best_f1_threshold == pytest.approx(0.71)
    assert cal.best_f1 == pytest.approx(2 / 3)
    assert cal.best_f1_precision == pytest.approx(2 / 3) and cal.best_f1_recall == pytest.approx(2 / 3)
    assert cal.target_threshold == pytest.approx(0.83)
    assert cal.target_precision_reached == 1.0 and cal.target_recall == pytest.approx(1 / 3)
    row = {round(r["threshold"], 2): r for r in cal.rows()}
    assert row[0.55]["predicted"] == 6 and row[0.55]["f1"] == pytest.approx(4 / 9)
    assert row[0.81]["precision"] == pytest.approx(0.5)
    assert sorted(cal.relevant_scores) == [0.80, 0.90]
    # a lower target is met by the best-F1 band already
    assert calibrate(rankings, relevant, step=0.01, target_precision=0.6).target_threshold == pytest.approx(0.71)


def test_calibration_k_and_unreachable_target() -> None:
    rankings, relevant = _case()
    # with k=1 only the first hit counts: 0.90 (right), 0.82 (wrong), 0.60 (wrong)
    cal = calibrate(rankings, relevant, k=1, step=0.01)
    assert len(cal.relevant_scores) == 1 and len(cal.other_scores) == 2
    bad = calibrate([[("x", 0.9)], [("y", 0.8)]], [{"a"}, {"b"}], step=0.05)
    assert bad.target_threshold is None and bad.best_f1 == 0.0
    with pytest.raises(ValueError):
        calibrate([[]], [{"a"}])


def test_plots_are_pngs(tmp_path: Path) -> None:
    rankings, relevant = _case()
    paths = plot_calibration(calibrate(rankings, relevant, step=0.01), tmp_path / "plots", title="t")
    assert [p.name for p in paths] == ["score_distributions.png", "threshold_curves.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 5000


# --- exact reference rankings ----------------------------------------------------------------------------
class _VectorStore:
    """Just what ExactIndex.from_store reads: a scroll of points with vectors and payloads."""

    def __init__(self, points):
        self.points = points

    def scroll(self, name, with_vectors=False, with_payload=True, batch_size=1000):
        for p in self.points:
            payload = p.payload if with_payload is True else {k: p.payload[k] for k in with_payload
                                                                  if k in p.payload}
            yield type(p)(p.id, payload, p.vector if with_vectors else None)


def _brute_force(uris, vectors, queries, limit, keep=None):
    """float64, one point at a time, the best point per concept, ties by first appearance: the reference."""
    m = np.asarray(vectors, dtype=np.float64)
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    out = []
    for q in np.asarray(queries, dtype=np.float64):
        q = q / np.linalg.norm(q)
        best: dict[str, float] = {}
        for i, (u, v) in enumerate(zip(uris, m)):
            if keep is not None and not keep(i):
                continue
            s = float(v @ q)
            if u not in best or s > best[u]:
                best[u] = s
        first = {u: i for i, u in reversed(list(enumerate(uris)))}
        out.append(sorted(best.items(), key=lambda kv: (-kv[1], first[kv[0]]))[:limit])
    return out


@pytest.mark.parametrize("per_concept", [1, 3])
def test_exact_rankings_equal_brute_force_and_leave_inputs_alone(per_concept: int) -> None:
    from search.evaluation import ExactIndex, exact_rankings
    from search.stores import StoredPoint

    rng = np.random.default_rng(7)
    n_concepts, dim = 50, 16
    uris = [f"http://data.europa.eu/esco/skill/{i:04d}" for i in range(n_concepts) for _ in range(per_concept)]
    order = rng.permutation(len(uris))  # the points of one concept scattered over the scroll
    uris = [uris[i] for i in order]
    langs = [("en", "de", "fr")[i % 3] for i in range(len(uris))]
    vectors = rng.normal(size=(len(uris), dim)).astype(np.float32) * 3  # not normalised
    queries = rng.normal(size=(23, dim)).astype(np.float32)
    q_before, v_before = queries.copy(), vectors.copy()
    points = [StoredPoint(f"id{i}", {"concept_uri": u, "language": lang}, vectors[i].tolist())
              for i, (u, lang) in enumerate(zip(uris, langs))]
    store = _VectorStore(points)

    want = _brute_force(uris, vectors, queries, limit=10)
    for chunk in (None, 1, 4, 100):
        got = list(ExactIndex.from_vectors(uris, vectors).iter_rankings(queries, 10, chunk=chunk))
        assert [[u for u, _ in r] for r in got] == [[u for u, _ in r] for r in want], chunk
        for g, w in zip(got, want):
            assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=1e-5)
    got = exact_rankings(store, "c", queries, limit=10, batch_size=5)
    assert [[u for u, _ in r] for r in got] == [[u for u, _ in r] for r in want]
    # a limit beyond the corpus: every concept once, best first
    everything = exact_rankings(store, "c", queries[:2], limit=1000)
    assert all(len(r) == n_concepts for r in everything)
    assert [u for u, _ in everything[0]] == [u for u, _ in _brute_force(uris, vectors, queries[:1], 1000)[0]]
    # a filter: only German passages count, the same rule as Filter.matches
    de = exact_rankings(store, "c", queries, limit=7, filters={"language": "de"}, languages_available=["en", "de", "fr"])
    assert [[u for u, _ in r] for r in de] == [
        [u for u, _ in r] for r in _brute_force(uris, vectors, queries, 7, keep=lambda i: langs[i] == "de")]
    # nothing changed the caller's arrays (the old code normalised float64 queries in place)
    q64 = queries.astype(np.float64)
    q64_before = q64.copy()
    assert [[u for u, _ in r] for r in exact_rankings(store, "c", q64, limit=10)] == [[u for u, _ in r] for r in want]
    np.testing.assert_array_equal(q64, q64_before)
    np.testing.assert_array_equal(queries, q_before)
    np.testing.assert_array_equal(vectors, v_before)
    assert queries.dtype == np.float32


def test_exact_index_edges() -> None:
    from search.evaluation import ExactIndex, exact_rankings

    empty = exact_rankings(_VectorStore([]), "c", np.ones((3, 4), np.float32))
    assert empty == [[], [], []]
    idx = ExactIndex.from_vectors(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert idx.matrix.dtype == np.float32 and len(idx) == 2
    assert idx.rankings(np.array([[0.0, 2.0]]), limit=5) == [[("b", 1.0), ("a", 0.0)]]
    with pytest.raises(ValueError, match="2 concept URIs for 3 vectors"):
        ExactIndex.from_vectors(["a", "b"], np.ones((3, 2)))
    with pytest.raises(ValueError, match="2-d array"):
        idx.rankings(np.ones(2))


def test_modes_side_by_side_table() -> None:
    from search.evaluation import EvalReport, format_comparison, format_report

    cal = calibrate([[("a", 0.9), ("b", 0.5)]], [{"a"}], step=0.05)

    def rep(mode: str, v: float, r: float) -> EvalReport:
        m = {"accuracy@1": v, "mrr@10": v / 2}
        return EvalReport("esco_skills", "esco_skills__v1", 1, 100, {}, m, m, {k: r for k in m}, 1.0, cal,
                          {"name": "alt.jsonl"}, mode=mode)

    text = format_comparison([rep("dense", 0.5, 1.0), rep("hybrid", 0.7, 0.98)])
    lines = text.splitlines()
    assert "modes        dense, hybrid (x: against dense)" in lines
    head = next(ln for ln in lines if ln.startswith("metric"))
    assert head.split() == ["metric", "dense", "ratio", "hybrid", "ratio", "x", "hybrid", "model", "card"]
    assert next(ln for ln in lines if ln.startswith("accuracy@1")).split() == \
        ["accuracy@1", "0.5000", "1.000", "0.7000", "0.980", "1.400", "0.8582"]
    assert text.count("mode hybrid") == 1 and text.count("mode dense") == 1
    assert format_comparison([rep("dense", 0.5, 1.0)]) == format_report(rep("dense", 0.5, 1.0))
