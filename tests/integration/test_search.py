"""The search module on a real collection: filters proven against brute force, thresholds, grouping,
batches, guards, threads, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ingest.build import run
from search import (
    CollectionNotFound,
    EncoderMismatch,
    InvalidFilter,
    InvalidQuery,
    SkillHit,
    SkillSearch,
)
from search.schema import Field
from search.service import build_filter
from search.stores import open_store
from tests.conftest import STORE_KINDS, settings_for
from tests.helpers import MINI_V11, all_points, brute_force, fixtures

QUERIES = [
    "bake bread and pastries in an oven",
    "write Python programs to automate tasks",
    "Patienten pflegen und betreuen",
    "repair bicycles",
    "keep the books of a company",
]


@pytest.fixture(scope="module", params=STORE_KINDS)
def searcher(request, tmp_path_factory, encoder):
    settings = settings_for(request, tmp_path_factory.mktemp(request.param), request.param, encoder.model_name)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    # The dense mode's contract (brute force over the passage vectors); the collection holds every
    # representation, so a search without a mode would be hybrid (tested below and in test_hybrid_*).
    s = SkillSearch(settings.model_copy(update={"search_mode": "dense"}), encoder=encoder)
    yield s
    s.close()


@pytest.fixture(scope="module")
def stored(searcher):
    return all_points(searcher.store, searcher.collection)


def _ids(hits: list[SkillHit], lang_of: bool = True) -> list[tuple[str, str]]:
    return [(h.concept_uri, h.language) for h in hits]


def _filters():
    fx = fixtures()
    return {
        "skill_type": dict(skill_type="knowledge"),
        "two_skill_types": dict(skill_type=["knowledge", "skill/competence"]),
        "reuse_level": dict(reuse_level="transversal"),
        "occupation_any": dict(occupation=fx.OCCUPATION["baker"]),
        "occupation_essential": dict(occupation=fx.OCCUPATION["baker"], relation="essential"),
        "occupation_optional": dict(occupation=[fx.OCCUPATION["baker"], fx.OCCUPATION["nurse"]], relation="optional"),
        "skill_group": dict(skill_group=fx.GROUP["S"]),
        "collection": dict(collection="digital"),
        "language": dict(language="de"),
        "status": dict(status="released"),
        "combined": dict(skill_type="skill/competence", language="en", occupation=fx.OCCUPATION["data_analyst"]),
    }


@pytest.mark.parametrize("name", list(_filters()))
def test_each_filter_equals_brute_force_over_stored_vectors(searcher, stored, encoder, name):
    kwargs = _filters()[name]
    flt = build_filter(**kwargs)
    for q in QUERIES:
        hits = searcher.search(q, limit=10, threshold=-1.0, one_per_concept=False, **kwargs)
        qv = encoder.encode_queries([q])[0]
        ref = brute_force(stored, qv, flt, limit=10)
        assert [h.concept_uri + "|" + h.language for h in hits] == [
            stored[pid][0][Field.CONCEPT_URI] + "|" + stored[pid][0][Field.LANGUAGE] for pid, _ in ref
        ]
        assert np.allclose([h.score for h in hits], [s for _, s in ref], atol=1e-4)
        # no hit outside the filter ever appears
        for h in hits:
            payload = next(p for p, _ in stored.values() if p[Field.CONCEPT_URI] == h.concept_uri
                           and p[Field.LANGUAGE] == h.language)
            assert flt.matches(payload)
    assert any(searcher.search(q, threshold=-1.0, **kwargs) for q in QUERIES), "the filter matches something"


@pytest.mark.parametrize("name", list(_filters()))
def test_hybrid_under_each_filter_equals_the_fused_reference(searcher, encoder, name):
    """The default mode (hybrid: the collection holds every representation) under every filter: the hits of the
    numpy reference of the fusion, over the same stored vectors, masked by the same filter."""
    from search.evaluation.fused import FusedReference

    # Within one language: the English and German points of a skill can hold the same label ("Python"), which
    # ties them in the labels leg, and the engine orders such a tie its own way (the reference by scroll order),
    # which moves the RRF positions after it. One language per search has no such tie.
    kwargs = {"language": "en", **_filters()[name]}
    s = SkillSearch(searcher.settings.model_copy(update={"search_mode": None}), encoder=encoder, store=searcher.store)
    target = s.store.resolve_alias(s.collection)
    ref = FusedReference.from_store(s.store, target, s.store.get_metadata(target), filters=kwargs)
    hits = s.search_batch(QUERIES, limit=10, threshold=-1.0, one_per_concept=True, **kwargs)  # as the reference
    assert any(hits), "the filter matches something"
    vecs = encoder.encode_queries(QUERIES)
    expected = list(ref.iter_rankings("hybrid", vecs, QUERIES, limit=10))
    for q, got, want in zip(QUERIES, hits, expected):
        assert [h.concept_uri for h in got] == [uri for uri, _ in want], (name, q)
        assert [h.score for h in got] == pytest.approx([sc for _, sc in want], abs=1e-4)
        assert all(ref.mask is None or h.concept_uri in {ref.concepts[i] for i in np.nonzero(ref.mask)[0]}
                   for h in got)


@pytest.mark.parametrize("group", [False, True])
def test_query_returns_only_the_asked_payload_fields(searcher, encoder, group):
    """Store.query(with_payload=[fields]) on every store kind: the same hits, only those fields (a search asks
    for the SkillHit fields alone, hits.HIT_FIELDS)."""
    from search import hybrid as h
    from search.hits import HIT_FIELDS
    from search.modes import bm25_terms, hybrid_query

    target = searcher.store.resolve_alias(searcher.collection)
    meta = searcher.store.get_metadata(target)
    q = encoder.encode_queries(["bake bread"])[0]
    req = hybrid_query(q, "bake bread", bm25_terms(meta, "en").query("bake bread"), h.HYBRID_FUSION, None, 5)
    kw = dict(group_by=Field.CONCEPT_URI if group else None, with_vectors=(h.PASSAGE,))
    full, = searcher.store.query(target, [req], **kw)
    some, = searcher.store.query(target, [req], with_payload=list(HIT_FIELDS), **kw)
    none, = searcher.store.query(target, [req], with_payload=False, **kw)
    assert full and [p.id for p in some] == [p.id for p in full] == [p.id for p in none]
    for f, p, n in zip(full, some, none):
        assert set(f.payload) > set(HIT_FIELDS) and p.payload == {k: f.payload[k] for k in HIT_FIELDS if k in f.payload}
        assert n.payload == {} and p.vectors and h.PASSAGE in p.vectors
    assert SkillHit.from_point(some[0]) == SkillHit.from_point(full[0])


def test_threshold_drops_everything_below_and_keeps_everything_above(searcher, stored, encoder):
    q = QUERIES[0]
    everything = searcher.search(q, limit=100, threshold=-1.0, one_per_concept=False)
    assert len(everything) == len(stored)
    for i in (0, 5, 17):
        cut = (everything[i].score + everything[i + 1].score) / 2  # between two hits: no tie at the edge
        kept = searcher.search(q, limit=100, threshold=cut, one_per_concept=False)
        assert all(h.score >= cut for h in kept)
        assert [(h.concept_uri, h.language) for h in kept] == [
            (h.concept_uri, h.language) for h in everything[: i + 1]]


def test_one_hit_per_concept_best_language_first(searcher, stored, encoder):
    q = "Brot backen"
    hits = searcher.search(q, limit=20, threshold=-1.0)  # two languages indexed: grouped by default
    uris = [h.concept_uri for h in hits]
    assert len(uris) == len(set(uris)) == 20
    ref = brute_force(stored, encoder.encode_queries([q])[0], limit=20, group_by=Field.CONCEPT_URI)
    assert [(h.concept_uri, h.language) for h in hits] == [
        (stored[pid][0][Field.CONCEPT_URI], stored[pid][0][Field.LANGUAGE]) for pid, _ in ref]
    assert hits[0].concept_uri == fixtures().SKILL["bread"]
    # a single language asked for: no grouping needed, every hit in that language
    de = searcher.search(q, language="de", threshold=-1.0)
    assert {h.language for h in de} == {"de"}


def test_batch_equals_single_calls(searcher):
    batch = searcher.search_batch(QUERIES, limit=5, threshold=-1.0, skill_type="skill/competence")
    singles = [searcher.search(q, limit=5, threshold=-1.0, skill_type="skill/competence") for q in QUERIES]
    assert [_ids(b) for b in batch] == [_ids(s) for s in singles]
    for b, s in zip(batch, singles):
        assert np.allclose([h.score for h in b], [h.score for h in s], atol=1e-5)


class _CountingReads:
    """The searcher's store, counting the points whose payload it reads by id."""

    def __init__(self, inner):
        self._inner, self.read = inner, []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def retrieve(self, name, ids, with_vectors=False, with_payload=True):
        self.read.extend(ids)
        return self._inner.retrieve(name, ids, with_vectors, with_payload)


