"""Unit tests of ingest.esco on the mini release in tests/data/esco_mini (both layouts, en and de)."""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.esco import (
    STAT_KEYS,
    Release,
    SkillRecord,
    clean_text,
    detect_version,
    normalize_version,
    read_release,
    split_labels,
)
from ingest.errors import EscoFormatError
from search.errors import ConfigError, SearchError
from search.schema import COLLECTIONS, REUSE_LEVELS, SKILL_TYPES

DATA = Path(__file__).resolve().parents[1] / "data"
MINI = DATA / "esco_mini"
V11 = MINI / "v1.1.9"
V12 = MINI / "v1.2.9"
EN_DIR = "esco_v1.1.9_classification_en_csv"
REL_DIR = "esco_v1.1.9_relations_csv"


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("esco_mini_fixtures", DATA / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


fx = _load_fixture_module()
S, O, G = fx.SKILL, fx.OCCUPATION, fx.GROUP


@pytest.fixture(scope="module")
def v11() -> Release:
    return read_release([V11], ["en", "de"])


@pytest.fixture(scope="module")
def v12() -> Release:
    return read_release([V12], ["en", "de"])


def by_uri(release: Release, lang: str) -> dict[str, SkillRecord]:
    return {r.concept_uri: r for r in release.skills[lang]}


def copy_of(src: Path, dest: Path) -> Path:
    out = dest / src.name
    shutil.copytree(src, out)
    return out


def rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8-sig")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def append_rows(path: Path, *rows: list[str]) -> None:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    with path.open("a", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


# ------------------------------------------------------------------------------------------ fixtures


def test_committed_fixture_matches_its_generator():
    expected = fx.fixture_files()
    found = {p.relative_to(MINI).as_posix() for p in MINI.rglob("*") if p.is_file()}
    assert found == set(expected), "run python tests/data/make_fixtures.py"
    for rel, data in expected.items():
        assert (MINI / rel).read_bytes() == data, f"{rel} differs: run python tests/data/make_fixtures.py"


# ------------------------------------------------------------------------------------------ both layouts


def test_reads_v11_layout_in_two_languages(v11):
    assert v11.esco_version == "v1.1.9"
    assert v11.layout == "v1.1"
    assert v11.languages == ("en", "de")
    assert v11.sources == (str(V11),)
    for lang in ("en", "de"):
        assert [r.concept_uri for r in v11.skills[lang]] == [S[k] for k in fx.KEPT_SKILLS]
        assert all(r.language == lang and r.status == "released" for r in v11.skills[lang])
        assert len({r.concept_uri for r in v11.skills[lang]}) == 20


def test_v12_layout_reads_to_the_same_records(v11, v12):
    assert (v12.esco_version, v12.layout) == ("v1.2.9", "v1.2")
    assert v12.skills == v11.skills
    for lang in ("en", "de"):
        assert v12.stats.counts[lang] == v11.stats.counts[lang]


@pytest.mark.parametrize("layout", ["v1.1", "v1.2"])
def test_zips_as_shipped_read_like_folders(tmp_path, layout, v11):
    zips = fx.zip_release(layout, tmp_path / "dl")
    from_zips = read_release(zips, ["en", "de"])
    from_folder_of_zips = read_release([tmp_path / "dl"], ["de", "en"])
    assert from_zips.skills == v11.skills
    assert from_folder_of_zips.skills == v11.skills
    assert from_zips.esco_version == ("v1.1.9" if layout == "v1.1" else "v1.2.9")
    assert from_zips.layout == layout
    assert from_zips.sources == tuple(str(z.resolve()) for z in zips)


def test_records_are_frozen_with_slots(v11):
    rec = v11.skills["en"][0]
    with pytest.raises(AttributeError):
        rec.preferred_label = "x"  # type: ignore[misc]
    assert not hasattr(rec, "__dict__")


# ------------------------------------------------------------------------------------------ cells


def test_alt_labels_cleaned_deduplicated_preferred_removed(v11):
    en, de = by_uri(v11, "en")[S["automate"]], by_uri(v11, "de")[S["automate"]]
    assert en.preferred_label == "automate tasks with Python scripts"
    assert en.alt_labels == ("write Python scripts", "Python scripting", "script automation")
    assert en.hidden_labels == ("py scripts",)
    assert de.preferred_label == "Aufgaben mit Python-Skripten automatisieren"
    assert de.alt_labels == ("Python-Skripte schreiben", "Python-Skripting", "Skriptautomatisierung")
    assert by_uri(v11, "en")[S["bread"]].alt_labels == ("make bread", "produce bread")
    assert by_uri(v11, "de")[S["bread"]].alt_labels == ("Brot herstellen",)


def test_line_breaks_inside_quotes_are_collapsed(v11):
    bread = by_uri(v11, "en")[S["bread"]]
    assert bread.description == (
        "Perform all the steps of baking bread, from mixing and kneading the dough and letting it rise to "
        "shaping the loaves and baking them in the oven at the right temperature."
    )
    assert "\n" not in by_uri(v11, "de")[S["bread"]].description
    assert by_uri(v11, "de")[S["bread"]].description.endswith("bei der richtigen Temperatur.")


def test_first_row_of_a_duplicate_uri_wins(v11):
    assert by_uri(v11, "en")[S["bread"]].preferred_label == "bake bread"
    assert by_uri(v11, "de")[S["bread"]].preferred_label == "Brot backen"


def test_empty_description_type_and_reuse_level_are_kept(v11):
    cash = by_uri(v11, "en")[S["cash_register"]]
    assert (cash.description, cash.reuse_level, cash.skill_type) == ("", "", "skill/competence")
    empathy = by_uri(v11, "de")[S["empathy"]]
    assert (empathy.skill_type, empathy.reuse_level) == ("", "transversal")
    for r in v11.skills["en"]:
        assert r.skill_type in (*SKILL_TYPES, "")
        assert r.reuse_level in (*REUSE_LEVELS, "")


def test_occupation_relations_with_labels_in_each_language(v11):
    py_en, py_de = by_uri(v11, "en")[S["python"]], by_uri(v11, "de")[S["python"]]
    assert py_en.essential_for == (O["data_analyst"],)
    assert py_en.essential_for_labels == ("data analyst",)
    assert py_en.optional_for == (O["developer"],)
    assert py_de.optional_for_labels == ("Softwareentwickler/Softwareentwicklerin",)
    spreadsheets = by_uri(v11, "en")[S["spreadsheets"]]
    assert spreadsheets.essential_for == tuple(sorted([O["accountant"], O["data_analyst"]]))
    labels = dict(zip(spreadsheets.essential_for, spreadsheets.essential_for_labels))
    assert labels == {O["accountant"]: "accountant", O["data_analyst"]: "data analyst"}
    assert spreadsheets.optional_for == (O["developer"],)
    # the relation to an unknown occupation is dropped, the baker's one kept
    assert by_uri(v11, "en")[S["bread"]].essential_for == (O["baker"],)
    assert by_uri(v11, "en")[S["solar"]].essential_for == by_uri(v11, "en")[S["solar"]].optional_for == ()


def test_skill_groups_are_all_ancestors_through_any_broader_edge(v11):
    en, de = by_uri(v11, "en"), by_uri(v11, "de")
    bread = en[S["bread"]]
    assert bread.broader == (G["S6.3"],)
    assert bread.skill_groups == tuple(sorted([G["S6.3"], G["S6"], G["S"]]))
    # skill -> skill -> group -> group -> group
    automate = en[S["automate"]]
    assert automate.broader == (S["scripting"],)
    assert set(automate.skill_groups) == {G["S5.1"], G["S5"], G["S"]}
    speak = de[S["german_speak"]]
    assert speak.broader == (S["german"],)
    assert dict(zip(speak.skill_groups, speak.skill_group_labels)) == {
        G["L1"]: "Sprachen", G["L"]: "Sprachfähigkeiten und -kenntnisse"}
    # two direct broader groups
    sheets = en[S["spreadsheets"]]
    assert sheets.broader == tuple(sorted([G["S5"], G["S2.5"]]))
    assert set(sheets.skill_groups) == {G["S5"], G["S2.5"], G["S2"], G["S"]}
    assert en[S["empathy"]].skill_groups == (G["T"],)
    for r in en.values():
        assert list(r.skill_groups) == sorted(set(r.skill_groups))
        assert len(r.skill_group_labels) == len(r.skill_groups) and all(r.skill_group_labels)


def test_collections(v11):
    en = by_uri(v11, "en")
    assert en[S["spreadsheets"]].collections == ("digcomp", "digital")
    assert en[S["waste"]].collections == ("green",)
    assert en[S["german_speak"]].collections == ("language",)
    assert en[S["critical_thinking"]].collections == ("transversal",)
    assert en[S["research"]].collections == ("research",)
    assert en[S["bread"]].collections == ()
    assert all(set(r.collections) <= set(COLLECTIONS) for r in en.values())


def test_stats_count_everything_skipped_or_repaired(v11):
    expected = {
        "skill_rows": 23, "skills_read": 20, "skipped_not_released": 1, "skipped_duplicate_uri": 1,
        "skipped_empty_label": 1, "skipped_empty_uri": 0, "skipped_over_limit": 0, "empty_description": 1,
        "empty_skill_type": 1, "empty_reuse_level": 1, "alt_labels_deduplicated": 1,
        "alt_labels_preferred_removed": 2, "occupations_read": 8, "relation_rows": 34, "relations_kept": 31,
        "relations_unknown_occupation": 1, "relations_unknown_skill": 1, "relations_skipped_skill": 1,
        "skill_groups_read": 24, "broader_rows": 43, "broader_cycles": 0, "collections_missing": 0,
        "collection_members": 12, "collection_members_unknown": 0, "invisible_chars_removed": 2,
    }  # fmt: skip
    for lang in ("en", "de"):
        counts = v11.stats.counts[lang]
        assert set(counts) == set(STAT_KEYS)
        assert {k: counts[k] for k in expected} == expected
    assert v11.stats.get("skills_read") == 40
    assert v11.stats.get("skills_read", "de") == 20
    with pytest.raises(KeyError):
        v11.stats.get("no_such_key")
    w = "\n".join(v11.stats.warnings)
    assert f"duplicate conceptUri {S['bread']}" in w and "skills_en.csv, line 69" in w
    assert f"unknown occupation {fx.UNKNOWN_OCCUPATION}" in w
    # ESCO has an ICT collection (v1.1.0) or a digital one (later): a release with either lacks nothing
    assert "ictSkillsCollection" not in w and "collection files not in the release" not in w


def test_limit_keeps_the_first_skills_and_their_relations():
    rel = read_release([V11], ["en"], limit=3)
    assert [r.concept_uri for r in rel.skills["en"]] == [S["python"], S["scripting"], S["automate"]]
    c = rel.stats.counts["en"]
    assert c["skills_read"] == 3 and c["skipped_over_limit"] == 18  # the duplicate of bread too
    kept = sum(len(r.essential_for) + len(r.optional_for) for r in rel.skills["en"])
    assert c["relations_kept"] == kept == 5  # python 2, scripting 1, automate 2
    assert by_uri(rel, "en")[S["python"]].essential_for == (O["data_analyst"],)


def test_statuses_select_rows():
    rel = read_release([V12], ["en"], statuses=("released", "obsolete"))
    fax = by_uri(rel, "en")[S["fax"]]
    assert fax.status == "obsolete"
    assert fax.optional_for == (O["developer"],)
    assert rel.stats.counts["en"]["relations_skipped_skill"] == 0


def test_languages_normalised_and_deduplicated():
    rel = read_release([V12], [" DE", "de", "en"])
    assert rel.languages == ("de", "en")


# ------------------------------------------------------------------------------------------ versions


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("esco_v1.1.1_classification_en_csv.zip", "v1.1.1"),
        ("ESCO dataset - v1.2.0 - classification - en - csv.zip", "v1.2.0"),
        ("v1.2.0", "v1.2.0"),
        ("v1.2", "v1.2.0"),
        ("esco-1.0.8", "v1.0.8"),
        ("ESCO_V1.1.2_relations", "v1.1.2"),
        ("release", None),
        ("python3.11", None),
        ("dev1.2.3", None),
        ("v1.2.3.4", None),
    ],
)
def test_detect_version_from_names(tmp_path, name, version):
    p = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("skills_en.csv", "conceptUri\n")
    else:
        p.mkdir()
    assert detect_version([p]) == version


