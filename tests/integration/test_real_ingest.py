"""The real English releases in ../shared/esco, encoded with a real model (slow: run with -m slow)."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from ingest.build import run
from search import SkillSearch
from search.schema import Field, point_id
from search.stores import open_store
from tests.conftest import make_settings, real_release

pytestmark = [pytest.mark.slow, pytest.mark.release]


def _raw_relations(release_dir, skill_uri: str) -> tuple[set[str], set[str]]:
    """Essential and optional occupations of a skill, straight from the release's CSV."""
    (zpath,) = release_dir.glob("*relations*.zip")
    with zipfile.ZipFile(zpath) as z, z.open("occupationSkillRelations.csv") as f:
        rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"))
        ess, opt = set(), set()
        for r in rows:
            if r["skillUri"] == skill_uri:
                (ess if r["relationType"] == "essential" else opt).add(r["occupationUri"])
    return ess, opt


def test_real_release_upgrade_encodes_only_the_difference(tmp_path, encoder):
    v110, v111 = real_release("v1.1.0"), real_release("v1.1.1")
    settings = make_settings(tmp_path, "edge", model=encoder.model_name, batch_size=32, upsert_batch_size=256)
    first = run(settings, [v110], ["en"], encoder=encoder, progress=False)
    assert first.points_written == {"en": 13_891} and first.encoded == 13_891
    second = run(settings, [v111], ["en"], encoder=encoder, progress=False)
    assert second.points_written == {"en": 13_896}
    assert second.encoded == second.changed + second.new < 13_896 // 2
    assert second.reused == second.unchanged
    assert second.unchanged + second.changed + second.new == 13_896
    print(f"\nv1.1.0: encoded {first.encoded} in {first.seconds}\n"
          f"v1.1.1: unchanged {second.unchanged}, changed {second.changed}, new {second.new}, "
          f"removed {second.removed}; encoded {second.encoded} in {second.seconds}")

    store = open_store(settings)
    try:
        assert store.count(settings.collection) == 13_896
        python = "http://data.europa.eu/esco/skill/ccd0a1d9-afda-43d9-b901-96344886e14d"
        (pt,) = store.retrieve(settings.collection, [point_id(python, "en")])
        ess, opt = _raw_relations(v111, python)
        assert set(pt.payload[Field.ESSENTIAL_FOR]) <= ess and set(pt.payload[Field.OPTIONAL_FOR]) <= opt
        assert pt.payload[Field.PREFERRED_LABEL] == "Python (computer programming)"
        assert "digital" in pt.payload[Field.COLLECTIONS]
        assert pt.payload[Field.SKILL_GROUPS]
    finally:
        store.close()

    # a second ingest of the same release leaves the point count unchanged and encodes nothing
    third = run(settings, [v111], ["en"], encoder=encoder, progress=False)
    assert third.encoded == 0 and third.points_written == {"en": 13_896}

    with SkillSearch(settings, encoder=encoder) as s:
        hits = s.search("programming in Python", limit=5, skill_type="knowledge")
        assert any(h.concept_uri == python for h in hits)
