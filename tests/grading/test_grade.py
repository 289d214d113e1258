import json
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from fashionlens.grading.damage import FoundDamage
from fashionlens.grading.grade import (
    ItemGrader,
    ItemInput,
    fuse_views,
    items_from_inputs,
)
from fashionlens.grading.item import ITEM_SCHEMA
from fashionlens.grading.render_item import render_item
from fashionlens.result import ColourLabel, Garments, Label, TagResult
from fashionlens.taxonomy.composition import parse_composition


def _photo(path, colour=(30, 60, 150), size=(96, 128)):
    rgb = np.full((size[1], size[0], 3), 240, np.uint8)
    rgb[20:110, 20:76] = colour
    Image.fromarray(rgb).save(path)
    return path


def _item_dir(root, name="item1", label=True):
    d = root / name
    d.mkdir(parents=True)
    _photo(d / "front.jpg")
    _photo(d / "IMG_back.JPG")
    if label:
        _photo(d / "brand.png", colour=(250, 250, 250))
    return d


class FakeTagger:
    model_info: ClassVar[dict] = {"name": "fake-classifier", "version": "0", "backend": "none"}

    def __init__(self, categories):
        self.categories = list(categories)

    def tag(self, images, paths):
        cat, score = self.categories.pop(0)
        garments = Garments(xyxy=[[20, 20, 76, 110]], object_type=["upper-body"], confidence=[0.9],
                            category=[Label(cat, score)],
                            attributes=[{"pattern": Label("plain", 0.8), "material": Label("cotton", 0.4),
                                         "colours": [ColourLabel("blue", 0.9, 0.9)]}])
        return [TagResult(path=paths[0], width=images[0].width, height=images[0].height, model=self.model_info,
                          mode="detect", garments=garments)]


class FakeDamage:
    info: ClassVar[dict] = {"damage_model": "fake", "damage_version": "0"}

    def __init__(self):
        self.calls = 0

    def find(self, rgb, garment):
        self.calls += 1
        assert garment.shape == rgb.shape[:2] and garment[50, 40] and not garment[5, 5]
        if self.calls == 1:  # a hole on the front only
            m = np.zeros(rgb.shape[:2], bool)
            m[40:44, 30:40] = True
            return [FoundDamage("hole", float(m.sum()) / garment.sum(), 0.9, (30.0, 40.0, 40.0, 44.0), m)]
        return []


class FakeLabels:
    def read(self, rgb):
        return SimpleNamespace(lines=[SimpleNamespace(text="ACME"), SimpleNamespace(text="80% wool 20% polyamide")],
                               brand="ACME", composition=parse_composition("80% wool 20% polyamide"))


class FakeGrader:
    weights = SimpleNamespace(name="fake-grader.npz")

    def grade_views(self, views):
        assert set(views) == {"front", "back"}
        return {"type": {"id": "Sweater", "score": 0.7}}


class FakeRules:
    def route(self, item):
        share = item["damage"]["area_share"]["hole"]
        return {"decision": "repair" if share > 0 else "reuse", "reasons": [f"hole {share:.1%}"], "rules": "fake/1"}