def _key(h: SkillHit) -> tuple[str, str]:
    return h.concept_uri, h.language


def _rounded(h: SkillHit) -> SkillHit:
    """The hit with its score to 6 places (qdrant-client's local mode differs in the last bits between calls)."""
    return dataclasses.replace(h, score=round(h.score, 6))


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_hit_fields_are_read_once_per_point_and_equal_an_uncached_search(searcher, encoder, mode):
    """The hit payload cache (ESCO_HIT_CACHE_SIZE): the same hits as a searcher that reads every payload,
    each point's fields read from the store once, and none read for hits it has seen."""
    store = _CountingReads(searcher.store)
    cached = SkillSearch(searcher.settings.model_copy(update={"hit_cache_size": 1000}), encoder=encoder, store=store)
    plain = SkillSearch(searcher.settings.model_copy(update={"hit_cache_size": 0}), encoder=encoder,
                        store=_CountingReads(searcher.store))
    filters = [{}, dict(skill_type="knowledge"), dict(language="de"), dict(one_per_concept=False)]
    first = [cached.search(q, mode=mode, threshold=-1.0, **f) for q in QUERIES for f in filters]
    ref = [plain.search(q, mode=mode, threshold=-1.0, **f) for q in QUERIES for f in filters]
    if mode == "hybrid":  # equal fused scores come in either order from one engine call to the next
        first, ref = [sorted(h, key=_key) for h in first], [sorted(h, key=_key) for h in ref]
    assert [[_rounded(h) for h in hits] for hits in first] == [[_rounded(h) for h in hits] for hits in ref]
    assert sum(map(len, first)) > len(set(store.read)) > 0  # hits repeat; each point was read once
    assert len(store.read) == len(set(store.read))
    reads = len(store.read)
    again = [cached.search(q, mode=mode, threshold=-1.0, **f) for q in QUERIES for f in filters]
    assert [sorted(map(_rounded, h), key=_key) for h in again] == [sorted(map(_rounded, h), key=_key) for h in first]
    assert len(store.read) == reads
    assert len(plain.store.read) == sum(map(len, first))  # size 0: every hit's fields from the store
    cached.close()
    plain.close()


