"""ingest.esco on the real ESCO releases in ../shared/esco (skipped when absent).

The expected values were taken by hand from the raw CSVs (grep over skills_en.csv,
occupationSkillRelations.csv, broaderRelationsSkillPillar.csv, skillGroups_en.csv and the collections).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.esco import Release, read_release

pytestmark = pytest.mark.release

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "esco"
V111 = SHARED / "v1.1.1"
V110 = SHARED / "v1.1.0"
SKILL = "http://data.europa.eu/esco/skill/"
OCC = "http://data.europa.eu/esco/occupation/"
ISCED = "http://data.europa.eu/esco/isced-f/"

PYTHON = SKILL + "ccd0a1d9-afda-43d9-b901-96344886e14d"  # Python (computer programming)
INITIATIVE = SKILL + "001115fb-569f-4ee6-8381-c6807ef2527f"  # show initiative
MUSICAL_STAFF = SKILL + "0005c151-5b5a-4a66-8aac-60e734beb1ab"  # manage musical staff
SOLVE_TECH = SKILL + "14832d87-2f2f-4895-b290-e4760ebae42a"  # solve technical problems


def _need(path: Path) -> None:
    if not any(path.glob("*.zip")):
        pytest.skip(f"the real ESCO release is not at {path} (expected ../shared/esco next to the repository)")


@pytest.fixture(scope="module")
def v111() -> Release:
    _need(V111)
    return read_release([V111], ["en"])


@pytest.fixture(scope="module")
def v110() -> Release:
    _need(V110)
    return read_release([V110], ["en"])


def by_uri(rel: Release) -> dict:
    return {r.concept_uri: r for r in rel.skills["en"]}


def test_v111_reads_every_released_skill_once(v111):
    rel = v111  # speed is measured by benchmarks, not asserted here
    assert (rel.esco_version, rel.layout, rel.languages) == ("v1.1.1", "v1.1", ("en",))
    uris = [r.concept_uri for r in rel.skills["en"]]
    assert len(uris) == 13_896
    assert len(set(uris)) == 13_896
    c = rel.stats.counts["en"]
    assert c["skill_rows"] == 13_896 and c["skipped_not_released"] == c["skipped_duplicate_uri"] == 0
    assert c["relation_rows"] == 123_855
    assert c["relations_unknown_occupation"] == 67  # one occupation absent from occupations_en.csv
    assert c["relations_kept"] == 123_855 - 67
    assert c["relations_unknown_skill"] == 0
    assert c["broader_rows"] == 20_656 and c["broader_cycles"] == 0
    assert c["empty_skill_type"] == 6 and c["empty_reuse_level"] == 5
    assert c["collections_missing"] == 0  # no ict collection, but the digital one: nothing missing
    assert all(r.preferred_label and r.skill_groups for r in rel.skills["en"])


def test_v111_python(v111):
    py = by_uri(v111)[PYTHON]
    assert py.preferred_label == "Python (computer programming)"
    assert (py.skill_type, py.reuse_level) == ("knowledge", "sector-specific")
    assert (len(py.essential_for), len(py.optional_for)) == (5, 45)
    assert set(py.essential_for_labels) == {
        "computer vision engineer", "ICT intelligent systems designer", "computer-aided design operator",
        "numerical tool and process control programmer", "computer science lecturer",
    }  # fmt: skip
    assert py.broader == (ISCED + "0613", SKILL + "21d2f96d-35f7-4e3f-9745-c533d2dd6e97")
    # isced-f 0613 > 061 > 06 > knowledge; and through the skill "computer programming" and the skill
    # f5369f2f...: using digital tools ... > working with computers > skills
    assert set(py.skill_groups) == {
        ISCED + "0613", ISCED + "061", ISCED + "06",
        SKILL + "c46fcb45-5c14-4ffa-abed-5a43f104bb22",  # knowledge
        SKILL + "98fb499f-9155-412d-a8a0-95ba97126fec",
        SKILL + "cacc62f3-2df4-4cc3-9d5d-0d014db56bd9",
        SKILL + "243eb885-07c7-4b77-ab9c-827551d83dc4",  # working with computers
        SKILL + "335228d2-297d-4e0e-a6ee-bc6a8dc110d9",  # skills
    }  # fmt: skip
    labels = dict(zip(py.skill_groups, py.skill_group_labels))
    assert labels[ISCED + "0613"] == "software and applications development and analysis"
    assert labels[SKILL + "243eb885-07c7-4b77-ab9c-827551d83dc4"] == "working with computers"
    assert py.collections == ("digital",)
    assert "Python3" in py.alt_labels


def test_v111_show_initiative(v111):
    s = by_uri(v111)[INITIATIVE]
    assert s.preferred_label == "show initiative" and s.reuse_level == "transversal"
    assert s.essential_for == s.optional_for == ()
    assert s.broader == (SKILL + "91860993-1a8b-4473-91f3-600aa1924bd0",)
    assert dict(zip(s.skill_groups, s.skill_group_labels)) == {
        SKILL + "91860993-1a8b-4473-91f3-600aa1924bd0": "taking a proactive approach",
        SKILL + "021a23e1-907e-4627-b05a-555f889cbb65": "self-management skills and competences",
        SKILL + "04a13491-b58c-4d33-8b59-8fad0d55fe9e": "transversal skills and competences",
    }
    assert s.collections == ("transversal",)


def test_v111_manage_musical_staff(v111):
    s = by_uri(v111)[MUSICAL_STAFF]
    assert s.alt_labels == (
        "manage staff of music", "coordinate duties of musical staff", "manage music staff", "direct musical staff",
    )  # the preferred label, also listed in altLabels, removed
    assert sorted(s.essential_for_labels) == ["choirmaster/choirmistress", "music director", "musical conductor"]
    assert s.optional_for_labels == ("musician",)
    assert s.collections == ()


def test_v111_limit():
    _need(V111)
    rel = read_release([V111], ["en"], limit=50)
    assert len(rel.skills["en"]) == 50
    assert rel.skills["en"][0].concept_uri == MUSICAL_STAFF


def test_v110_reads_every_released_skill_once(v110):
    assert (v110.esco_version, v110.layout) == ("v1.1.0", "v1.1")
    uris = [r.concept_uri for r in v110.skills["en"]]
    assert len(uris) == len(set(uris)) == 13_891
    skills = by_uri(v110)
    assert skills[SOLVE_TECH].collections == ("digcomp", "ict")
    assert sum("ict" in r.collections for r in v110.skills["en"]) == 21
    assert skills[PYTHON].collections == ()  # v1.1.0 had no digital skills collection
    assert (len(skills[PYTHON].essential_for), len(skills[PYTHON].optional_for)) == (5, 45)
    assert not any("SkillsCollection_en.csv" in w for w in v110.stats.warnings)  # ict stands for digital
