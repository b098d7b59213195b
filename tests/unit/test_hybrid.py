"""search.hybrid: label keys, BM25 terms, modes, and the numpy reference against Qdrant's own engine."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from search import hybrid as h
from search.hybrid_reference import ExactIndex

qe = pytest.importorskip("qdrant_edge")


# --- labels and modes -----------------------------------------------------------------------------------
def test_label_key_applies_the_cleaning_rule_and_casefolds() -> None:
    assert h.label_key("  Java (Computer\u00adProgramming) ") == "java (computerprogramming)"
    assert h.label_key("Stra\u00dfe\u200b  bauen") == "strasse bauen"
    assert h.label_key("manage\tmusical\n staff") == "manage musical staff"


def test_skill_labels_dedupe_by_key_keep_the_preferred_first() -> None:
    labels = h.skill_labels("Manage staff", ["manage  STAFF", "lead staff", ""], ["Lead staff", "staff mgmt"])
    assert labels == ["Manage staff", "lead staff", "staff mgmt"]
    assert h.label_keys(labels) == ["manage staff", "lead staff", "staff mgmt"]


def test_check_mode_and_refusal_name_the_fix() -> None:
    assert h.check_mode(" Hybrid ") == "hybrid"
    with pytest.raises(ValueError, match="dense, hybrid"):
        h.check_mode("sparse")
    old = {"model": "m"}  # written before hybrid search: the passage only
    assert h.missing_representations("dense", old) == ()
    assert h.missing_representations("hybrid", old) == ("pref", "labels", "bm25")
    msg = h.mode_refusal("hybrid", old, "esco__v1")
    assert msg is not None and "pref, labels, bm25" in msg and "re-ingest" in msg and "mode='dense'" in msg
    assert h.missing_representations("hybrid", {"representations": {"passage": {}, "pref": {}, "labels": {}}}) == ("bm25",)
    full = {"representations": {"passage": {}, "pref": {}, "labels": {}, "bm25": {}}}
    assert h.mode_refusal("hybrid", full, "c") is None


def test_default_mode_is_the_best_the_collection_was_built_for() -> None:
    from search.errors import SearchError
    from search.modes import resolve_mode

    full = {"representations": {"passage": {}, "pref": {}, "labels": {}, "bm25": {}}}
    passage_only = {"representations": {"passage": {}}}
    assert h.DEFAULT_MODE == "hybrid"
    assert resolve_mode(None, None, full, "c") == "hybrid"
    assert resolve_mode(None, None, passage_only, "c") == "dense"  # ESCO_REPRESENTATIONS=dense
    assert resolve_mode(None, None, {"model": "m"}, "c") == "dense"  # written before hybrid search
    assert resolve_mode(None, "dense", full, "c") == "dense"  # the setting wins over the default
    assert resolve_mode("dense", "hybrid", full, "c") == "dense"  # and a call's mode over the setting
    with pytest.raises(SearchError, match="re-ingest"):  # asked for, never silently downgraded
        resolve_mode("hybrid", None, passage_only, "c")
    with pytest.raises(SearchError, match="re-ingest"):
        resolve_mode(None, "hybrid", passage_only, "c")


def test_a_calibrated_threshold_applies_to_its_own_mode() -> None:
    from search.modes import mode_threshold

    legacy = {"score_threshold": 0.8}  # calibrated before modes existed: taken as it is
    assert mode_threshold(None, legacy, "hybrid") == 0.8
    dense_only = {"score_threshold": 0.8, "calibration": {"mode": "dense"}, "score_thresholds": {"dense": 0.8}}
    assert mode_threshold(None, dense_only, "dense") == 0.8
    assert mode_threshold(None, dense_only, "hybrid") is None  # another mode's scores: not applied
    both = {**dense_only, "score_thresholds": {"dense": 0.8, "hybrid": 0.87}}
    assert mode_threshold(None, both, "hybrid") == 0.87 and mode_threshold(None, both, "dense") == 0.8
    assert mode_threshold(0.3, both, "hybrid") == 0.3  # ESCO_SCORE_THRESHOLD wins
    assert mode_threshold(None, {}, "dense") is None


def test_fusion_params_are_checked() -> None:
    with pytest.raises(ValueError, match="2 weights for 3"):
        h.FusionParams(weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="k must be >= 1"):
        h.FusionParams(k=0)


# --- BM25 -----------------------------------------------------------------------------------------------
def test_bm25_terms_stem_drop_stopwords_and_are_stable() -> None:
    b = h.Bm25Terms("en", avg_len=8.0)
    q = b.query("Repairing the bicycles")
    assert len(q) == 2 and set(q.values) == {1.0}  # repair, bicycl; "the" is a stopword
    assert set(q.indices) <= set(b.document("repair bicycles ; fix bikes").indices)
    assert b.query("repair bicycle").indices == q.indices  # same stems
    assert h.Bm25Terms("en", avg_len=8.0).describe()["probe"] == b.describe()["probe"]
    # A longer document gets lower weights per term (length normalisation by avg_len).
    short, long = b.document("repair bicycles"), b.document("repair bicycles ; " + " ; ".join(f"w{i}" for i in range(20)))
    assert max(long.values) < min(short.values)


def test_bm25_without_a_stemmer_language_still_tokenizes() -> None:
    b = h.Bm25Terms("pl")
    assert h.bm25_language("pl") is None
    assert len(b.query("naprawa rowerów")) == 2


def test_query_bm25_follows_the_metadata_and_refuses_another_hashing() -> None:
    meta = {"representations": {"passage": {}, "bm25": h.bm25_metadata(["en", "pl"], avg_len=9.0)}}
    t = h.query_bm25(meta)
    assert (t.language, t.avg_len) == ("en", 9.0)
    assert h.query_bm25(meta, "pl").language == "pl"
    with pytest.raises(ValueError, match="not 'de'"):
        h.query_bm25(meta, "de")
    meta["representations"]["bm25"]["languages"]["en"]["probe"] = [1, 2, 3]
    with pytest.raises(ValueError, match="re-ingest"):
        h.query_bm25(meta)
    with pytest.raises(ValueError, match="no bm25"):
        h.query_bm25({"representations": {"passage": {}}})


def test_idf_is_qdrants_formula() -> None:
    assert h.idf([1], 5)[0] == pytest.approx(np.log(4.0))
    assert h.idf([2], 5)[0] == pytest.approx(np.log(2.4))


def test_rrf_position_score_is_qdrants_weighted_formula() -> None:
    assert h.rrf_position_score(0, 10) == pytest.approx(1 / 10)
    assert h.rrf_position_score(3, 10) == pytest.approx(1 / 13)
    assert h.rrf_position_score(1, 10, 0.25) == pytest.approx(1 / (2 / 0.25 + 9))
    fused = h.rrf_fuse([["a", "b"], ["b", "c"]], k=2)
    assert fused == pytest.approx({"a": 1 / 2, "b": 1 / 3 + 1 / 2, "c": 1 / 3})


# --- the reference against the engine -------------------------------------------------------------------
WORDS = ["repair", "bicycle", "cook", "pasta", "manage", "staff", "python", "program", "weld", "metal",
         "teach", "math", "drive", "truck", "sell", "product", "write", "report", "clean", "kitchen"]


def _corpus(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        labels = [" ".join(rng.choice(WORDS, size=rng.integers(1, 4), replace=False)) for _ in range(rng.integers(1, 5))]
        labels = h.skill_labels(labels[0], labels[1:])
        rows = rng.normal(size=(len(labels), d)).astype(np.float32)
        points.append({
            "id": str(uuid.UUID(int=i + 1)),
            "passage": rng.normal(size=d).astype(np.float32),
            "pref": rows[0] + 0.5 * rng.normal(size=d).astype(np.float32),
            "labels": rows,
            "text": h.bm25_document(labels),
            "payload": {h.LABEL_KEYS_FIELD: h.label_keys(labels), "group": "ab"[i % 2]},
        })
    return points


def _shard(tmp: Path, points, bm25: h.Bm25Terms, d: int):
    cfg = qe.EdgeConfig(
        vectors={
            h.PASSAGE: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine),
            h.PREF: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine),
            h.LABELS: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine,
                                          multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)),
        },
        sparse_vectors={h.BM25: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        wal_enabled=False,
    )
    shard = qe.EdgeShard.create(str(tmp / "shard"), cfg)
    for f in (h.LABEL_KEYS_FIELD, "group"):
        shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Keyword))
    batch = []
    for p in points:
        t = bm25.document(p["text"], p["id"])
        batch.append(qe.Point(p["id"], {h.PASSAGE: p["passage"].tolist(), h.PREF: p["pref"].tolist(),
                                        h.LABELS: p["labels"].tolist(),
                                        h.BM25: qe.SparseVector(list(t.indices), list(t.values))}, p["payload"]))
    shard.update(qe.UpdateOperation.upsert_points(batch))
    return shard


def _engine_hybrid(shard, q, text, bm25: h.Bm25Terms, fusion: h.FusionParams, flt, limit: int):
    """The served request shape (docs/hybrid.md): RRF over one prefetch per representation, promotion by Formula."""
    terms = bm25.query(text)
    L = fusion.prefetch_limit
    legs = {
        h.PASSAGE: qe.Prefetch(limit=L, query=qe.Query.Nearest(q.tolist(), using=h.PASSAGE)),
        h.PREF: qe.Prefetch(limit=L, query=qe.Query.Nearest(q.tolist(), using=h.PREF)),
        h.BM25: qe.Prefetch(limit=L, query=qe.Query.Nearest(qe.SparseVector(list(terms.indices), list(terms.values)), using=h.BM25)),
    }
    # the labels leg: MaxSim over the candidates of its candidate legs (or over every point)
    legs[h.LABELS] = qe.Prefetch(limit=L, query=qe.Query.Nearest([q.tolist()], using=h.LABELS),
                                 prefetches=[legs[r] for r in fusion.labels_candidates] or None)
    # the fused prefetch keeps every candidate (the union of the legs), so promotion sees their fused scores
    rrf = qe.Prefetch(limit=L * len(fusion.representations), query=qe.Fusion.Rrf(k=fusion.k, weights=list(fusion.weights)),
                      prefetches=[legs[r] for r in fusion.representations])
    cond = qe.FieldCondition(key=h.LABEL_KEYS_FIELD, match=qe.MatchAny(any=[h.label_key(text)]))
    exact = qe.Prefetch(limit=limit, query=qe.Query.Nearest(q.tolist(), using=h.PASSAGE), filter=qe.Filter(must=[cond]))
    E = qe.Expression
    formula = qe.Formula(E.Sum([E.Variable("$score[0]"), E.Mult([E.Constant(h.PROMOTION_BOOST), E.Condition(cond)])]),
                         defaults={"$score[0]": 0.0})
    req = qe.QueryRequest(limit=limit, query=formula, prefetches=[rrf, exact], filter=flt, with_payload=False)
    return [(str(p.id), float(p.score)) for p in shard.query(req)]


def _engine_and_reference(tmp: Path, n: int, d: int, seed: int = 0):
    """A corpus of ``n`` points, in an edge shard and in the numpy reference: (points, bm25, shard, reference)."""
    points = _corpus(n, d, seed=seed)
    bm25 = h.Bm25Terms("en", avg_len=5.0)
    shard = _shard(tmp, points, bm25, d)
    ix = ExactIndex.from_points(
        (p["id"], {h.PASSAGE: p["passage"], h.PREF: p["pref"], h.LABELS: p["labels"],
                   h.BM25: bm25.document(p["text"], p["id"])}, p["payload"])
        for p in points
    )
    return points, bm25, shard, ix


FUSIONS = {
    "labels rescoring": h.FusionParams(k=10, weights=(1.0, 0.9, 0.4), prefetch_limit=30),
    "labels scan, 4 legs": h.FusionParams(representations=(h.PASSAGE, h.PREF, h.LABELS, h.BM25), labels_candidates=(),
                                          k=5, weights=(1.0, 0.7, 0.9, 0.4), prefetch_limit=20),
}


@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("fusion_name", sorted(FUSIONS))
def test_reference_equals_the_engine(tmp_path: Path, filtered: bool, fusion_name: str) -> None:
    fusion = FUSIONS[fusion_name]
    d, n = 16, 300
    points, bm25, shard, ix = _engine_and_reference(tmp_path, n, d)
    flt = qe.Filter(must=[qe.FieldCondition(key="group", match=qe.MatchAny(any=["a"]))]) if filtered else None
    mask = np.array([p["payload"]["group"] == "a" for p in points]) if filtered else None
    rng = np.random.default_rng(1)
    promoted = 0
    for j in range(25):
        q = rng.normal(size=d).astype(np.float32)
        # every fifth query is exactly some point's label (in another case and spacing)
        text = points[j * 7]["text"].split(" ; ")[0].upper() if j % 5 == 0 else " ".join(rng.choice(WORDS, 3))
        deeper = ix.search("hybrid", q, text, bm25=bm25, mask=mask, limit=100, fusion=fusion)
        ref = deeper[:10]
        got = _engine_hybrid(shard, q, text, bm25, fusion, flt, 10)
        assert [r.fused for r in ref] == pytest.approx([s for _, s in got], rel=1e-5)
        # Same ids; where fused scores tie (also across the cut at 10), the engine's order is arbitrary.
        by_score_ref: dict[float, set[str]] = {}
        for r in deeper:
            by_score_ref.setdefault(round(r.fused, 5), set()).add(r.id)
        for pid, s in got:
            assert pid in by_score_ref[round(s, 5)]
        if ref and ref[0].fused >= h.PROMOTION_BOOST:
            promoted += 1
            assert h.label_key(text) in points[int(uuid.UUID(ref[0].id)) - 1]["payload"][h.LABEL_KEYS_FIELD]
    assert promoted >= (2 if filtered else 5)
    shard.close()


@pytest.mark.parametrize("fusion_name", ["default", "equal weights"])
def test_default_fusion_has_no_ties_so_the_engine_orders_like_the_reference(tmp_path: Path, fusion_name: str) -> None:
    """With equal weights a swap of positions between two legs ties two points, and the engine orders tied fused
    scores arbitrarily (differently per process); the default's weights differ by 0.001, which orders them."""
    fusion = h.HYBRID_FUSION if fusion_name == "default" else h.FusionParams(weights=(1.0, 1.0, 1.0))
    d, n = 16, 300
    points, bm25, shard, ix = _engine_and_reference(tmp_path, n, d, seed=5)
    rng = np.random.default_rng(2)
    tied_queries = 0
    for _ in range(20):
        q = rng.normal(size=d).astype(np.float32)
        text = " ".join(rng.choice(WORDS, 2))
        deeper = ix.search("hybrid", q, text, bm25=bm25, limit=n, fusion=fusion)
        fused = [round(r.fused, 7) for r in deeper]
        tied_queries += len(set(fused)) < len(fused)
        if fusion_name == "default":
            got = _engine_hybrid(shard, q, text, bm25, fusion, None, 20)
            assert [pid for pid, _ in got] == [r.id for r in deeper[:20]]
    shard.close()
    if fusion_name == "default":
        assert tied_queries == 0
    else:
        assert tied_queries >= 10  # the case the default's weights exist for


def test_dense_reference_and_score_is_a_cosine(tmp_path: Path) -> None:
    d = 8
    points = _corpus(50, d, seed=3)
    ix = ExactIndex.from_points((p["id"], {h.PASSAGE: p["passage"], h.LABELS: p["labels"]}, p["payload"]) for p in points)
    q = np.ones(d, np.float32)
    hits = ix.search("dense", q, limit=5)
    cos = [float(p["passage"] @ q / np.linalg.norm(p["passage"]) / np.linalg.norm(q)) for p in points]
    assert [x.id for x in hits] == [points[i]["id"] for i in np.argsort(cos)[::-1][:5]]
    assert hits[0].score == pytest.approx(max(cos), abs=1e-6)
    lab = ix.representation_scores(h.LABELS, q)
    best = [max(float(r @ q / np.linalg.norm(r) / np.linalg.norm(q)) for r in p["labels"]) for p in points]
    assert lab == pytest.approx(best, abs=1e-5)