def test_a_collection_rewritten_under_its_name_serves_its_new_fields(tmp_path, encoder):
    """A collection rewritten under the same name (not what an ingest does: it writes a new one) with new
    metadata: the searcher forgets the fields it kept once it reads the changed metadata."""
    from search.stores import StoredPoint

    settings = settings_for(None, tmp_path, "edge", encoder.model_name, search_mode="dense")
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    with SkillSearch(settings, encoder=encoder, metadata_ttl=0.0) as s:
        (hit,) = s.search("bake bread", limit=1, threshold=-1.0)
        target = s.store.resolve_alias(s.collection)
        (point,) = [p for p in s.store.scroll(target, with_vectors=True)
                    if p.payload[Field.CONCEPT_URI] == hit.concept_uri]
        renamed = {**point.payload, Field.PREFERRED_LABEL: hit.preferred_label + " (new)"}
        s.store.upsert(target, [StoredPoint(point.id, renamed, point.vector, point.vectors)])
        s.store.update_metadata(target, {"rewritten": True})
        (again,) = s.search("bake bread", limit=1, threshold=-1.0)
    assert (again.concept_uri, again.preferred_label) == (hit.concept_uri, hit.preferred_label + " (new)")


def test_hits_carry_what_a_service_needs(searcher):
    (hit,) = searcher.search("bake bread", limit=1)
    assert isinstance(hit, SkillHit)
    assert hit.concept_uri == fixtures().SKILL["bread"]
    assert hit.preferred_label in ("bake bread", "Brot backen")
    assert hit.passage.startswith(hit.preferred_label + ": ") and hit.description in hit.passage
    assert hit.skill_type == "skill/competence" and hit.reuse_level == "sector-specific"
    assert 0.0 < hit.score <= 1.0
    with pytest.raises(AttributeError):
        hit.score = 2.0  # type: ignore[misc]  # frozen
    assert json.loads(json.dumps(hit.to_dict()))["concept_uri"] == hit.concept_uri


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_or_blank_query_is_an_error(searcher, bad):
    with pytest.raises(InvalidQuery, match="empty or blank"):
        searcher.search(bad)


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["a list"]])
def test_non_string_query_is_an_error(searcher, bad):
    with pytest.raises(InvalidQuery, match="must be a string"):
        searcher.search(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -1, 1001, 2.5, True, "10"])
def test_bad_limit_is_an_error(searcher, limit):
    with pytest.raises(InvalidQuery, match="limit must be an integer from 1 to 1000"):
        searcher.search("bread", limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("thr", [1.5, -2.0, float("nan"), "0.5"])
def test_threshold_outside_the_score_range_is_an_error(searcher, thr):
    with pytest.raises(InvalidQuery, match="threshold must be a cosine score"):
        searcher.search("bread", threshold=thr)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "lists"),
    [
        (dict(skill_type="skills"), "skill/competence, knowledge"),
        (dict(reuse_level="global"), "transversal, cross-sector, sector-specific, occupation-specific"),
        (dict(collection="blue"), "digital, green"),
        (dict(language="fr"), "en, de"),
        (dict(relation="sometimes", occupation="http://data.europa.eu/esco/occupation/x"), "essential, optional, any"),
        (dict(occupation="baker"), "http://data.europa.eu/esco/occupation/<uuid>"),
    ],
)
def test_unknown_filter_values_list_the_valid_ones(searcher, kwargs, lists):
    with pytest.raises(InvalidFilter) as err:
        searcher.search("bread", **kwargs)
    assert lists in str(err.value)


