"""Item records v2 (issue 25): operating points and "unsure" in ``grade``, a reader that still takes v1 items,
and calibrated grading heads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from fashionlens.grading.grade import ItemGrader, fuse_views, items_from_inputs
from fashionlens.grading.grader import grade_label
from fashionlens.grading.item import (
    ITEM_SCHEMA,
    ITEM_SCHEMAS_READ,
    is_uncertain,
    read_item,
    read_items,
)
from fashionlens.models.calibration import Calibration, HeadCalibration, OperatingCurve
from fashionlens.result import ColourLabel, Garments, Label, LabelList, TagResult

V1_LINE = {
    "schema": "fashionlens/item/v1", "item_id": "A1",
    "views": [{"role": "front", "path": "A1/front.jpg", "error": None}],
    "object_type": "upper-body", "category": {"id": "sweaters", "score": 0.39, "views": 1},
    "attributes": {"pattern": {"id": "plain", "score": 0.7, "views": 1},
                   "colours": [{"id": "red", "share": 1.0, "score": 0.6}]},
    "composition": None, "brand": None, "label_text": None,
    "damage": {"any": False, "regions": [], "area_share": {}}, "grades": {"type": {"id": "Sweater", "score": 0.5}},
    "route": {"decision": "reuse", "reasons": ["no damage rule matched"], "rules": "default"},
    "warnings": [], "error": None,
}


def _labels(cat: str, cat_score: float, *, candidates: tuple[tuple[str, float], ...] = (),
            colours: tuple[tuple[str, float], ...] = (("blue", 0.9),), unsure: bool = False) -> Garments:
    """One main garment whose category/pattern carry candidates when ``unsure`` (as a view tagged with
    ``keep_uncertain`` gives them)."""
    cands = tuple(Label(i, s) for i, s in candidates)
    cat_label = Label(cat, cat_score, uncertain=unsure, candidates=cands)
    colour_list = [ColourLabel(c, 0.5, s, uncertain=unsure) for c, s in colours]
    return Garments(xyxy=[[0, 0, 10, 10]], object_type=["upper-body"], confidence=[0.9], category=[cat_label],
                    attributes=[{"pattern": Label("plain", 0.95), "colours": colour_list}])


# --------------------------------------------------------------------------------------- the schema


def test_a_v1_item_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    v2 = {**V1_LINE, "schema": ITEM_SCHEMA, "item_id": "A2"}
    path.write_text(json.dumps(V1_LINE) + "\n\n" + json.dumps(v2) + "\n", "utf-8")
    items = read_items(path)
    assert [it["schema"] for it in items] == [ITEM_SCHEMA, ITEM_SCHEMA] and ITEM_SCHEMA == "fashionlens/item/v2"
    assert {k: v for k, v in items[0].items() if k != "schema"} == {k: v for k, v in V1_LINE.items() if k != "schema"}
    assert "fashionlens/item/v1" in ITEM_SCHEMAS_READ
    assert not any(is_uncertain(v) for v in (items[0]["category"], *items[0]["attributes"].values()))


def test_another_schema_or_a_broken_line_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fashionlens/item/v1"):
        read_item({**V1_LINE, "schema": "fashionlens/result/v2"})
    with pytest.raises(TypeError, match="item record"):
        read_item(["not", "an", "object"])  # type: ignore[arg-type]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(V1_LINE) + "\n{oops\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_items(bad)


# --------------------------------------------------------------------------------------- fusion


def test_unsure_fields_have_the_result_v2_shape() -> None:
    views = {"front": _labels("sweaters", 0.5, candidates=(("sweaters", 0.5), ("cardigans", 0.3), ("hoodies", 0.1)),
                              colours=(("red", 0.4),), unsure=True),
             "back": _labels("sweaters", 0.6, candidates=(("sweaters", 0.6), ("hoodies", 0.3), ("blazers", 0.05)),
                             colours=(("red", 0.5), ("black", 0.45)), unsure=True)}
    thresholds = {"category": 0.8, "pattern": 0.9, "colours": 0.8}
    fused = fuse_views(views, thresholds=thresholds)
    cat = fused["category"]
    assert cat == {"id": None, "score": 0.55, "views": 2, "uncertain": True,
                   "candidates": [{"id": "sweaters", "score": 0.55}, {"id": "hoodies", "score": 0.2},
                                  {"id": "cardigans", "score": 0.15}]}
    assert fused["attributes"]["pattern"] == {"id": "plain", "score": 0.95, "views": 2}  # sure: no extra keys
    assert fused["attributes"]["colours"] == [] and fused["attributes"]["colours_uncertain"] is True
    kept = fuse_views(views, thresholds=thresholds, keep_uncertain=True)
    assert kept["category"]["id"] == "sweaters" and kept["category"]["uncertain"] is True
    assert kept["attributes"]["colours"] == [{"id": "red", "share": 0.5, "score": 0.5, "uncertain": True},
                                             {"id": "black", "share": 0.5, "score": 0.45, "uncertain": True}]
    assert kept["attributes"]["colours_uncertain"] is True


def test_a_sure_colour_is_listed_and_an_unsure_one_left_out() -> None:
    views = {"front": _labels("sweaters", 0.9, colours=(("red", 0.9), ("black", 0.5)))}
    fused = fuse_views(views, thresholds={"category": 0.8, "colours": 0.8})
    assert fused["category"] == {"id": "sweaters", "score": 0.9, "views": 1}
    assert fused["attributes"]["colours"] == [{"id": "red", "share": 0.5, "score": 0.9}]
    assert "colours_uncertain" not in fused["attributes"]


def test_without_an_operating_point_fusion_is_the_v1_vote() -> None:
    views = {"front": _labels("sweaters", 0.6), "back": _labels("cardigans", 0.9)}
    fused = fuse_views(views)
    assert fused["category"] == {"id": "cardigans", "score": 0.45, "views": 2}
    assert fused["attributes"]["colours"] == [{"id": "blue", "share": 0.5, "score": 0.9}]


# --------------------------------------------------------------------------------------- grade


class _Tagger:
    """A tagger with an operating point: its views carry best guesses and candidates (as ``variant(precision=P,
    keep_uncertain=True)`` gives them) and ``thresholds`` per field."""

    model_info: ClassVar[dict[str, str]] = {"name": "fake-classifier", "version": "0", "backend": "none"}
    thresholds: ClassVar[dict[str, float]] = {"category": 0.8, "pattern": 0.9, "colours": 0.8}

    def tag(self, images: list[Any], paths: list[str]) -> list[TagResult]:
        g = _labels("sweaters", 0.6, candidates=(("sweaters", 0.6), ("cardigans", 0.3)), colours=(("red", 0.5),),
                    unsure=True)
        g.attributes[0]["colours"] = LabelList(g.attributes[0]["colours"], uncertain=True)
        return [TagResult(path=paths[0], width=images[0].width, height=images[0].height, model=self.model_info,
                          mode="detect", garments=g)]


def _item(tmp_path: Path) -> Any:
    d = tmp_path / "A1"
    d.mkdir()
    Image.new("RGB", (40, 60), (200, 30, 30)).save(d / "front.png")
    return items_from_inputs([d])[0]


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(x for v in value.values() for x in _walk(v))]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return []


def test_precision_off_reproduces_the_best_guesses(tmp_path: Path) -> None:
    item = _item(tmp_path)
    grader = ItemGrader(tagger=_Tagger())
    off, _ = grader.grade(item, precision=None)
    assert not any("uncertain" in d or k.endswith("_uncertain") for d in _walk(off) for k in d)
    assert off["category"] == {"id": "sweaters", "score": 0.6, "views": 1}
    assert off["attributes"]["colours"] == [{"id": "red", "share": 0.5, "score": 0.5}]
    assert "operating_point" not in off["model"] and off["schema"] == ITEM_SCHEMA
    on, _ = grader.grade(item, precision=0.9)
    assert on["category"]["id"] is None and on["category"]["uncertain"] is True
    assert on["attributes"]["colours"] == [] and on["attributes"]["colours_uncertain"] is True
    assert on["attributes"]["pattern"] == {"id": "plain", "score": 0.95, "views": 1}
    assert on["model"]["operating_point"] == "precision 0.9"
    kept, _ = ItemGrader(tagger=_Tagger(), precision=0.9, keep_uncertain=True).grade(item)
    assert kept["category"]["id"] == off["category"]["id"] and kept["category"]["uncertain"] is True
    assert [c["id"] for c in kept["attributes"]["colours"]] == [c["id"] for c in off["attributes"]["colours"]]
    with pytest.raises(ValueError, match="precision"):
        ItemGrader(tagger=_Tagger(), precision=1.5)


# --------------------------------------------------------------------------------------- grading heads


def test_an_unsure_grade_has_candidates_and_a_sure_one_does_not() -> None:
    p = np.array([0.1, 0.6, 0.3])
    assert grade_label(("a", "b", "c"), p, 1, 0.5) == {"id": "b", "score": 0.6}
    assert grade_label(("a", "b", "c"), p, 1, None) == {"id": "b", "score": 0.6}
    unsure = grade_label(("a", "b", "c"), p, 1, 0.7)
    assert unsure == {"id": None, "score": 0.6, "uncertain": True,
                      "candidates": [{"id": "b", "score": 0.6}, {"id": "c", "score": 0.3}, {"id": "a", "score": 0.1}]}
    assert grade_label(("a", "b", "c"), p, 1, 0.7, keep_uncertain=True)["id"] == "b"


def test_grading_heads_apply_their_calibration_and_operating_points() -> None:
    from fashionlens.grading.grader import Grader, default_grader_path
    from fashionlens.models.grader import fuse_views as fuse_embeddings
    from fashionlens.models.grader import load_grader

    model = load_grader(default_grader_path())
    head = model.meta.heads[0]
    cal = Calibration(heads={head.name: HeadCalibration(head.name, "single", tuple(head.values), "temperature", 2.0)},
                      operating={head.name: OperatingCurve((0.0, 0.5), (0.5, 0.8), (1.0, 0.3), 10)})

    grader = Grader.__new__(Grader)  # grade_embeddings needs no classifier backend
    grader.weights, grader.model = default_grader_path(), model
    grader.calibration, grader.calibration_source = grader._calibration(cal)
    emb = np.random.default_rng(0).standard_normal(model.meta.embedding_dim).astype(np.float32)
    fused = fuse_embeddings({"front": emb[None], "back": np.zeros((1, len(emb)), np.float32)},
                            {"front": np.array([True]), "back": np.array([False])}, fusion=model.meta.fusion)
    raw = model.predict_proba(fused)[head.name][0]
    got = grader.grade_embeddings({"front": emb})[head.name]
    expect = cal.heads[head.name].apply(raw[None])[0]
    assert got["score"] == pytest.approx(float(expect.max()), abs=1e-4) and got["id"] == head.values[int(raw.argmax())]
    assert grader.thresholds(0.9) == {head.name: float("inf")}  # never reached 0.9 on "validation"
    unsure = grader.grade_embeddings({"front": emb}, precision=0.9)[head.name]
    assert unsure["id"] is None and unsure["uncertain"] is True and len(unsure["candidates"]) == 3
    with pytest.raises(ValueError, match="does not fit"):
        grader._calibration(Calibration(heads={head.name: HeadCalibration(head.name, "single", ("x", "y"),
                                                                            "identity")}))


def test_the_item_category_is_the_views_choice_even_when_a_candidate_of_another_type_scores_higher() -> None:
    # a detected upper-body garment: its category is the best *upper-body* one (0.3), while the top
    # candidate over all categories is a dress (0.5) — the item keeps the views' choice, unsure
    view = _labels("sweaters", 0.3, candidates=(("dresses", 0.5), ("sweaters", 0.3), ("skirts", 0.1)), unsure=True)
    fused = fuse_views({"front": view}, thresholds={"category": 0.8}, keep_uncertain=True)
    assert fused["category"]["id"] == "sweaters" and fused["category"]["score"] == 0.3
    assert [c["id"] for c in fused["category"]["candidates"]] == ["dresses", "sweaters", "skirts"]
    assert fuse_views({"front": view})["category"] == {"id": "sweaters", "score": 0.3, "views": 1}