def test_items_from_folders_and_manifests(tmp_path):
    d = _item_dir(tmp_path / "items", "A1")
    _item_dir(tmp_path / "items", "A2", label=False)
    one = items_from_inputs([d])
    assert len(one) == 1 and one[0].item_id == "A1" and set(one[0].views) == {"front", "back", "label"}
    both = items_from_inputs([tmp_path / "items"])
    assert [i.item_id for i in both] == ["A1", "A2"] and set(both[1].views) == {"front", "back"}
    manifest = tmp_path / "m.csv"
    manifest.write_text("item_id,front,back,label\nX,items/A1/front.jpg,items/A1/IMG_back.JPG,\n")
    m = items_from_inputs([manifest])
    assert m[0].item_id == "X" and m[0].views["front"] == tmp_path / "items/A1/front.jpg" and "label" not in m[0].views
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"item_id": "Y", "back": "items/A2/IMG_back.JPG"}) + "\n")
    assert items_from_inputs([jl])[0].views == {"back": tmp_path / "items/A2/IMG_back.JPG"}


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "missing path"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "found an empty folder"),
    (lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "manifest"),
    (lambda p: (p / "bad.csv").write_text("front\nitems/a.jpg\n") and p / "bad.csv", "item_id"),
])
def test_bad_item_inputs_say_what_was_expected(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        items_from_inputs([make(tmp_path)])


def test_duplicate_ids_and_items_without_garment_views_are_rejected(tmp_path):
    d = _item_dir(tmp_path, "A1")
    with pytest.raises(ValueError, match="twice"):
        items_from_inputs([d, d])
    with pytest.raises(ValueError, match="front or back"):
        ItemInput("x", {"label": d / "brand.png"})


def test_fuse_views_votes_by_score():
    def g(cat, s, pat, colour):
        return Garments(xyxy=[[0, 0, 10, 10]], object_type=["upper-body"], confidence=[0.9],
                        category=[Label(cat, s)],
                        attributes=[{"pattern": Label(pat, s), "colours": [ColourLabel(colour, 0.8, s)]}])

    fused = fuse_views({"front": g("sweaters", 0.6, "plain", "red"), "back": g("cardigans", 0.9, "striped", "blue")})
    assert fused["category"]["id"] == "cardigans" and fused["attributes"]["pattern"]["id"] == "striped"
    assert fused["object_type"] == "upper-body"
    assert fused["attributes"]["colours"] == [{"id": "blue", "share": 0.8, "score": 0.9}]  # the surest view's list
    assert fuse_views({}) == {"category": None, "object_type": None, "attributes": {}}


def test_grade_fuses_views_reads_the_label_and_routes(tmp_path):
    item = items_from_inputs([_item_dir(tmp_path, "A1")])[0]
    grader = ItemGrader(tagger=FakeTagger([("sweaters", 0.6), ("sweaters", 0.7)]), damage=FakeDamage(),
                        labels=FakeLabels(), grader=FakeGrader(), rules=FakeRules())
    rec, details = grader.grade(item)
    assert rec["schema"] == ITEM_SCHEMA and rec["error"] is None
    assert rec["category"]["id"] == "sweaters" and rec["object_type"] == "upper-body"
    assert rec["attributes"]["material"] == {"id": "wool", "score": None, "source": "label"}
    assert rec["composition"]["fibres"] == [{"fibre": "wool", "percent": 80.0}, {"fibre": "polyamide", "percent": 20.0}]
    assert rec["brand"] == "ACME" and rec["label_text"] == ["ACME", "80% wool 20% polyamide"]
    assert rec["damage"]["any"] and [r["view"] for r in rec["damage"]["regions"]] == ["front"]
    assert rec["damage"]["area_share"]["hole"] == pytest.approx(40 / (57 * 91), rel=0.05)
    assert rec["grades"] == {"type": {"id": "Sweater", "score": 0.7}}
    assert rec["route"]["decision"] == "repair"
    picture = render_item(rec, details, height=120)
    assert picture.ndim == 3 and picture.shape[0] > 120
    json.dumps(rec)  # plain JSON


def test_unreadable_view_is_reported_and_the_rest_graded(tmp_path):
    d = _item_dir(tmp_path, "A1", label=False)
    (d / "IMG_back.JPG").write_bytes(b"not an image")
    rec, _ = ItemGrader(tagger=FakeTagger([("sweaters", 0.6)]), rules=FakeRules()).grade(items_from_inputs([d])[0])
    back = next(v for v in rec["views"] if v["role"] == "back")
    assert back["error"] and rec["error"] is None and rec["category"]["id"] == "sweaters"
    (d / "front.jpg").write_bytes(b"")
    rec2, _ = ItemGrader(tagger=FakeTagger([])).grade(items_from_inputs([d])[0])
    assert rec2["error"]["type"] == "no_usable_view" and "front: empty_file" in rec2["error"]["message"]


def test_a_label_that_cannot_be_read_keeps_the_item(tmp_path):
    class BrokenLabels:
        def read(self, rgb):
            raise RuntimeError("OCR engine failed")

    item = items_from_inputs([_item_dir(tmp_path, "A1")])[0]
    rec, _ = ItemGrader(tagger=FakeTagger([("sweaters", 0.6), ("sweaters", 0.7)]), labels=BrokenLabels(),
                        rules=FakeRules()).grade(item)
    label = next(v for v in rec["views"] if v["role"] == "label")
    assert rec["error"] is None and label["error"] == {"type": "label_unreadable",
                                                        "message": "RuntimeError: OCR engine failed"}
    assert rec["composition"] is None and rec["category"]["id"] == "sweaters" and rec["route"]["decision"] == "reuse"


def test_cli_keeps_going_when_one_item_crashes(tmp_path, monkeypatch, capsys):
    from fashionlens.cli import main

    class CrashOnce(FakeTagger):
        def tag(self, images, paths):
            if "A1" in paths[0]:
                raise RuntimeError("boom")
            return super().tag(images, paths)

    _item_dir(tmp_path / "items", "A1", label=False)
    _item_dir(tmp_path / "items", "A2", label=False)
    monkeypatch.setattr(ItemGrader, "default", classmethod(
        lambda cls, **kw: cls(tagger=CrashOnce([("sweaters", 0.6), ("sweaters", 0.7)]), rules=FakeRules())))
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(tmp_path / "items"), "-o", str(out), "-q"]) == 1  # some item failed
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["item_id"] for r in recs] == ["A1", "A2"]
    # the tagger fails on both of A1's photos: each view reports it, and A1 is an error record
    assert recs[0]["error"]["type"] == "no_usable_view" and recs[1]["error"] is None
    assert [v["error"]["type"] for v in recs[0]["views"]] == ["inference_failed", "inference_failed"]
    assert "boom" in recs[0]["views"][0]["error"]["message"]