def test_control_characters_are_removed_not_fatal(searcher):
    clean = searcher.search("bake bread", limit=3)
    dirty = searcher.search("bake\x00 \x07bread\u200b", limit=3)
    assert _ids(clean) == _ids(dirty)


def test_text_longer_than_the_model_limit_is_truncated_with_a_warning(searcher, caplog):
    long = "bake bread in the oven " * 400  # ~2,400 tokens > 256 (MiniLM's limit)
    with caplog.at_level(logging.WARNING, logger="search"):
        hits = searcher.search(long, limit=3)
    assert hits and hits[0].concept_uri == fixtures().SKILL["bread"]
    assert any("longer than the model's limit" in r.getMessage() for r in caplog.records)


def test_a_megabyte_of_text_is_cut_and_answered(searcher, caplog):
    with caplog.at_level(logging.WARNING, logger="search"):
        hits = searcher.search("x" * 1_000_000 + " bread", limit=1)
    assert len(hits) == 1
    assert any("characters cut" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize("query_cache", [0, 64], ids=["cache-off", "cache-on"])
def test_shared_between_threads(searcher, minilm_path, query_cache, mode):
    from search.encoding import SentenceTransformerEncoder

    settings = searcher.settings.model_copy(update={"search_mode": mode})
    expected = {q: _ids(searcher.search(q, limit=5, mode=mode)) for q in QUERIES}
    enc = searcher.encoder
    if query_cache:
        # The query LRU shared by the threads: filled and read concurrently.
        enc = SentenceTransformerEncoder(minilm_path, device="cpu", precision="fp32", cache_size=query_cache)
    s = SkillSearch(settings, encoder=enc, store=searcher.store)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda q: (q, _ids(s.search(q, limit=5))), QUERIES * 4))
    assert len(results) == len(QUERIES) * 4
    for q, ids in results:
        assert ids and ids == expected[q]


def test_missing_collection_says_how_to_ingest(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    with pytest.raises(CollectionNotFound, match="esco-ingest --release"):
        SkillSearch(settings, encoder=encoder)


def test_collection_of_another_model_is_refused_naming_both(tmp_path, encoder, minilm_path):
    from search.encoding import SentenceTransformerEncoder
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False, limit=3)
    store = open_store(settings)
    try:
        # Same folder, other prompts: the searcher must refuse.
        other_prompts = SentenceTransformerEncoder(minilm_path, query_prompt="search_query: ",
                                                   passage_prompt="search_document: ")
        with pytest.raises(EncoderMismatch, match="passage_prompt"):
            SkillSearch(settings, encoder=other_prompts, store=store)
        # Other weights recorded (a different probe embedding) and another name: refused, both named.
        store.update_metadata(settings.collection, {"model": "intfloat/multilingual-e5-base",
                                                    "probe": list(np.roll(encoder.probe(), 7))})
        with pytest.raises(EncoderMismatch) as err:
            SkillSearch(settings, encoder=encoder, store=store)
        assert "intfloat/multilingual-e5-base" in str(err.value) and encoder.model_name in str(err.value)
        # Another vector size: refused.
        store.update_metadata(settings.collection, {"vector_size": 768})
        with pytest.raises(EncoderMismatch, match="vector size 768 vs 384"):
            SkillSearch(settings, encoder=encoder, store=store)
    finally:
        store.close()


def test_default_threshold_from_settings_then_collection(tmp_path, encoder):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=encoder.model_name)
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    with SkillSearch(settings, encoder=encoder) as s:
        assert s.default_threshold is None
        s.store.update_metadata(settings.collection, {"score_threshold": 0.5})
        s._metadata(force=True)
        assert s.default_threshold == 0.5
        hits = s.search("bake bread", limit=20)
        assert hits and all(h.score >= 0.5 for h in hits)
        # The threshold did cut: without it the same query returns hits below 0.5.
        assert any(h.score < 0.5 for h in s.search("bake bread", limit=20, threshold=-1.0))
    explicit = make_settings(tmp_path, "edge", model=encoder.model_name, score_threshold=0.3)
    with SkillSearch(explicit, encoder=encoder) as s:
        assert s.default_threshold == 0.3