def test_detect_version_from_zip_inner_folder_and_nested_folders(tmp_path):
    z = tmp_path / "download.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ESCO dataset - v1.2.0 - classification - en - csv/skills_en.csv", "conceptUri\n")
    assert detect_version(z) == "v1.2.0"
    assert detect_version([V11]) == "v1.1.9"


def test_disagreeing_versions_name_both(tmp_path):
    rel = tmp_path / "esco_v1.1.8_relations_csv"
    shutil.copytree(V11 / REL_DIR, rel)
    with pytest.raises(EscoFormatError) as e:
        read_release([V11 / EN_DIR, rel])
    msg = str(e.value)
    assert "v1.1.8" in msg and "v1.1.9" in msg and str(rel) in msg and EN_DIR in msg
    with pytest.raises(EscoFormatError):
        detect_version([V11 / EN_DIR, rel])


def test_version_missing_asks_for_esco_version(tmp_path):
    (tmp_path / "release").mkdir()
    for d in (EN_DIR, REL_DIR):
        shutil.copytree(V11 / d, tmp_path / "release" / d.replace("_v1.1.9", ""))
    with pytest.raises(EscoFormatError, match="--esco-version"):
        read_release([tmp_path / "release"])
    rel = read_release([tmp_path / "release"], esco_version="1.1.7")
    assert rel.esco_version == "v1.1.7" and len(rel.skills["en"]) == 20


