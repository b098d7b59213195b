"""Occupations from skills: the weighted coverage ranking against hand-computed figures (the mini release's
occupation payloads, read into the index through a store stub; no model)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.esco.occupations import read_occupations
from ingest.occupations import occupation_points
from search.errors import InvalidQuery
from search.occupations import OccupationIndex, rank_by_coverage, skill_weights
from search.stores import StoredPoint

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests" / "data" / "make_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(fx)
OCC, SKILL = fx.OCCUPATION, fx.SKILL


class _ScrollOnly:
    def __init__(self, points: list[StoredPoint]) -> None:
        self.points = points

    def scroll(self, name: str, with_vectors: bool = False, with_payload=True, batch_size: int = 1000
               ) -> Iterator[StoredPoint]:
        keep = set(with_payload) if isinstance(with_payload, list) else None
        for p in self.points:
            yield StoredPoint(p.id, {k: v for k, v in p.payload.items() if keep is None or k in keep})


@pytest.fixture(scope="module")
def index() -> OccupationIndex:
    rel = read_occupations([ROOT / "tests" / "data" / "esco_mini" / "v1.2.9"], ["en", "de"])
    pts = occupation_points(rel, "m", "passage: ")
    return OccupationIndex.load(_ScrollOnly([StoredPoint(p.id, p.payload) for p in pts]), "c")  # type: ignore[arg-type]


def test_hand_computed_ranking(index):
    # Skills given: bake bread, operate cash register, dispose of waste.
    # baker:          E = {bread, waste}, O = {german_speak, cash_register}   -> (2 + 0.5*1) / (2 + 0.5*2) = 5/6
    # shop assistant: E = {cash_register}, O = {german_speak}                 -> (1 + 0)     / (1 + 0.5)   = 2/3
    # bicycle mech.:  E = {bicycles},      O = {cash_register, waste}         -> (0 + 0.5*2) / (1 + 0.5*2) = 1/2
    # welder:         E = {welding x2},    O = {forklift, waste}              -> (0 + 0.5)   / (2 + 0.5*2) = 1/6
    got = rank_by_coverage(index, skill_weights([SKILL["bread"], SKILL["cash_register"], SKILL["waste"]]), limit=10,
                           language="en")
    assert [(m.concept_uri, m.score) for m in got] == [
        (OCC["baker"], round(5 / 6, 6)), (OCC["shop_assistant"], round(2 / 3, 6)),
        (OCC["bike_mechanic"], 0.5), (OCC["welder"], round(1 / 6, 6)),
    ]
    baker = got[0]
    assert baker.preferred_label == "baker" and baker.language == "en"
    assert (baker.essential_coverage, baker.optional_coverage, baker.n_essential, baker.n_optional) == (1.0, 0.5, 2, 2)
    assert {r.label for r in baker.matched_essential} == {"bake bread", "dispose of waste"}
    assert baker.missing_essential == ()
    assert [r.label for r in baker.matched_optional] == ["operate cash register"]
    bike = got[2]
    assert [r.label for r in bike.missing_essential] == ["repair bicycles"] and bike.essential_coverage == 0.0
    assert bike.optional_coverage == 1.0


def test_weights_languages_filters_and_options(index):
    w = {SKILL["bread"]: 0.5, SKILL["waste"]: 1.0}
    (baker, *_rest) = rank_by_coverage(index, w, language="de")
    # (0.5 + 1) / (2 + 0.5*2) = 0.5; labels in German
    assert baker.concept_uri == OCC["baker"] and baker.score == 0.5 and baker.essential_coverage == 0.75
    assert {r.label: r.weight for r in baker.matched_essential} == {"Brot backen": 0.5, "Abfälle entsorgen": 1.0}
    assert baker.preferred_label == "Bäcker/Bäckerin"
    only_essential = rank_by_coverage(index, skill_weights([SKILL["waste"]]), optional_weight=0.0)
    assert [m.concept_uri for m in only_essential] == [OCC["baker"]]  # the others have waste as optional: 0 score
    assert [m.concept_uri for m in rank_by_coverage(index, skill_weights([SKILL["waste"]]), min_essential=1)] == [OCC["baker"]]
    in_group = rank_by_coverage(index, skill_weights([SKILL["waste"]]), isco_groups=["72"])
    assert {m.concept_uri for m in in_group} == {OCC["welder"], OCC["bike_mechanic"]}
    assert rank_by_coverage(index, skill_weights([SKILL["waste"]]), limit=1)[0].concept_uri == OCC["baker"]
    assert rank_by_coverage(index, {}) == []


def test_ties_break_by_matched_essential_then_uri(index):
    # Skills given: use welding equipment, interact verbally in German.
    # welder:         E 2 (welding equipment matched), O 2      -> 1 / 3   (one essential matched)
    # shop assistant: E 1, O 1 (German matched)                  -> 0.5 / 1.5 = 1 / 3 (none essential): after
    #                 the welder although its URI sorts first
    # baker, nurse:   E 2, O 2 (German matched)                  -> 0.5 / 3 = 1 / 6 each: by URI
    assert OCC["shop_assistant"] < OCC["welder"] and OCC["baker"] < OCC["nurse"]
    got = rank_by_coverage(index, skill_weights([SKILL["welding_equipment"], SKILL["german_speak"]]))
    assert [m.concept_uri for m in got] == [OCC["welder"], OCC["shop_assistant"], OCC["baker"], OCC["nurse"]]
    assert [m.score for m in got] == [round(1 / 3, 6)] * 2 + [round(1 / 6, 6)] * 2
    # think critically: essential for developer (E 2, O 3) and data analyst (E 3, O 2), optional for accountant
    # (E 3, O 1: its second optional skill is not in the release)
    got = rank_by_coverage(index, skill_weights([SKILL["critical_thinking"]]))
    assert [m.concept_uri for m in got] == [OCC["developer"], OCC["data_analyst"], OCC["accountant"]]
    assert [m.score for m in got] == [round(1 / 3.5, 6), 0.25, round(0.5 / 3.5, 6)]


def test_skill_inputs():
    class Hit:
        concept_uri = SKILL["bread"]

    assert skill_weights([Hit(), SKILL["waste"], SKILL["waste"]]) == {SKILL["bread"]: 1.0, SKILL["waste"]: 1.0}
    assert skill_weights(SKILL["bread"]) == {SKILL["bread"]: 1.0}
    with pytest.raises(InvalidQuery, match="bake bread"):
        skill_weights(["bake bread"])
    with pytest.raises(InvalidQuery, match=r"\(0, 1\]"):
        skill_weights({SKILL["bread"]: 1.5})
    with pytest.raises(InvalidQuery, match="not both 0"):
        rank_by_coverage(OccupationIndex(), {}, essential_weight=0, optional_weight=0)
