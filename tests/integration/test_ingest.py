"""The ingest worker on the project's mini release, with a real small model, on both embedded engines."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.build import run
from search.schema import KEYWORD_FIELDS, Field, point_id
from search.stores import open_store
from tests.conftest import STORE_KINDS, settings_for
from tests.helpers import MINI_V11, MINI_V12, all_points, fixtures


@pytest.fixture(scope="module", params=STORE_KINDS)
def ingested(request, tmp_path_factory, encoder):
    """The mini release (en + de) ingested once per embedded engine for the whole module."""
    settings = settings_for(request, tmp_path_factory.mktemp(request.param), request.param, encoder.model_name)
    summary = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    store = open_store(settings)
    yield settings, summary, store
    store.close()


def test_one_point_per_skill_and_language_with_deterministic_ids(ingested):
    settings, summary, store = ingested
    fx = fixtures()
    assert summary.skills_read == {"en": 20, "de": 20}
    assert summary.points_written == {"en": 20, "de": 20}
    points = all_points(store, settings.collection)
    assert len(points) == 40
    expected = {point_id(fx.SKILL[k], lang) for k in fx.KEPT_SKILLS for lang in ("en", "de")}
    assert set(points) == expected
    assert store.resolve_alias(settings.collection) == summary.collection


def test_payload_is_complete_and_readable(ingested):
    settings, _, store = ingested
    fx = fixtures()
    (bread,) = store.retrieve(settings.collection, [point_id(fx.SKILL["bread"], "de")])
    p = bread.payload
    assert p[Field.CONCEPT_URI] == fx.SKILL["bread"]
    assert p[Field.PREFERRED_LABEL] == "Brot backen"
    assert p[Field.LANGUAGE] == "de"
    assert p[Field.SKILL_TYPE] == "skill/competence"
    assert p[Field.REUSE_LEVEL] == "sector-specific"
    assert p[Field.STATUS] == "released"
    assert p[Field.ESCO_VERSION] == "v1.1.9"
    assert p[Field.ESSENTIAL_FOR] == [fx.OCCUPATION["baker"]]  # the unknown occupation's relation is dropped
    assert p[Field.OPTIONAL_FOR] == []
    assert p[Field.OCCUPATIONS] == [fx.OCCUPATION["baker"]]
    assert p[Field.ESSENTIAL_FOR_LABELS] == ["Bäcker/Bäckerin"]
    # every ancestor group: S6.3 < S6 < S
    assert set(p[Field.SKILL_GROUPS]) == {fx.GROUP["S6.3"], fx.GROUP["S6"], fx.GROUP["S"]}
    assert "\n" not in p[Field.DESCRIPTION] and p[Field.DESCRIPTION].startswith("Alle Arbeitsschritte")
    assert p[Field.PASSAGE] == f"Brot backen: {p[Field.DESCRIPTION]}"
    (auto,) = store.retrieve(settings.collection, [point_id(fx.SKILL["automate"], "en")])
    assert auto.payload[Field.ALT_LABELS] == ["write Python scripts", "Python scripting", "script automation"]
    assert auto.payload[Field.COLLECTIONS] == ["digital"]
    # skill -> skill broader edge: automate inherits the groups of scripting
    (scripting,) = store.retrieve(settings.collection, [point_id(fx.SKILL["scripting"], "en")])
    assert set(scripting.payload[Field.SKILL_GROUPS]) <= set(auto.payload[Field.SKILL_GROUPS])
    assert fx.SKILL["scripting"] in auto.payload[Field.BROADER]


def test_stored_vector_is_the_prefixed_passage_encoding(ingested, encoder):
    settings, _, store = ingested
    fx = fixtures()
    (pt,) = store.retrieve(settings.collection, [point_id(fx.SKILL["welding_equipment"], "en")], with_vectors=True)
    stored = np.asarray(pt.vector, dtype=np.float32)
    passage = pt.payload[Field.PASSAGE]
    st = encoder._st  # the raw sentence-transformers model: the reference
    prefixed = st.encode([f"passage: {passage}"], normalize_embeddings=True)[0]
    bare = st.encode([passage], normalize_embeddings=True)[0]
    assert float(stored @ prefixed) > 0.99999
    assert float(stored @ bare) < 0.999  # the prompt changes the vector: it was really applied
    assert np.allclose(stored, prefixed, atol=1e-5)


def test_collection_records_what_made_it(ingested, encoder):
    settings, summary, store = ingested
    meta = store.get_metadata(settings.collection)
    assert meta["model"] == encoder.model_name
    assert meta["vector_size"] == encoder.dimension == 384
    assert meta["query_prompt"] == "query: " and meta["passage_prompt"] == "passage: "
    assert meta["esco_version"] == "v1.1.9"
    assert meta["languages"] == ["en", "de"]
    assert meta["status"] == "complete"
    assert meta["points_expected"] == 40
    assert len(meta["probe"]) == 384


def test_keyword_indexes_on_every_filterable_field(ingested):
    settings, _, store = ingested
    indexes = store.payload_indexes(settings.collection)
    if store.kind == "local":
        assert indexes == {}  # qdrant-client's local mode has no payload indexes: it scans
    else:
        assert set(KEYWORD_FIELDS) <= set(indexes)
        assert all(indexes[f] == "keyword" for f in KEYWORD_FIELDS)


def test_rerun_overwrites_never_duplicates_and_reuses_every_vector(embedded_kind, settings_factory, encoder):
    settings = settings_factory(embedded_kind)
    first = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    store = open_store(settings)
    before = all_points(store, settings.collection)
    store.close()
    second = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    assert second.encoded == 0 and second.reused == 40
    assert (second.unchanged, second.changed, second.new, second.removed) == (40, 0, 0, 0)
    store2 = open_store(settings)
    try:
        after = all_points(store2, settings.collection)
        assert store2.resolve_alias(settings.collection) == second.collection != first.collection
    finally:
        store2.close()
    assert set(after) == set(before)
    for pid, (payload, vec) in before.items():
        assert after[pid][0] == payload
        assert np.array_equal(after[pid][1], vec)


def test_both_layouts_give_the_same_points(tmp_path, encoder):
    from tests.conftest import make_settings

    a = make_settings(tmp_path / "a", "edge", model=encoder.model_name)
    b = make_settings(tmp_path / "b", "edge", model=encoder.model_name)
    run(a, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    run(b, [MINI_V12], ["en", "de"], encoder=encoder, progress=False)
    sa, sb = open_store(a), open_store(b)
    try:
        pa, pb = all_points(sa, a.collection), all_points(sb, b.collection)
    finally:
        sa.close()
        sb.close()
    assert set(pa) == set(pb)
    for pid in pa:
        qa = {k: v for k, v in pa[pid][0].items() if k != Field.ESCO_VERSION}
        qb = {k: v for k, v in pb[pid][0].items() if k != Field.ESCO_VERSION}
        assert qa == qb
        assert np.allclose(pa[pid][1], pb[pid][1], atol=1e-6)


def test_zipped_release_reads_like_the_folder(tmp_path, encoder):
    from tests.conftest import make_settings

    zips = fixtures().zip_release("v1.1", tmp_path / "zips")
    s = make_settings(tmp_path, "edge", model=encoder.model_name)
    summary = run(s, zips, ["en"], encoder=encoder, progress=False)
    assert summary.points_written == {"en": 20} and summary.esco_version == "v1.1.9"


class _CountingStore:
    """The real store, with the sizes of the upserts it was asked for."""

    def __init__(self, inner):
        self._inner = inner
        self.upserts: list[int] = []

    def upsert(self, name, points):
        self.upserts.append(len(points))
        return self._inner.upsert(name, points)

    def __getattr__(self, attr):
        return getattr(self._inner, attr)


def test_encoded_points_are_written_in_chunks_of_the_upsert_batch_size(tmp_path, encoder):
    """Encoder batches of 4, writes of 16: one write (and flush) per 16 points, not one per batch."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name, batch_size=4, upsert_batch_size=16)
    store = _CountingStore(open_store(settings))
    try:
        seen: list[int] = []
        s = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, store=store, progress=False,
                after_batch=seen.append)
        assert s.encoded == 40
        assert store.upserts == [16, 16, 8]
        assert seen == [16, 32, 40]
        assert store.count(s.collection) == 40
    finally:
        store.close()