def test_version_argument_overrides_names_with_a_warning():
    rel = read_release([V12], esco_version="V1.2")
    assert rel.esco_version == "v1.2.0"
    assert any("v1.2.9" in w for w in rel.stats.warnings)


@pytest.mark.parametrize("bad", ["", "latest", "1", "v1.x.0"])
def test_invalid_version_argument(bad):
    with pytest.raises(ConfigError, match="invalid ESCO version"):
        read_release([V12], esco_version=bad)
    assert normalize_version(" v1.1.1 ") == "v1.1.1"


# ------------------------------------------------------------------------------------------ errors


def test_unknown_language_lists_valid_codes():
    with pytest.raises(ConfigError) as e:
        read_release([V12], ["en", "xx"])
    assert "'xx'" in str(e.value) and "de, el, en" in str(e.value)


def test_language_missing_from_release_names_those_present():
    with pytest.raises(EscoFormatError) as e:
        read_release([V11], ["fr"])
    assert "'fr'" in str(e.value) and "languages present: de, en" in str(e.value)


@pytest.mark.parametrize(
    ("layout", "relpath", "name"),
    [
        ("v1.1", f"{EN_DIR}/skills_en.csv", "skills_en.csv"),
        ("v1.1", f"{EN_DIR}/occupations_en.csv", "occupations_en.csv"),
        ("v1.1", f"{EN_DIR}/skillGroups_en.csv", "skillGroups_en.csv"),
        ("v1.1", f"{REL_DIR}/broaderRelationsSkillPillar.csv", "broaderRelationsSkillPillar.csv"),
        ("v1.1", f"{REL_DIR}/occupationSkillRelations.csv", "occupationSkillRelations.csv"),
        ("v1.2", "occupationSkillRelations_de.csv", "occupationSkillRelations_de.csv"),
        ("v1.2", "broaderRelationsSkillPillar_en.csv", "broaderRelationsSkillPillar_en.csv"),
        ("v1.2", "occupations_de.csv", "occupations_de.csv"),
    ],
)
def test_missing_required_file_is_named_with_the_places_searched(tmp_path, layout, relpath, name):
    root = copy_of(V11 if layout == "v1.1" else V12, tmp_path)
    (root / relpath).unlink()
    with pytest.raises(EscoFormatError) as e:
        read_release([root], ["en", "de"])
    msg = str(e.value)
    assert name in msg and str(root) in msg
    if name.startswith("skills_"):
        assert "languages present: de" in msg