def test_cli_json_and_table(tmp_path, encoder, minilm_path, monkeypatch, capsys):
    from search.cli import main
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=minilm_path)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    monkeypatch.setenv("ESCO_QDRANT_PATH", str(settings.qdrant_path))
    monkeypatch.setenv("ESCO_MODEL", minilm_path)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    assert main(["Brot", "backen", "--limit", "3", "--language", "de", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["preferred_label"] == "Brot backen"
    assert {"concept_uri", "preferred_label", "score", "skill_type", "language"} <= set(hits[0])
    assert main(["bake bread", "--limit", "2", "--skill-type", "skill/competence", "--threshold", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "bake bread" in out and fixtures().SKILL["bread"] in out
    assert main(["bread", "--skill-type", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid values are: skill/competence, knowledge" in err
    monkeypatch.setenv("ESCO_COLLECTION", "nothing_here")
    assert main(["bread"]) == 2
    assert "not found" in capsys.readouterr().err


def _same_size_collection_of_another_model(store, source: str, name: str, meta: dict, n: int = 20) -> None:
    """A collection of the same vector size whose metadata names another model (other weights)."""
    from search.schema import KEYWORD_FIELDS
    from search.stores import CollectionParams

    points = [p for _, p in zip(range(n), store.scroll(source, with_vectors=True))]
    other = {**meta, "model": "intfloat/multilingual-e5-base", "probe": list(np.roll(meta["probe"], 7))}
    store.create_collection(name, CollectionParams(vector_size=meta["vector_size"]), other, KEYWORD_FIELDS)
    store.upsert(name, points)


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_alias_switch_to_another_model_is_refused_at_once(tmp_path, encoder, kind):
    """The model check follows the alias: no minute of wrong answers after a switch (metadata cached 60 s)."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, kind, model=encoder.model_name)
    run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    with SkillSearch(settings, encoder=encoder, metadata_ttl=3600) as s:
        first = s.store.resolve_alias(settings.collection)
        assert first and s.search("bake bread", limit=3)
        meta = s.store.get_metadata(first)
        _same_size_collection_of_another_model(s.store, first, "other_model", meta)
        s.store.switch_alias(settings.collection, "other_model")
        with pytest.raises(EncoderMismatch, match="intfloat/multilingual-e5-base"):
            s.search("bake bread", limit=3)
        # Back on the collection of this model: served again, at once.
        s.store.switch_alias(settings.collection, first)
        hits = s.search("bake bread", limit=3)
        assert hits and hits[0].concept_uri == fixtures().SKILL["bread"]


def test_a_failing_model_load_leaves_no_store_open(tmp_path, monkeypatch):
    """SkillSearch(settings) whose model cannot load: the store it opened (if any) is closed again."""
    import search.service as service
    from search.errors import ConfigError
    from search.stores.qdrant import QdrantClientStore
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "local", model="unused")
    opened = []

    def spy_open(st):
        store = open_store(st)
        opened.append(store)
        real_close = store.close
        store.closed = False

        def close():
            store.closed = True
            real_close()

        store.close = close
        return store

    def broken_load(st):
        raise ConfigError("model 'unused' cannot be loaded")

    monkeypatch.setattr(service, "open_store", spy_open)
    monkeypatch.setattr(service, "load_encoder", broken_load)
    with pytest.raises(ConfigError) as err:
        SkillSearch(settings)
    assert err.value is not None  # the traceback (and the half-built searcher) is still alive here
    assert all(s.closed for s in opened), "a store was left open"
    # local mode's folder lock is free: this process can open the store again.
    again = QdrantClientStore.local(settings.store_path)
    again.close()


class _HashEncoder:
    """A model-free encoder: each text maps to a fixed vector near one of the dataset's points."""

    model_name = "hash-encoder"

    def __init__(self, vectors: np.ndarray) -> None:
        self.dimension = vectors.shape[1]
        self._vectors = vectors
        self.batches: list[int] = []

    def encode_queries(self, texts):
        self.batches.append(len(texts))
        out = []
        for t in texts:
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            v = self._vectors[rng.integers(len(self._vectors))] + 0.5 * rng.standard_normal(self.dimension)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("one_per_concept", [True, False], ids=["grouped", "plain"])
def test_a_batch_of_thousands_equals_the_queries_one_by_one(tmp_path, one_per_concept):
    """search_batch of 2,600 texts (chunks of BATCH_CHUNK, a last partial one) == 2,600 single searches."""
    from search.service import BATCH_CHUNK
    from search.settings import SearchSettings
    from search.stores.edge import EdgeStore
    from store_testdata import make_dataset

    data = make_dataset(concepts=400)
    store = EdgeStore(tmp_path / "store")
    from search.schema import KEYWORD_FIELDS
    from search.stores import CollectionParams

    store.create_collection("c1", CollectionParams(vector_size=48), {"vector_size": 48, "languages": ["en", "de"]},
                            KEYWORD_FIELDS)
    store.upsert("c1", data.points)
    store.switch_alias("esco_skills", "c1")
    enc = _HashEncoder(data.vectors)
    settings = SearchSettings(_env_file=None, qdrant_path=tmp_path / "store", collection="esco_skills")
    texts = [f"query number {i}" for i in range(2600)] + ["query number 7"] * 3  # repeats too
    try:
        s = SkillSearch(settings, encoder=enc, store=store)
        batch = s.search_batch(texts, limit=7, one_per_concept=one_per_concept, skill_type="knowledge")
        assert max(enc.batches) <= BATCH_CHUNK and sum(enc.batches) == len(texts)  # encoded in chunks
        assert len(batch) == len(texts) and all(batch)
        for text, hits in zip(texts, batch):
            single = s.search(text, limit=7, one_per_concept=one_per_concept, skill_type="knowledge")
            assert [(h.concept_uri, h.language) for h in hits] == [(h.concept_uri, h.language) for h in single]
            assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-6)
        if one_per_concept:
            assert all(len({h.concept_uri for h in hits}) == len(hits) for hits in batch)
    finally:
        store.close()


# --- hybrid mode --------------------------------------------------------------------------------------------
HYBRID_SKILLS = [
    ("bake bread", ["make bread", "bread baking"], "Prepare dough and bake loaves in an oven.", "skill/competence"),
    ("bakery products", ["baked goods"], "Knowledge of breads, pastries and cakes.", "knowledge"),
    ("repair bicycles", ["fix bikes", "bicycle mechanics"], "Mend brakes, gears and wheels of bicycles.", "skill/competence"),
    ("Python (computer programming)", ["Python", "python coding"], "Techniques of software development in Python.", "knowledge"),
    ("write Python scripts", ["automate tasks with Python"], "Automate routine tasks with small programs.", "skill/competence"),
    ("bookkeeping", ["keep books", "book-keeping"], "Record the financial transactions of a company.", "knowledge"),
    ("manage staff", ["lead a team", "supervise employees"], "Plan and direct the work of employees.", "skill/competence"),
    ("care for elderly people", ["elderly care", "geriatric care"], "Assist older people with daily activities.", "skill/competence"),
    ("drive trucks", ["operate lorries", "truck driving"], "Drive heavy goods vehicles safely.", "skill/competence"),
    ("first aid", ["emergency first aid"], "Give immediate help to injured or ill people.", "knowledge"),
    ("weld metal", ["metal welding", "arc welding"], "Join metal parts by melting them together.", "skill/competence"),
    ("teach mathematics", ["maths teaching"], "Instruct students in mathematics.", "skill/competence"),
]


def _hybrid_collection(store, encoder, name: str, *, hybrid_reps: bool = True) -> list:
    """A collection of HYBRID_SKILLS written like ingest writes hybrid ones (or a dense-only one)."""
    from search import hybrid as h
    from search.schema import KEYWORD_FIELDS, passage_text, point_id
    from search.stores import CollectionParams, StoredPoint, VectorSpec

    bm25 = h.Bm25Terms("en", avg_len=4.0)
    passages = encoder.encode_passages([passage_text(p, d) for p, _, d, _ in HYBRID_SKILLS])
    points = []
    for i, ((pref, alts, desc, kind), pv) in enumerate(zip(HYBRID_SKILLS, passages)):
        uri = f"http://data.europa.eu/esco/skill/h{i:03d}"
        pid = point_id(uri, "en")
        labels = h.skill_labels(pref, alts)
        payload = {"concept_uri": uri, "preferred_label": pref, "description": desc, "language": "en",
                   "skill_type": kind, "alt_labels": alts, "status": "released", h.LABEL_KEYS_FIELD: h.label_keys(labels)}
        if not hybrid_reps:
            points.append(StoredPoint(pid, payload, pv.tolist()))
            continue
        rows = encoder.encode_queries(labels)
        points.append(StoredPoint(pid, payload, vectors={
            h.PASSAGE: pv.tolist(), h.PREF: rows[0].tolist(), h.LABELS: rows.tolist(),
            h.BM25: bm25.document(h.bm25_document(labels), pid)}))
    meta = {**encoder.describe(), "languages": ["en"], "esco_version": "test"}
    if hybrid_reps:
        meta["representations"] = {h.PASSAGE: {"kind": "dense"}, h.PREF: {"kind": "dense"},
                                   h.LABELS: {"kind": "multivector"}, h.BM25: {"kind": "sparse", **bm25.describe()}}
        params = CollectionParams(vector_size=encoder.dimension, vectors={
            h.PASSAGE: VectorSpec(), h.PREF: VectorSpec(), h.LABELS: VectorSpec("multivector", index=False),
            h.BM25: VectorSpec("sparse")})
    else:
        params = CollectionParams(vector_size=encoder.dimension)
    store.create_collection(name, params, meta, [*KEYWORD_FIELDS, h.LABEL_KEYS_FIELD])
    store.upsert(name, points)
    return points


@pytest.fixture(scope="module", params=["edge", "local"])
def hybrid_searcher(request, tmp_path_factory, encoder):
    from search.settings import SearchSettings
    from tests.conftest import make_settings

    tmp = tmp_path_factory.mktemp(f"hybrid-{request.param}")
    settings = make_settings(tmp, request.param, model=encoder.model_name)
    store = open_store(settings)
    _hybrid_collection(store, encoder, "skills_h1")
    _hybrid_collection(store, encoder, "skills_dense", hybrid_reps=False)
    store.switch_alias(settings.collection, "skills_h1")
    s = SkillSearch(SearchSettings(**settings.model_dump(include=set(SearchSettings.model_fields))),
                    encoder=encoder, store=store)
    yield s
    store.close()


def test_hybrid_puts_an_exact_label_match_first(hybrid_searcher):
    s = hybrid_searcher
    # An alternative label, in another case and spacing: that skill first (dense ranks it lower or not at all).
    hits = s.search("  FIX   bikes ", limit=5, mode="hybrid")
    assert hits[0].preferred_label == "repair bicycles"
    for text, want in [("Python", "Python (computer programming)"), ("keep books", "bookkeeping"),
                       ("Elderly Care", "care for elderly people")]:
        assert s.search(text, limit=3, mode="hybrid")[0].preferred_label == want, text
    # a filter applies to the promoted skill too: "Python" is knowledge, not skill/competence
    hits = s.search("Python", limit=3, mode="hybrid", skill_type="skill/competence")
    assert hits and all(h.skill_type == "skill/competence" for h in hits)


def test_hybrid_score_is_the_best_cosine_and_thresholds_cut_on_it(hybrid_searcher, encoder):
    s = hybrid_searcher
    text = "mend the brakes of a bike"
    hits = s.search(text, limit=12, mode="hybrid", threshold=-1.0)
    assert len(hits) == len(HYBRID_SKILLS)
    q = encoder.encode_queries([text])[0]
    from search.schema import passage_text

    by_label = {p: (a, d) for p, a, d, _ in HYBRID_SKILLS}
    for h_ in hits:
        alts, desc = by_label[h_.preferred_label]
        pv = encoder.encode_passages([passage_text(h_.preferred_label, desc)])[0]
        rows = encoder.encode_queries([h_.preferred_label, *alts])
        want = max(float(q @ pv), float(np.max(rows @ q)))
        assert h_.score == pytest.approx(want, abs=2e-4)
    thr = sorted(h_.score for h_ in hits)[len(hits) // 2]
    cut = s.search(text, limit=12, mode="hybrid", threshold=thr)
    assert cut and len(cut) < len(hits) and all(h_.score >= thr for h_ in cut)
    # the same hits as the unthresholded call keeps above thr (their order among fused-score ties is the engine's)
    assert {h_.concept_uri for h_ in cut} == {h_.concept_uri for h_ in hits if h_.score >= thr}


def test_hybrid_equals_the_numpy_reference_under_filters(hybrid_searcher, encoder):
    from search import hybrid as h
    from search.modes import hybrid_query
    from search.stores import Condition, Filter

    s = hybrid_searcher
    target = s.store.resolve_alias(s.collection)
    stored = list(s.store.scroll(target, with_vectors=True))
    def as_ref(vectors):  # the store's SparseVector as the reference takes it
        return {k: (v.indices, v.values) if k == h.BM25 else v for k, v in vectors.items()}

    from search.hybrid_reference import ExactIndex

    ix = ExactIndex.from_points((p.id, as_ref(p.vectors), p.payload) for p in stored)
    bm25 = h.Bm25Terms("en", avg_len=4.0)
    for text in ["bake bread", "fix bikes", "write small programs to automate my work", "the", "Python"]:
        for flt in [{}, {"skill_type": "knowledge"}, {"skill_type": "skill/competence"}]:
            mask = np.array([not flt or p.payload["skill_type"] == flt["skill_type"] for p in stored])
            q = encoder.encode_queries([text])[0]
            ref = ix.search("hybrid", q, text, bm25=bm25, mask=mask, limit=5, fusion=h.HYBRID_FUSION)
            # the store's answer to the searcher's request: the reference's fused scores, ids equal up to ties
            # (RRF sums tie when two legs of weight 1 swap two points; the engine orders ties arbitrarily)
            neutral = Filter((Condition("skill_type", (flt["skill_type"],)),)) if flt else None
            req = hybrid_query(q, text, bm25.query(text), h.HYBRID_FUSION, neutral, 5)
            engine, = s.store.query(target, [req])
            assert [g.score for g in engine] == pytest.approx([r.fused for r in ref], rel=1e-5), (text, flt)
            tied = {}
            for r in ref:
                tied.setdefault(round(r.fused, 5), set()).add(r.id)
            assert all(g.id in tied[round(g.score, 5)] for g in engine), (text, flt)
            # the searcher serves that order, with the reference's cosine as score
            got = s.search(text, limit=5, mode="hybrid", threshold=-1.0, one_per_concept=False, **flt)
            every = {r.id: r for r in ix.search("hybrid", q, text, bm25=bm25, mask=mask, limit=len(stored),
                                                fusion=h.HYBRID_FUSION)}
            id_of = {p.payload["concept_uri"]: p.id for p in stored}
            served = [every[id_of[g.concept_uri]] for g in got]
            assert [r.fused for r in served] == pytest.approx([r.fused for r in ref], rel=1e-5), (text, flt)
            assert [g.score for g in got] == pytest.approx([r.score for r in served], abs=1e-4)


def test_hybrid_batch_equals_single_calls_and_groups(hybrid_searcher):
    s = hybrid_searcher
    texts = ["bake bread", "FIX BIKES", "lead a team of nurses", "weld steel pipes", "Python"] * 3
    batch = s.search_batch(texts, limit=4, mode="hybrid")
    for t, hits in zip(texts, batch):
        single = s.search(t, limit=4, mode="hybrid")
        # same hits; where RRF sums tie (tiny set, two legs of weight 1) the engine orders ties arbitrarily
        # the engine orders fused-score ties arbitrarily (tiny set, two legs of weight 1): a tie may sit at the
        # cut-off, so one hit of four may differ; an exact label match is first in both
        assert len({h.concept_uri for h in hits} & {h.concept_uri for h in single}) >= 3, t
        if t.strip().lower() in {"bake bread", "fix bikes", "python"}:
            assert hits[0].concept_uri == single[0].concept_uri, t
        assert len({h.concept_uri for h in hits}) == len(hits) == 4


def test_a_mode_the_collection_lacks_is_refused(hybrid_searcher, encoder):
    from search.errors import SearchError
    from search.settings import SearchSettings

    s = hybrid_searcher
    dense_only = SkillSearch(s.settings.model_copy(update={"collection": "skills_dense"}), encoder=encoder, store=s.store)
    with pytest.raises(SearchError, match="labels, bm25.*re-ingest") as err:
        dense_only.search("bake bread", mode="hybrid")
    assert "mode='dense'" in str(err.value) and "pref" in str(err.value)
    # default (no mode set): dense, and dense on request
    assert dense_only.search("bake bread", limit=1)[0].preferred_label == "bake bread"
    assert dense_only.search("bake bread", limit=1, mode="dense")[0].preferred_label == "bake bread"
    set_hybrid = SkillSearch(s.settings.model_copy(update={"collection": "skills_dense", "search_mode": "hybrid"}),
                             encoder=encoder, store=s.store)
    with pytest.raises(SearchError, match="re-ingest"):
        set_hybrid.search("bake bread")
    with pytest.raises(SearchError, match="unknown search mode 'sparse'"):
        s.search("bake bread", mode="sparse")
    assert SearchSettings(_env_file=None, search_mode="hybrid").search_mode == "hybrid"


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_hybrid_follows_the_alias_when_its_collection_is_deleted_under_it(kind, tmp_path, encoder):
    """The alias moves to a new collection and the old one is deleted while the searcher still knows the old one:
    the fused request and the display scores both run on the new collection, once."""
    from search.settings import SearchSettings
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, kind, model=encoder.model_name)
    store = open_store(settings)
    try:
        _hybrid_collection(store, encoder, "skills_old")
        store.switch_alias(settings.collection, "skills_old")
        s = SkillSearch(SearchSettings(**settings.model_dump(include=set(SearchSettings.model_fields))),
                        encoder=encoder, store=store)
        before = s.search("fix bikes", limit=5, mode="hybrid")
        _hybrid_collection(store, encoder, "skills_new")
        store.switch_alias(settings.collection, "skills_new")
        store.delete_collection("skills_old")
        after = s.search("fix bikes", limit=5, mode="hybrid")
        assert [h.concept_uri for h in after] == [h.concept_uri for h in before]
        assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-6)
        assert s._current()[0] == "skills_new"
    finally:
        store.close()