def test_esco_ingest_loads_the_model_once_for_skills_and_occupations(tmp_path, monkeypatch, capsys, encoder):
    """One load for both builds (SharedEncoder); none at all when the release cannot be read."""
    import json

    from ingest.cli import main

    calls: list[object] = []
    monkeypatch.setattr("search.encoding.load.load_encoder", lambda s: calls.append(s) or encoder)
    monkeypatch.setattr("ingest.build.load_encoder", lambda s: pytest.fail("the skills build loaded a model"))
    monkeypatch.setattr("ingest.occupations.load_encoder", lambda s: pytest.fail("the occupations build loaded one"))
    monkeypatch.chdir(tmp_path)  # no developer .env
    for k, v in {"ESCO_QDRANT_PATH": str(tmp_path / "store"), "ESCO_LOCK_DIR": str(tmp_path / "locks"),
                 "ESCO_MODEL": encoder.model_name, "ESCO_REPRESENTATIONS": "dense"}.items():
        monkeypatch.setenv(k, v)

    assert main(["--release", str(tmp_path / "no-such-release"), "--quiet"]) == 2
    assert calls == []  # the release is read before the model loads

    capsys.readouterr()
    assert main(["--release", str(MINI_V11), "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sum(out["points_written"].values()) > 0 and out["occupations"]["encoded"] > 0
    assert len(calls) == 1