def test_missing_collection_file_is_only_a_warning(tmp_path):
    root = copy_of(V12, tmp_path)
    (root / "greenSkillsCollection_en.csv").unlink()
    rel = read_release([root])
    assert by_uri(rel, "en")[S["waste"]].collections == ()
    assert rel.stats.counts["en"]["collections_missing"] == 1  # green only: ict is not missing where the digital collection is there
    assert any("greenSkillsCollection_en.csv" in w for w in rel.stats.warnings)


@pytest.mark.parametrize(
    ("relpath", "column"),
    [
        (f"{EN_DIR}/skills_en.csv", "preferredLabel"),
        (f"{EN_DIR}/skills_en.csv", "description"),
        (f"{EN_DIR}/occupations_en.csv", "conceptUri"),
        (f"{REL_DIR}/occupationSkillRelations.csv", "skillUri"),
        (f"{REL_DIR}/broaderRelationsSkillPillar.csv", "broaderUri"),
        (f"{EN_DIR}/greenSkillsCollection_en.csv", "conceptUri"),
    ],
)
def test_renamed_column_is_named_with_the_columns_found(tmp_path, relpath, column):
    root = copy_of(V11, tmp_path)
    p = root / relpath
    header, rest = p.read_text(encoding="utf-8").split("\n", 1)
    fields = header.split(",")
    fields[fields.index(column)] = f"{column}X"
    p.write_text(",".join(fields) + "\n" + rest, encoding="utf-8")
    with pytest.raises(EscoFormatError) as e:
        read_release([root])
    err = e.value
    assert err.file and err.file.endswith(Path(relpath).name)
    assert err.line == 1 and err.column == column
    assert f"{column}X" in str(err) and "columns found" in str(err)


