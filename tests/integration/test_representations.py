"""Hybrid collections: every representation written and recorded, and a release upgrade re-encodes only the
representations whose text changed (the mini release: v1.1.9, v1.2.9, and an edited v1.2.10)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.build import run
from search import hybrid
from search.schema import Field, point_id
from search.stores import open_store
from tests.helpers import MINI_V11, MINI_V12, fixtures

NAMES = (hybrid.PASSAGE, hybrid.PREF, hybrid.LABELS, hybrid.BM25)


def _points(settings) -> dict:
    store = open_store(settings)
    try:
        return {p.id: p for p in store.scroll(settings.collection, with_vectors=True)}
    finally:
        store.close()


def _meta(settings) -> dict:
    store = open_store(settings)
    try:
        return store.get_metadata(settings.collection)
    finally:
        store.close()


def _edit(src: Path, dest: Path, edit) -> Path:
    """A copy of the v1.2-layout mini release with ``edit(row)`` applied to every row of skills_en.csv."""
    shutil.copytree(src, dest)
    path = dest / "skills_en.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(edit(dict(r)) for r in rows)
    return dest


def _rows(p) -> np.ndarray:
    return np.asarray(p.vectors[hybrid.LABELS], dtype=np.float32)


def test_every_representation_is_written_and_recorded(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    s = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    assert s.representations == list(NAMES) and s.encoded == s.labels_encoded == 40
    points = _points(settings)
    assert len(points) == 40
    for p in points.values():
        pl = p.payload
        labels = hybrid.skill_labels(pl[Field.PREFERRED_LABEL], pl[Field.ALT_LABELS], pl[Field.HIDDEN_LABELS])
        assert set(p.vectors) == set(NAMES)
        assert np.allclose(p.vectors[hybrid.PASSAGE], encoder.encode_passages([pl[Field.PASSAGE]])[0], atol=1e-5)
        rows = _rows(p)
        encoded = hybrid.label_rows(labels)  # the first MAX_LABEL_ROWS labels; BM25 and the keys take them all
        assert encoded == labels[:hybrid.MAX_LABEL_ROWS] and rows.shape == (len(encoded), encoder.dimension)
        assert np.allclose(rows, encoder.encode_queries(encoded), atol=1e-5)
        assert np.allclose(p.vectors[hybrid.PREF], rows[0], atol=1e-6)  # the preferred label, as a query
        bm25 = p.vectors[hybrid.BM25]
        assert len(bm25.indices) > 0 and all(v > 0 for v in bm25.values)
        assert pl[hybrid.LABEL_KEYS_FIELD] == hybrid.label_keys(labels)
        assert pl["labels_hash"] and pl["bm25_hash"] and pl[Field.TEXT_HASH]
    meta = _meta(settings)
    reps = meta["representations"]
    assert set(reps) == set(NAMES)
    assert reps[hybrid.LABELS]["kind"] == "multivector" and reps[hybrid.LABELS]["prompt"] == encoder.query_prompt
    assert reps[hybrid.PASSAGE]["prompt"] == encoder.passage_prompt
    assert set(reps[hybrid.BM25]["languages"]) == {"en", "de"}
    assert reps[hybrid.BM25]["languages"]["de"]["stemmer"] == "german"
    assert hybrid.mode_refusal(hybrid.HYBRID, meta, "c") is None


def test_a_release_upgrade_reencodes_only_the_representations_whose_text_changed(tmp_path, encoder):
    from tests.conftest import make_settings

    fx = fixtures()
    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    first = _points(settings)

    # v1.1.9 -> v1.2.9: the same texts in the other layout: every representation reused, nothing encoded
    same = run(settings, [MINI_V12], ["en"], encoder=encoder, progress=False)
    assert (same.encoded, same.labels_encoded, same.reused, same.labels_reused) == (0, 0, 20, 20)
    second = _points(settings)
    for pid, p in first.items():
        for name in (hybrid.PASSAGE, hybrid.PREF, hybrid.LABELS):
            assert np.array_equal(np.asarray(second[pid].vectors[name]), np.asarray(p.vectors[name])), (pid, name)

    S = fx.SKILL
    def edit(r):
        if r["conceptUri"] == S["bicycles"]:
            r["description"] += " Also e-bikes."  # passage only
        if r["conceptUri"] == S["research"]:
            r["altLabels"] = "new alternative label\n" + r["altLabels"]  # labels only, among the encoded rows
        if r["conceptUri"] == S["python"]:
            r["altLabels"] += "\nanother python label"  # past the encoded rows: BM25 and keys only
        if r["conceptUri"] == S["bread"]:
            r["preferredLabel"] = "bake breads"  # both
        return r

    third = run(settings, [_edit(MINI_V12, tmp_path / "esco_v1.2.10_csv", edit)], ["en"], encoder=encoder,
                progress=False)
    assert (third.encoded, third.labels_encoded) == (2, 2)
    assert (third.reused, third.labels_reused) == (18, 18)
    after = _points(settings)
    bikes, research, bread = (point_id(S[k], "en") for k in ("bicycles", "research", "bread"))
    for pid in first:
        if pid not in (bikes, bread):
            assert np.array_equal(after[pid].vectors[hybrid.PASSAGE], second[pid].vectors[hybrid.PASSAGE]), pid
        if pid not in (research, bread):
            assert np.array_equal(_rows(after[pid]), _rows(second[pid])), pid
    for pid in (bikes, bread):  # new passages, as a fresh encoding gives them
        fresh = encoder.encode_passages([after[pid].payload[Field.PASSAGE]])[0]
        assert np.allclose(after[pid].vectors[hybrid.PASSAGE], fresh, atol=1e-5)
        assert not np.allclose(after[pid].vectors[hybrid.PASSAGE], second[pid].vectors[hybrid.PASSAGE], atol=1e-3)
    for pid in (research, bread):  # new label rows
        pl = after[pid].payload
        labels = hybrid.skill_labels(pl[Field.PREFERRED_LABEL], pl[Field.ALT_LABELS], pl[Field.HIDDEN_LABELS])
        assert np.allclose(_rows(after[pid]), encoder.encode_queries(hybrid.label_rows(labels)), atol=1e-5)
        assert after[pid].payload["labels_hash"] != second[pid].payload["labels_hash"]
    assert "new alternative label" in after[research].payload[Field.ALT_LABELS]
    # a label past the encoded rows: its rows reused, but BM25 and the exact-label keys hold it
    py = point_id(S["python"], "en")
    assert len(hybrid.skill_labels(after[py].payload[Field.PREFERRED_LABEL],
                                   after[py].payload[Field.ALT_LABELS])) > hybrid.MAX_LABEL_ROWS
    assert np.array_equal(_rows(after[py]), _rows(second[py]))
    assert after[py].payload["labels_hash"] == second[py].payload["labels_hash"]
    assert "another python label" in after[py].payload[hybrid.LABEL_KEYS_FIELD]
    assert after[py].payload["bm25_hash"] != second[py].payload["bm25_hash"]
    assert np.allclose(after[bread].vectors[hybrid.PREF], encoder.encode_queries(["bake breads"])[0], atol=1e-5)


def test_a_dense_collection_upgrades_to_hybrid_reusing_its_passages(tmp_path, encoder):
    from tests.conftest import make_settings

    dense = make_settings(tmp_path, "edge", model=encoder.model_name, representations="dense")
    d = run(dense, [MINI_V11], ["en"], encoder=encoder, progress=False)
    assert d.representations == [hybrid.PASSAGE] and d.labels_encoded == 0
    meta = _meta(dense)
    assert hybrid.mode_refusal(hybrid.HYBRID, meta, d.collection) is not None  # dense only: hybrid refused
    before = _points(dense)
    assert all(p.vectors is None or set(p.vectors) <= {hybrid.PASSAGE} for p in before.values())

    hyb = dense.model_copy(update={"representations": "hybrid"})
    h = run(hyb, [MINI_V12], ["en"], encoder=encoder, progress=False)
    assert (h.encoded, h.reused, h.labels_encoded, h.labels_reused) == (0, 20, 20, 0)
    after = _points(hyb)
    for pid, p in before.items():
        assert np.array_equal(np.asarray(after[pid].vectors[hybrid.PASSAGE], dtype=np.float32),
                              np.asarray(p.vector, dtype=np.float32))
        assert set(after[pid].vectors) == set(NAMES)


@pytest.mark.parametrize("kind", ["local"])
def test_hybrid_collections_on_the_local_engine(tmp_path, encoder, kind):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, kind, model=encoder.model_name)
    s = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    assert s.representations == list(NAMES)
    points = _points(settings)
    assert all(set(p.vectors) == set(NAMES) for p in points.values())
