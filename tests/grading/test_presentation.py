"""The sorting station's presenter: one value per field with its source, and the precedence rules
(label beats the material heads, a damage region fills the damage fields, one category vocabulary,
compositions keep their spaces, the route's own reasons, unsure fields marked)."""

from __future__ import annotations

from typing import Any

import pytest

from fashionlens.grading.item import empty_item
from fashionlens.grading.presentation import (
    CATEGORY_NAMES,
    STATION_SCHEMA,
    UNSURE_BELOW,
    category_name,
    composition_display,
    present_item,
    spaced_composition_text,
)
from fashionlens.grading.routing import damage_below_rules, load_rules
from fashionlens.taxonomy import load_taxonomy


def _record(**changes: Any) -> dict[str, Any]:
    """An item record of the current schema (``schema=`` to pick v1 or v2) with the given keys replaced."""
    rec = empty_item("it-1", [{"role": "front", "path": "front.jpg", "error": None}])
    rec["model"] = {"damage_model": "damage-segmenter-lite0"}
    rec.update(changes)
    return rec


def _region(kind: str, share: float = 0.01) -> dict[str, Any]:
    return {"view": "front", "type": kind, "area_share": share, "score": 0.9, "bbox": [1, 1, 4, 4], "mask": None}


def _field(view: dict[str, Any], name: str) -> dict[str, Any]:
    [f] = [f for f in view["fields"] if f["name"] == name]
    return f


def _comp(text: str, fibres: dict[str, float]) -> dict[str, Any]:
    ordered = sorted(fibres.items(), key=lambda kv: -kv[1])
    return {"text": text, "fibres": [{"fibre": f, "percent": p} for f, p in ordered], "main_fibre": ordered[0][0]}


# --- material: the label wins, the heads' guess is a hint ------------------------------------------
def test_the_label_composition_beats_the_material_heads_whose_guess_is_only_a_hint():
    rec = _record(composition=_comp("95% cotton 5% elastane", {"cotton": 95, "elastane": 5}),
                  grades={"material": {"id": "acrylic", "score": 0.97}},
                  attributes={"material": {"id": "cotton", "score": None, "source": "label"}})
    f = _field(present_item(rec), "material")
    assert (f["value"], f["source"], f["uncertain"]) == ("cotton", "label", False)
    assert "acrylic (97%)" in f["hint"]
    assert [x["source"] for x in present_item(rec)["fields"] if x["name"] == "material"] == ["label"]  # one value


def test_without_a_label_the_material_head_gives_the_value_and_a_sure_disagreement_is_unsure():
    rec = _record(schema="fashionlens/item/v1", grades={"material": {"id": "wool", "score": 0.8}},
                  attributes={"material": {"id": "acrylic", "score": 0.7, "source": "image"}})
    f = _field(present_item(rec), "material")
    assert (f["value"], f["source"], f["uncertain"]) == ("wool", "model", True)
    assert "acrylic" in f["hint"]
    rec["attributes"]["material"]["score"] = 0.2  # a weak guess that disagrees is a hint, not a doubt
    f = _field(present_item(rec), "material")
    assert (f["value"], f["uncertain"]) == ("wool", False) and "acrylic" in f["hint"]


# --- damage: a region found fills the damage fields ------------------------------------------------
@pytest.mark.parametrize("grades", [{}, {"stains": {"id": "none", "score": 0.9}}])
def test_a_damage_region_fills_the_damage_field_and_never_leaves_stains_none(grades):
    rec = _record(grades=grades)
    rec["damage"] = {"any": True, "regions": [_region("stain", 0.012), _region("stain", 0.006)],
                     "area_share": {"stain": 0.018, "hole": 0.0, "pilling": 0.0, "fading": 0.0}}
    view = present_item(rec)
    damage, stains = _field(view, "damage"), _field(view, "stains")
    assert (damage["value"], damage["source"]) == ("stain", "model")
    assert "2 stain regions" in damage["note"]
    assert stains["value"] == "minor" and stains["value"] != "none" and stains["uncertain"] is True
    assert [c["id"] for c in stains["candidates"]] == ["minor", "major"]
    assert _field(view, "holes")["value"] == "none"  # no hole region: the damage head found none
    if grades:
        assert "none" in stains["hint"]