def test_v12_relation_columns_are_read_by_name(tmp_path):
    root = copy_of(V12, tmp_path)
    p = root / "occupationSkillRelations_en.csv"
    rows = list(csv.reader(p.open(encoding="utf-8", newline="")))
    order = [5, 4, 3, 2, 1, 0]  # reverse the columns, add an unknown one
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        for i, row in enumerate(rows):
            w.writerow([row[j] for j in order] + (["extra"] if i == 0 else ["x"]))
    assert read_release([root]).skills["en"] == read_release([V12]).skills["en"]


def test_truncated_zip_names_the_zip(tmp_path):
    zips = fx.zip_release("v1.1", tmp_path)
    rel_zip = zips[-1]
    data = rel_zip.read_bytes()
    rel_zip.write_bytes(data[: len(data) // 2])
    with pytest.raises(EscoFormatError) as e:
        read_release(zips)
    assert str(rel_zip) in str(e.value)


def test_crc_error_names_the_zip_and_member(tmp_path):
    z = tmp_path / "esco_v1.2.9_classification_csv.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(V12.glob("*.csv")):
            zf.write(f, f.name)
    data = bytearray(z.read_bytes())
    pos = data.index(b"KnowledgeSkillCompetence,http://data.europa.eu/esco/skill/", data.index(b"skills_en.csv"))
    data[pos] = ord("k")
    z.write_bytes(bytes(data))
    with pytest.raises(EscoFormatError) as e:
        read_release([z])
    assert str(z) in str(e.value) and "corrupt" in str(e.value)


def test_non_utf8_names_file_line_and_column(tmp_path):
    root = copy_of(V11, tmp_path)
    p = root / EN_DIR / "skills_en.csv"
    data = p.read_bytes().replace(b"The German language.", b"The German language \xe9.")
    p.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    with pytest.raises(EscoFormatError) as e:
        read_release([root])
    err = e.value
    assert err.file == str(p) and err.line == line and err.column == "description"
    assert "UTF-8" in str(err)


def test_utf8_bom_is_accepted(tmp_path):
    root = copy_of(V12, tmp_path)
    for p in root.glob("*_en.csv"):
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert read_release([root]).skills["en"] == read_release([V12]).skills["en"]


def test_empty_release_is_an_error(tmp_path):
    root = copy_of(V12, tmp_path)
    p = root / "skills_en.csv"
    p.write_text(p.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(EscoFormatError, match="no skill rows") as e:
        read_release([root])
    assert e.value.file == str(p)


def test_empty_file_is_an_error(tmp_path):
    root = copy_of(V12, tmp_path)
    (root / "skillGroups_en.csv").write_bytes(b"")
    with pytest.raises(EscoFormatError, match="empty") as e:
        read_release([root])
    assert e.value.file and e.value.file.endswith("skillGroups_en.csv")


def test_no_row_with_the_statuses_asked_for():
    with pytest.raises(EscoFormatError) as e:
        read_release([V12], statuses=("draft",))
    assert "released: 22" in str(e.value) and "obsolete: 1" in str(e.value)


def test_truncated_csv_names_the_line(tmp_path):
    root = copy_of(V12, tmp_path)
    p = root / "skills_en.csv"
    data = p.read_bytes()
    cut = data.index(b"Perform all the steps of baking")
    p.write_bytes(data[:cut])
    with pytest.raises(EscoFormatError) as e:
        read_release([root])
    assert e.value.file == str(p) and e.value.line is not None and "truncated" in str(e.value)


def test_row_with_missing_fields_names_the_line(tmp_path):
    root = copy_of(V12, tmp_path)
    p = root / "occupations_en.csv"
    append_rows(p, ["Occupation", "http://data.europa.eu/esco/occupation/x", "1234"])
    n = len(p.read_text(encoding="utf-8").splitlines())
    with pytest.raises(EscoFormatError) as e:
        read_release([root])
    assert (e.value.file, e.value.line) == (str(p), n)
    assert "expected 15 fields" in str(e.value)


def test_bad_relation_type_names_line_and_column(tmp_path):
    root = copy_of(V11, tmp_path)
    p = root / REL_DIR / "occupationSkillRelations.csv"
    rewrite(p, ",optional,", ",optionel,")
    with pytest.raises(EscoFormatError) as e:
        read_release([root])
    assert e.value.column == "relationType" and e.value.line == 4 and "optionel" in str(e.value)


def test_not_found_and_unreadable_inputs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_release([tmp_path / "nope"])
    junk = tmp_path / "esco_v1.1.1.tar"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="neither"):
        read_release([junk])
    fake = tmp_path / "esco_v1.1.1_classification_en_csv.zip"
    fake.write_bytes(b"this is not a zip archive")
    with pytest.raises(EscoFormatError) as e:
        read_release([fake])
    assert str(fake) in str(e.value)
    with pytest.raises(ConfigError):
        read_release([])


def test_same_file_twice_is_an_error(tmp_path):
    zips = fx.zip_release("v1.1", tmp_path)
    with pytest.raises(EscoFormatError, match="found twice"):
        read_release([*zips, V11 / REL_DIR])


def test_mixed_layouts_are_an_error(tmp_path):
    extra = tmp_path / "esco_v1.1.9_extra"
    extra.mkdir()
    shutil.copy(V12 / "occupationSkillRelations_en.csv", extra)
    with pytest.raises(EscoFormatError, match="mix") as e:
        read_release([V11, extra])
    assert "occupationSkillRelations_en.csv" in str(e.value)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        read_release([V12], limit=0)
    with pytest.raises(ConfigError):
        read_release([V12], statuses=())
    with pytest.raises(ConfigError):
        read_release([V12], [])


def test_errors_are_search_errors_with_one_line_messages(tmp_path):
    with pytest.raises(SearchError) as e:
        read_release([V11], ["fr"])
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ repairs


def test_broader_cycle_is_survived_and_counted(tmp_path):
    root = copy_of(V11, tmp_path)
    p = root / REL_DIR / "broaderRelationsSkillPillar.csv"
    append_rows(p, ["SkillGroup", G["S"], "SkillGroup", G["S5.1"]])  # S5.1 -> S5 -> S -> S5.1
    rel = read_release([root])
    assert rel.stats.counts["en"]["broader_cycles"] == 1
    assert any("cycle" in w for w in rel.stats.warnings)
    assert set(by_uri(rel, "en")[S["automate"]].skill_groups) == {G["S5.1"], G["S5"], G["S"]}


def test_self_loop_and_skill_cycle(tmp_path):
    root = copy_of(V11, tmp_path)
    p = root / REL_DIR / "broaderRelationsSkillPillar.csv"
    append_rows(
        p,
        ["KnowledgeSkillCompetence", S["bread"], "KnowledgeSkillCompetence", S["bread"]],
        ["KnowledgeSkillCompetence", S["scripting"], "KnowledgeSkillCompetence", S["automate"]],
    )
    rel = read_release([root])
    en = by_uri(rel, "en")
    assert rel.stats.counts["en"]["broader_cycles"] == 2
    assert set(en[S["automate"]].skill_groups) == {G["S5.1"], G["S5"], G["S"]}
    assert en[S["bread"]].broader == tuple(sorted([G["S6.3"], S["bread"]]))


def test_duplicate_and_conflicting_relations(tmp_path):
    root = copy_of(V11, tmp_path)
    p = root / REL_DIR / "occupationSkillRelations.csv"
    append_rows(
        p,
        [O["baker"], "essential", "skill/competence", S["bread"]],  # repeat
        [O["baker"], "optional", "skill/competence", S["bread"]],  # conflicts: essential wins
    )
    rel = read_release([root])
    c = rel.stats.counts["en"]
    assert (c["relations_duplicate"], c["relations_conflicting"], c["relations_kept"]) == (1, 1, 31)
    bread = by_uri(rel, "en")[S["bread"]]
    assert bread.essential_for == (O["baker"],) and bread.optional_for == ()


def test_unknown_collection_member_is_counted(tmp_path):
    root = copy_of(V12, tmp_path)
    append_rows(root / "greenSkillsCollection_en.csv", ["KnowledgeSkillCompetence", fx.UNKNOWN_SKILL] + [""] * 8)
    rel = read_release([root])
    assert rel.stats.counts["en"]["collection_members_unknown"] == 1


def test_not_released_occupation_drops_its_relations(tmp_path):
    root = copy_of(V12, tmp_path)
    rewrite(root / "occupations_en.csv", ",released,", ",obsolete,")  # the first occupation: developer
    rel = read_release([root])
    c = rel.stats.counts["en"]
    assert c["occupations_skipped_not_released"] == 1 and c["relations_skipped_occupation"] == 5
    assert O["developer"] not in by_uri(rel, "en")[S["scripting"]].essential_for


def test_huge_cells_are_read(tmp_path):
    root = copy_of(V12, tmp_path)
    big = "Knead the dough. " * 20000  # 340 kB, over csv's default field limit
    rewrite(root / "skills_en.csv", "Perform all the steps of baking bread,", big + "Perform all the steps of baking bread,")
    rel = read_release([root])
    assert by_uri(rel, "en")[S["bread"]].description.startswith("Knead the dough. Knead")


def test_invisible_characters_in_uris_and_labels(tmp_path):
    root = copy_of(V12, tmp_path)
    p = root / "skills_en.csv"
    rewrite(p, S["forklift"], "\ufeff" + S["forklift"] + "\u200b")
    rewrite(p, "operate forklift", "operate\u00adfork\u200elift\u00a0\u00a0truck")
    fork = by_uri(read_release([root]), "en")[S["forklift"]]
    assert fork.preferred_label == "operateforklift truck"
    assert fork.essential_for == () and fork.optional_for == (O["welder"],)


# ------------------------------------------------------------------------------------------ text helpers


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a\u00a0 b\t\nc  ", "a b c"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("\u200f\u202bbidi\u202c\u2066x\u2069", "bidix"),
        ("ctrl\x00\x07\x1b\x7f\x9fchars", "ctrlchars"),
        ("Cafe\u0301", "Café"),
        ("line\u2028sep\r\npara\u2029", "line sep para"),
        ("", ""),
        ("\u200b \u00a0", ""),
        ("\u0600\u0661", "\u0600\u0661"),  # Arabic number sign (visible) is kept
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("cell", "labels"),
    [
        ("a\nb\r\nc\rd", ["a", "b", "c", "d"]),
        ("take the initiative | give impetus", ["take the initiative", "give impetus"]),
        ("x\n\n  x \nX\n\u200b\n", ["x", "X"]),
        ("a|b\nc | d", ["a|b", "c", "d"]),
        ("", []),
    ],
)
def test_split_labels(cell, labels):
    assert split_labels(cell) == labels


def _invisible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Cs") and not ch.isspace() and ch not in "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"


def test_invisible_set_covers_this_pythons_unicode_data():
    missing = [hex(c) for c in range(sys.maxunicode + 1) if _invisible(chr(c)) and clean_text(f"a{chr(c)}b") != "ab"]
    assert missing == []


SPICY = st.sampled_from(list("\u200b\ufeff\u00ad\u200e\u202e\u2060\x00\x1b\n\r\t \u00a0\u3000|\"',e\u0301\u2028"))
TEXT = st.text(alphabet=st.one_of(st.characters(), SPICY), max_size=40)  # may hold lone surrogates
FILE_TEXT = st.text(alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), SPICY), max_size=40)  # UTF-8-encodable


