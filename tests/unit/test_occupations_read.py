"""Occupation records of the mini release (both layouts, two languages), and their payload; no model, no store."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from ingest.esco.occupations import read_occupations
from ingest.errors import EscoFormatError
from ingest.occupations import occupation_points
from search.errors import ConfigError
from search.occupations.schema import OccField, gendered_forms, isco_ancestors, occupation_label_keys

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "esco_mini"
V11, V12 = MINI / "v1.1.9", MINI / "v1.2.9"
_spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests" / "data" / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(fx)
OCC, SKILL = fx.OCCUPATION, fx.SKILL


def _by_uri(release, lang):
    return {r.concept_uri: r for r in release.occupations[lang]}


def test_both_layouts_read_to_the_same_records():
    a = read_occupations([V11], ["en", "de"])
    b = read_occupations([V12], ["en", "de"])
    assert (a.layout, b.layout) == ("v1.1", "v1.2")
    assert (a.esco_version, b.esco_version) == ("v1.1.9", "v1.2.9")
    assert a.occupations == b.occupations
    assert a.warnings == b.warnings == ()
    assert [len(a.occupations[lang]) for lang in ("en", "de")] == [8, 8]


def test_labels_description_isco_and_regulation():
    rel = read_occupations([V12], ["en", "de"])
    de = _by_uri(rel, "de")[OCC["baker"]]
    assert de.preferred_label == "Bäcker/Bäckerin"
    assert de.alt_labels == ("Bäckerin", "Brotbäcker/Brotbäckerin") and de.hidden_labels == ("Becker",)
    assert de.description.startswith("Bäcker stellen eine große Auswahl")
    assert (de.isco_group, de.isco_groups, de.code) == ("7512", ("7", "75", "751", "7512"), "7512.2")
    assert de.isco_group_labels[0] == "Handwerks- und verwandte Berufe"
    assert de.isco_group_labels[-1] == "Bäcker, Konditoren und Süßwarenhersteller"
    en = _by_uri(rel, "en")[OCC["baker"]]
    assert en.isco_group_labels[-1] == "Bakers, pastry-cooks and confectionery makers"
    assert en.regulated_profession_note.endswith("/unregulated")
    assert _by_uri(rel, "en")[OCC["nurse"]].regulated_profession_note.endswith("/regulated")
    assert _by_uri(rel, "en")[OCC["bike_mechanic"]].broader_occupations == (OCC["welder"],)
    assert en.broader_occupations == ()


def test_skills_with_labels_in_each_language():
    rel = read_occupations([V11], ["en", "de"])
    en, de = _by_uri(rel, "en")[OCC["baker"]], _by_uri(rel, "de")[OCC["baker"]]
    assert set(en.essential_skills) == {SKILL["bread"], SKILL["waste"]}
    assert set(en.optional_skills) == {SKILL["german_speak"], SKILL["cash_register"]}
    assert dict(zip(en.essential_skills, en.essential_skill_labels))[SKILL["bread"]] == "bake bread"
    assert dict(zip(de.essential_skills, de.essential_skill_labels))[SKILL["bread"]] == "Brot backen"
    assert list(en.essential_skills) == sorted(en.essential_skills)
    # the developer's optional relation to the obsolete `fax` skill is dropped, and so is the accountant's to
    # a skill that is not in the release
    dev = _by_uri(rel, "en")[OCC["developer"]]
    assert fx.SKILL["fax"] not in dev.optional_skills and len(dev.optional_skills) == 3
    assert rel.counts["en"]["relations_skipped_skill"] == 2
    assert rel.counts["en"]["relations_unknown_occupation"] == 1  # the relation to an occupation not in the release


def test_without_isco_groups_and_occupation_pillar_it_degrades_and_says_so(tmp_path):
    root = tmp_path / "v1.2.9"
    shutil.copytree(V12, root)
    for p in [*root.glob("ISCOGroups_*.csv"), *root.glob("broaderRelationsOccPillar_*.csv")]:
        p.unlink()
    rel = read_occupations([root], ["en", "de"])
    baker = _by_uri(rel, "de")[OCC["baker"]]
    assert baker.isco_groups == ("7", "75", "751", "7512")  # codes nest by prefix: still there
    assert baker.isco_group_labels == ("", "", "", "")
    assert _by_uri(rel, "en")[OCC["bike_mechanic"]].broader_occupations == ()
    assert any("no ISCOGroups_de.csv" in w and "codes, no labels" in w for w in rel.warnings)
    assert any("no broaderRelationsOccPillar_en.csv" in w for w in rel.warnings)


def test_status_filter_and_errors(tmp_path):
    root = tmp_path / "v1.2.9"
    shutil.copytree(V12, root)
    p = root / "occupations_en.csv"
    p.write_text(p.read_text(encoding="utf-8").replace(",released,", ",obsolete,", 1), encoding="utf-8")
    rel = read_occupations([root], ["en"])
    assert OCC["developer"] not in _by_uri(rel, "en") and len(rel.occupations["en"]) == 7
    assert rel.counts["en"]["occupations_skipped_not_released"] == 1
    with pytest.raises(ConfigError, match="'xx'"):
        read_occupations([V12], ["xx"])
    (root / "occupations_de.csv").unlink()
    with pytest.raises(EscoFormatError, match="occupations_de.csv"):
        read_occupations([root], ["de"])


@pytest.mark.parametrize("label, forms", [
    ("Bäcker/Bäckerin", ["Bäcker", "Bäckerin"]),
    ("Krankenpfleger/Krankenschwester", ["Krankenpfleger", "Krankenschwester"]),
    ("Bäcker/Bäckerin (Handwerk)", ["Bäcker (Handwerk)", "Bäckerin (Handwerk)"]),
    ("leitender Verkäufer/Verkäuferin", ["leitender Verkäufer", "leitender Verkäuferin"]),
    ("IT/software developer", []),  # no shared stem: not a gendered pair
    ("baker", []),
    ("a/b/c", []),
])
def test_gendered_forms(label, forms):
    assert gendered_forms(label) == forms


def test_isco_ancestors():
    assert isco_ancestors("2512") == ["2", "25", "251", "2512"]
    assert isco_ancestors("7") == ["7"]
    assert isco_ancestors("") == [] and isco_ancestors("25x") == [] and isco_ancestors("12345") == []


def test_points_one_per_occupation_and_language_with_the_payload():
    rel = read_occupations([V12], ["en", "de"])
    points = occupation_points(rel, "model|torch|fp32|abc", "passage: ")
    assert len(points) == 16 and len({p.id for p in points}) == 16
    de = next(p for p in points if p.payload[OccField.CONCEPT_URI] == OCC["baker"]
              and p.payload[OccField.LANGUAGE] == "de")
    assert de.text == ("Bäcker/Bäckerin: Bäcker stellen eine große Auswahl an Broten, Feingebäck und anderen "
                       "Backwaren her.")
    pl = de.payload
    assert pl[OccField.LABEL_KEYS] == occupation_label_keys("Bäcker/Bäckerin", ["Bäckerin", "Brotbäcker/Brotbäckerin"],
                                                            ["Becker"])
    assert {"bäcker/bäckerin", "bäcker", "bäckerin", "brotbäcker", "becker"} <= set(pl[OccField.LABEL_KEYS])
    assert pl[OccField.ISCO_GROUP_URIS][-1] == "http://data.europa.eu/esco/isco/C7512"
    assert pl[OccField.SKILLS] == sorted(set(pl[OccField.ESSENTIAL_SKILLS]) | set(pl[OccField.OPTIONAL_SKILLS]))
    assert pl[OccField.ESCO_VERSION] == "v1.2.9" and pl[OccField.PASSAGE] == de.text
    other = occupation_points(rel, "another model", "passage: ")
    assert other[0].payload[OccField.TEXT_HASH] != points[0].payload[OccField.TEXT_HASH]


@pytest.mark.release
def test_the_real_release_reads_every_occupation():
    from tests.conftest import real_release

    rel = read_occupations([real_release("v1.1.1")], ["en"])
    occ = rel.occupations["en"]
    assert rel.layout == "v1.1" and rel.warnings == () and len(occ) == 3007
    c = rel.counts["en"]
    assert c["relations_kept"] == 123788 and c["relations_unknown_occupation"] == 67  # as the skills reader counts
    assert c["isco_group_label_missing"] == 0
    assert all(len(r.isco_groups) == 4 and all(r.isco_group_labels) for r in occ)
    assert sum(1 for r in occ if r.broader_occupations) == 1247
    assert sum(1 for r in occ if r.regulated_profession_note.endswith("/regulated")) == 15
    assert sum(len(r.essential_skills) for r in occ) == 64891 and sum(len(r.optional_skills) for r in occ) == 58897
    assert all(len(r.essential_skill_labels) == len(r.essential_skills) for r in occ)