def test_several_damage_types_read_multiple_and_pilling_is_left_for_the_sorter_to_grade():
    rec = _record()
    rec["damage"]["regions"] = [_region("hole", 0.001), _region("pilling", 0.05)]
    view = present_item(rec)
    assert _field(view, "damage")["value"] == "multiple"
    pilling = _field(view, "pilling")
    assert pilling["uncertain"] and pilling["value"] is None and pilling["display"] != "—"
    assert [c["id"] for c in pilling["candidates"]] == [1, 2, 3, 4, 5]


def test_no_damage_model_means_no_damage_value_rather_than_none():
    rec = _record()
    rec.pop("model")
    view = present_item(rec)
    assert _field(view, "damage")["value"] is None and _field(view, "stains")["value"] is None
    assert _field(present_item(_record()), "damage")["value"] == "none"


# --- compositions keep their spaces -----------------------------------------------------------------
@pytest.mark.parametrize(("read", "spaced"), [("100%cotton", "100% cotton"),
                                              ("34%polyester 66%viscose", "34% polyester 66% viscose"),
                                              ("95% cotton  5% elastane", "95% cotton 5% elastane"),
                                              ("80 %wool, 20％ polyamide", "80% wool, 20% polyamide")])
def test_composition_text_keeps_a_space_between_percentage_and_fibre(read, spaced):
    assert spaced_composition_text(read) == spaced


def test_composition_is_shown_from_its_fibres_with_spaces_and_the_text_as_read_as_a_hint():
    rec = _record(composition=_comp("34%polyester 66%vis", {"viscose": 66, "polyester": 34}))
    f = _field(present_item(rec), "composition")
    assert (f["display"], f["source"]) == ("66% viscose, 34% polyester", "label")
    assert f["hint"] == "as read: 34% polyester 66% vis"
    assert composition_display({"text": "100%cotton", "fibres": []}) == "100% cotton"


# --- one category vocabulary ----------------------------------------------------------------------
def test_every_taxonomy_category_has_a_display_name_and_the_dropdown_uses_them():
    cats = load_taxonomy().categories
    assert set(CATEGORY_NAMES) == set(cats)
    view = present_item(_record())
    f = _field(view, "type")
    assert [c["name"] for c in f["choices"]] == [category_name(c) for c in cats]
    assert view["vocabulary"]["category"] == [{"id": c, "name": category_name(c)} for c in cats]


def test_the_grading_heads_rise_type_is_shown_in_the_taxonomys_words():
    rec = _record(category={"id": "cardigans", "score": 0.8, "views": 1}, grades={"type": {"id": "Blazer", "score": 0.9}})
    f = _field(present_item(rec), "type")
    assert (f["value"], f["display"]) == ("formal-jackets", "Blazers & formal jackets")
    assert f["display"] in [c["name"] for c in f["choices"]]
    assert f["uncertain"] and "Cardigans (80%)" in f["hint"]  # two sure models disagree
    rec["grades"]["type"] = {"id": "Vest", "score": 0.9}  # no taxonomy category: the classifier's value
    f = _field(present_item(rec), "type")
    assert (f["value"], f["display"], f["uncertain"]) == ("cardigans", "Cardigans", False) and "Vest" in f["hint"]


# --- unsure fields ---------------------------------------------------------------------------------
def test_unsure_values_are_marked_v2_flag_and_missing_id():
    cands = [{"id": "striped", "score": 0.4}, {"id": "plain", "score": 0.35}]
    rec = _record(schema="fashionlens/item/v2",
                  attributes={"pattern": {"id": None, "score": 0.4, "uncertain": True, "candidates": cands},
                              "sleeve": {"id": "long", "score": 0.3}},  # v2 without the flag: sure at its threshold
                  category={"id": "sweaters", "score": 0.9})
    view = present_item(rec)
    pattern = _field(view, "pattern")
    assert pattern["uncertain"] and pattern["value"] is None and [c["id"] for c in pattern["candidates"]] == ["striped", "plain"]
    assert "operating point" in pattern["note"]
    assert _field(view, "sleeve")["uncertain"] is False
    assert _field(view, "type")["uncertain"] is False


def test_v1_records_without_operating_points_mark_low_scores_unsure():
    rec = _record(schema="fashionlens/item/v1", attributes={"sleeve": {"id": "long", "score": UNSURE_BELOW - 0.01},
                                                            "fit": {"id": "regular", "score": UNSURE_BELOW + 0.01}})
    view = present_item(rec)
    sleeve = _field(view, "sleeve")
    assert sleeve["uncertain"] and sleeve["value"] == "long" and "below 50%" in sleeve["note"]
    assert _field(view, "fit")["uncertain"] is False