def _is_clean(s: str) -> bool:
    return (
        not any(_invisible(ch) for ch in s)
        and all(ch == " " or not ch.isspace() for ch in s)
        and "  " not in s
        and s == s.strip()
        and unicodedata.is_normalized("NFC", s)
    )


@given(TEXT)
def test_clean_text_is_idempotent_and_leaves_nothing_invisible(s):
    c = clean_text(s)
    assert clean_text(c) == c
    assert _is_clean(c)


@given(TEXT)
def test_split_labels_idempotent(cell):
    labels = split_labels(cell)
    assert split_labels("\n".join(labels)) == labels
    assert split_labels(" | ".join(labels)) == labels or any("|" in lab for lab in labels)
    assert len(set(labels)) == len(labels)
    assert all(lab and _is_clean(lab) and lab == clean_text(lab) for lab in labels)


_SKILLS_HEADER = ["conceptType", "conceptUri", "skillType", "reuseLevel", "preferredLabel", "altLabels",
                  "hiddenLabels", "status", "description"]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(header)
        w.writerows(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label=FILE_TEXT, description=FILE_TEXT, alts=st.lists(FILE_TEXT, max_size=4), hidden=FILE_TEXT,
       occ_label=FILE_TEXT)
def test_arbitrary_cells_round_trip_through_csv(label, description, alts, hidden, occ_label):
    uri, other, occ = S["bread"], S["python"], O["baker"]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "esco_v1.2.9"
        root.mkdir()
        _write(root / "skills_en.csv", _SKILLS_HEADER, [
            ["KnowledgeSkillCompetence", other, "knowledge", "cross-sector", "Python", "", "", "released", "x"],
            ["KnowledgeSkillCompetence", uri, "skill/competence", "transversal", label, "\n".join(alts), hidden,
             "released", description],
        ])  # fmt: skip
        _write(root / "occupations_en.csv", ["conceptUri", "preferredLabel"], [[occ, occ_label]])
        _write(root / "skillGroups_en.csv", ["conceptUri", "preferredLabel"], [])
        _write(root / "occupationSkillRelations_en.csv", ["occupationUri", "relationType", "skillUri"],
               [[occ, "essential", uri], [occ, "optional", other]])
        _write(root / "broaderRelationsSkillPillar_en.csv", ["conceptUri", "broaderUri"], [])
        rel = read_release([root])
    recs = by_uri(rel, "en")
    assert recs[other].optional_for_labels == (clean_text(occ_label),)
    if not clean_text(label):
        assert uri not in recs and rel.stats.counts["en"]["skipped_empty_label"] == 1
        return
    r = recs[uri]
    assert r.preferred_label == clean_text(label)
    assert r.description == clean_text(description)
    assert list(r.alt_labels) == [a for a in split_labels("\n".join(alts)) if a != r.preferred_label]
    assert list(r.hidden_labels) == [h for h in split_labels(hidden) if h != r.preferred_label]
    assert r.essential_for == (occ,)
    for text in (r.preferred_label, r.description, *r.alt_labels, *r.hidden_labels, *r.essential_for_labels):
        assert _is_clean(text)