def test_two_unsure_category_models_offer_both_candidates_in_taxonomy_words():
    rec = _record(schema="fashionlens/item/v2",
                  category={"id": None, "score": 0.5, "uncertain": True,
                            "candidates": [{"id": "cardigans", "score": 0.5}, {"id": "formal-jackets", "score": 0.28}]},
                  grades={"type": {"id": None, "score": 0.57, "uncertain": True,
                                   "candidates": [{"id": "Blazer", "score": 0.57}, {"id": "Vest", "score": 0.3}]}})
    f = _field(present_item(rec), "type")
    assert f["uncertain"] and f["value"] is None
    assert [(c["id"], c["name"], c["score"]) for c in f["candidates"]] == [
        ("formal-jackets", "Blazers & formal jackets", 0.57), ("cardigans", "Cardigans", 0.5)]


def test_colours_without_a_measured_share_are_named_without_zero_percent():
    rec = _record(attributes={"colours": [{"id": "black", "share": 1.0, "score": 0.9},
                                          {"id": "multicolour", "share": None, "score": 0.3}]})
    f = _field(present_item(rec), "colors")
    assert f["display"] == "black 100%, multicolour" and "multicolour 0" not in f["display"]
    rec["attributes"] = {"colours": [], "colours_uncertain": True}
    f = _field(present_item(rec), "colors")
    assert f["uncertain"] and f["value"] is None


# --- route and a person's corrections --------------------------------------------------------------
def test_route_reasons_are_the_routing_decisions_own():
    rec = _record()
    rec["damage"]["regions"] = [_region("pilling", 0.007)]
    rec["damage"]["area_share"]["pilling"] = 0.007
    rec["route"] = load_rules().route(rec)
    view = present_item(rec)
    assert view["route"]["decision"] == rec["route"]["decision"] == "reuse"
    assert view["route"]["reasons"] == rec["route"]["reasons"]
    assert rec["route"]["reasons"][1] == damage_below_rules(rec)
    assert "pilling on 0.7% of the garment (1 region)" in rec["route"]["reasons"][1]
    assert damage_below_rules(_record()) is None


def test_a_persons_correction_wins_with_the_previous_value_as_hint_and_route_reasons_say_who_chose():
    rec = _record(composition=_comp("100% cotton", {"cotton": 100}),
                  route={"decision": "export", "reasons": ["stains cover 3.0% of the garment (5 stains)"],
                         "rules": "fashionlens-default/1"})
    view = present_item(rec, {"material": "wool", "usage": "repair", "colors": ["blue"]})
    material = _field(view, "material")
    assert (material["value"], material["source"], material["uncertain"]) == ("wool", "person", False)
    assert material["hint"] == "the care label said cotton"
    assert _field(view, "colors")["value"] == "blue"
    route = view["route"]
    assert (route["decision"], route["source"], route["rules_decision"]) == ("repair", "person", "export")
    assert route["reasons"] == ["chosen by the sorter (the sorting rules suggested export)"]
    assert route["rules_reasons"] == rec["route"]["reasons"]
    same = present_item(rec, {"usage": "export"})["route"]
    assert same["reasons"] == [*rec["route"]["reasons"], "confirmed by the sorter"]


def test_every_field_has_one_source_from_the_three_and_the_view_is_plain_json():
    import json

    rec = _record(composition=_comp("80% wool 20% polyamide", {"wool": 80, "polyamide": 20}), brand="Lindex",
                  category={"id": "sweaters", "score": 0.9}, grades={"material": {"id": "acrylic", "score": 0.6}})
    view = present_item(rec, {"pattern": "striped"})
    assert view["schema"] == STATION_SCHEMA and view["item_id"] == "it-1"
    assert {f["source"] for f in view["fields"]} <= {"label", "model", "person", None}
    assert len({f["name"] for f in view["fields"]}) == len(view["fields"])
    assert json.loads(json.dumps(view)) == view


def test_bad_inputs_say_what_was_expected():
    with pytest.raises(TypeError, match="item record"):
        present_item([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="corrections"):
        present_item(_record(), ["x"])  # type: ignore[arg-type]
    assert present_item({"grades": "junk", "attributes": None, "damage": 3})["fields"]  # malformed: empty fields
