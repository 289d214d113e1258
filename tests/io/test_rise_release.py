"""RISE release-layout reader and the shared-subset adapter (io/rise_release.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from fashionlens.grading.item import DAMAGE_TYPES, ROUTES
from fashionlens.io.rise_release import (
    GRADING_HEADS,
    ItemRecord,
    canonical_key,
    normalise_labels,
    read_items,
    read_rise_release,
    read_rise_subset,
    view_role,
)
from fashionlens.io.splits import group_split

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _fixtures():
    spec = importlib.util.spec_from_file_location("grading_fixtures",
                                                  Path(__file__).resolve().parents[1] / "grading" / "fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _fixtures().write_release_fixture(tmp_path_factory.mktemp("release"), n_items=12, seed=3, size=64,
                                             broken=True)


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (100, 50, 20)).save(path, "JPEG")


@pytest.mark.parametrize(("key", "expected"), [
    ("price", "price"), ("Price_Band", "price"), ("pricerange", "price"), ("PRICE RANGE", "price"),
    ("colours", "colors"), ("Color", "colors"), ("stain", "stains"), ("Stains", "stains"), ("hole", "holes"),
    ("Condition_Score", "condition"), ("Garment Type", "type"), ("composition", "material"), ("odour", "smell"),
    ("weight_grams", None), ("", None),
])
def test_canonical_key(key: str, expected: str | None) -> None:
    assert canonical_key(key) == expected


@pytest.mark.parametrize(("name", "role"), [
    ("front.jpg", "front"), ("FN0001_FRONT.JPEG", "front"), ("IMG_front.png", "front"), ("back.webp", "back"),
    ("x_Back.png", "back"), ("brand.jpg", "label"), ("care_label.jpg", "label"), ("label.tif", "label"),
    ("front.json", None), ("side.jpg", None), ("front.txt", None),
])
def test_view_role(name: str, role: str | None) -> None:
    assert view_role(name) == role


@pytest.mark.parametrize(("raw", "head", "expected"), [
    ({"condition": 3}, "condition", 3), ({"Condition": "4"}, "condition", 4), ({"condition": "2 - worn"}, "condition", 2),
    ({"condition": 5.0}, "condition", 5), ({"pilling": "1,0"}, "pilling", 1), ({"condition": ""}, "condition", None),
    ({"usage": "Re-use"}, "usage", "reuse"), ({"usage": "RECYCLING"}, "usage", "recycle"),
    ({"usage": "Second hand shop"}, "usage", "second hand shop"), ({"stain": "No"}, "stains", "none"),
    ({"Holes": "Major"}, "holes", "major"), ({"stains": "small"}, "stains", "minor"),
    ({"damage": ["Stain", "hole"]}, "damage", "multiple"), ({"damage": "small tear at hem"}, "damage", "hole"),
    ({"damage": "None"}, "damage", "none"), ({"damage": []}, "damage", "none"), ({"damage": "smells"}, "damage", "other"),
    ({"damage": "faded colour"}, "damage", "fading"),
    ({"material": "80% wool 20% polyamide"}, "material", "wool"), ({"composition": "100%Poly"}, "material", "polyester"),
    ({"material": "unknown"}, "material", None), ({"type": "winter jacket"}, "type", "Winter jacket"),
    ({"season": " All "}, "season", "all"), ({"season": ""}, "season", None),
    ({"price_band": "100-200  SEK"}, "price", "100-200 sek"), ({"trend": "Trendy"}, "trend", "trendy"),
])
def test_normalise_labels(raw: dict, head: str, expected: object) -> None:
    labels, problems = normalise_labels(raw)
    assert labels[head] == expected
    assert problems == []
    assert set(GRADING_HEADS) <= set(labels)


@pytest.mark.parametrize("raw", [{"condition": 7}, {"condition": "excellent"}, {"pilling": 2.5}, {"condition": 0},
                                 {"pilling": True}])
def test_normalise_labels_reports_unreadable_grades(raw: dict) -> None:
    labels, problems = normalise_labels(raw, where="x.json")
    head = next(iter(raw))
    assert labels[head] is None
    assert len(problems) == 1 and problems[0].startswith("x.json: ") and "1–5" in problems[0]


def test_normalise_labels_duplicate_keys_keep_the_first_and_report() -> None:
    labels, problems = normalise_labels({"price": "low", "Price_Band": "high", "brand": "Acme", "extra": 1})
    assert labels["price"] == "low" and labels["brand"] == "Acme" and labels["extra"] == 1
    assert len(problems) == 1 and "'price'" in problems[0] and "'Price_Band'" in problems[0]


def test_normalised_vocabularies_match_the_item_record() -> None:
    assert {normalise_labels({"usage": u})[0]["usage"] for u in ("Reuse", "Repair", "Export", "Recycle")} == set(ROUTES)
    kinds = {normalise_labels({"damage": d})[0]["damage"] for d in ("stain", "hole", "pilling", "faded")}
    assert kinds == set(DAMAGE_TYPES)


def test_release_reader_tolerant_names_and_labels(release: dict) -> None:
    items, summary = read_rise_release(release["root"])
    by_id = {it.item_id: it for it in items}
    assert set(release["items"]) <= set(by_id)
    for item_id, truth in release["items"].items():
        it = by_id[item_id]
        assert set(it.views) == {"front", "back", "label"}, item_id
        assert {h: it.labels[h] for h in truth} == truth, item_id
        assert it.group == f"rise-release/{item_id}" and it.source == "rise-release"
        assert it.path == it.views["front"]
        assert it.raw  # the JSON object as read
    assert [it.item_id for it in items] == sorted(by_id)
    assert summary.items == len(items) == len(release["items"]) + 3


def test_release_reader_reports_problems_and_keeps_items(release: dict, caplog: pytest.LogCaptureFixture) -> None:
    cases = release["broken"]
    with caplog.at_level("WARNING"):
        items, summary = read_rise_release(release["root"])
    by_id = {it.item_id: it for it in items}
    assert summary.missing_views == {cases["no_back"]: ["back"]}
    assert set(by_id[cases["no_back"]].views) == {"front", "label"} and by_id[cases["no_back"]].labels["condition"] == 3
    assert summary.no_labels == [cases["no_json"]]
    assert by_id[cases["no_json"]].labels["type"] is None
    assert list(summary.bad_labels) == [cases["bad_json"]] and "not valid JSON" in summary.bad_labels[cases["bad_json"]]
    assert all(v is None for h, v in by_id[cases["bad_json"]].labels.items() if h in GRADING_HEADS)
    assert cases["label_only"] not in by_id and cases["label_only"] in summary.left_out
    assert summary.problems == 4
    text = "\n".join(summary.lines())
    for item_id in cases.values():
        assert item_id in text and item_id in caplog.text
    assert json.loads(json.dumps(summary.to_dict()))["left_out"] == summary.left_out


def test_release_reader_extra_files_reported(tmp_path: Path) -> None:
    _jpeg(tmp_path / "A1" / "front.jpg")
    _jpeg(tmp_path / "A1" / "front_2.jpg")
    _jpeg(tmp_path / "A1" / "back.jpg")
    (tmp_path / "A1" / "labels_A1.json").write_text('{"type": "Vest"}', encoding="utf-8")
    (tmp_path / "A1" / "other.json").write_text('{"type": "Coat"}', encoding="utf-8")
    (tmp_path / "A1" / "notes.txt").write_text("ignored", encoding="utf-8")
    items, summary = read_rise_release(tmp_path)
    assert len(items) == 1 and items[0].views["front"].name == "front.jpg" and items[0].labels["type"] == "Vest"
    assert len(summary.label_problems) == 2
    assert any("front_2.jpg" in p for p in summary.label_problems)
    assert any("other.json" in p for p in summary.label_problems)


@pytest.mark.parametrize(("content", "message"), [("[1, 2]", "expected one JSON object"), ("\"x\"", "one JSON object"),
                                                  ("{", "not valid JSON")])
def test_release_reader_label_file_not_an_object(tmp_path: Path, content: str, message: str) -> None:
    _jpeg(tmp_path / "B" / "front.jpg")
    (tmp_path / "B" / "labels.json").write_text(content, encoding="utf-8")
    items, summary = read_rise_release(tmp_path)
    assert len(items) == 1 and message in summary.bad_labels["B"]


def test_release_reader_empty_missing_and_duplicate(tmp_path: Path) -> None:
    items, summary = read_rise_release(tmp_path)
    assert items == [] and summary.items == 0 and summary.problems == 0
    with pytest.raises(FileNotFoundError, match="folder of item folders"):
        read_rise_release(tmp_path / "nope")
    _jpeg(tmp_path / "s1" / "X9" / "front.jpg")
    _jpeg(tmp_path / "s2" / "X9" / "front.jpg")
    with pytest.raises(ValueError, match="'X9' appears twice"):
        read_rise_release(tmp_path)


def test_item_record_validates_roles() -> None:
    with pytest.raises(ValueError, match="front, back or label"):
        ItemRecord(item_id="a", views={"side": Path("x.jpg")})


def _subset(root: Path, rows: list[dict], images: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "garments.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    for name in images:
        _jpeg(root / "images" / f"{name}.jpg")
    return root


def test_subset_adapter(tmp_path: Path) -> None:
    rows = [{"id": "FN1", "type": "Sweater", "material": "100%cotton", "season": "", "colors": "['Red']"},
            {"id": "FN2", "type": "Blazer", "material": "34%polyester 66%viscose", "season": "Autumn"}]
    root = _subset(tmp_path / "rise", rows, ["FN1"])
    items, summary = read_items(root)
    assert [it.item_id for it in items] == ["FN1", "FN2"]
    a, b = items
    assert a.views == {"front": root / "images" / "FN1.jpg"} and a.group == "rise/FN1" and a.source == "rise"
    assert (a.label("type"), a.label("material"), a.label("season")) == ("Sweater", "cotton", None)
    assert (b.label("type"), b.label("material"), b.label("season")) == ("Blazer", "viscose", "autumn")
    assert a.label("condition") is None and a.labels["colors"] == "['Red']"
    assert b.views == {} and summary.missing_views == {"FN2": ["front"]}


@pytest.mark.parametrize(("text", "message"), [("not json\n", "not valid JSON"), ('{"type": "x"}\n', "key 'id'")])
def test_subset_adapter_bad_rows(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "garments.jsonl").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_rise_subset(tmp_path)
    with pytest.raises(FileNotFoundError, match="garments.jsonl"):
        read_rise_subset(tmp_path / "missing")


@pytest.mark.data
def test_shared_subset_reader_and_project_split() -> None:
    root = DATASETS / "rise"
    if not root.exists():
        pytest.skip(f"shared data set not found at {root}")
    from fashionlens.io.rise import read_rise

    items, summary = read_rise_subset(root)
    assert len(items) == 1406 and summary.missing_views == {}
    assert all(set(it.views) == {"front"} and it.views["front"].is_file() for it in items[:50])
    types = {it.label("type") for it in items}
    assert types == {"Sweater", "Blazer", "Jacket", "Cardigan", "Vest", "Outerwear", "Winter Jacket", "Hoodie",
                     "Rain Jacket"}
    assert sum(it.label("season") is None for it in items) == 315
    assert sum(it.label("material") is not None for it in items) > 1200
    # the same seeded split as the rest of the project (io.rise records)
    ours = group_split(items, seed=0)
    theirs = group_split(read_rise(root), seed=0)
    for name in ("train", "val", "test"):
        assert [it.item_id for it in ours[name]] == [r.path.stem for r in theirs[name]]


def test_release_reader_skips_hidden_folders(tmp_path: Path) -> None:
    """An interrupted ``export corrections`` leaves ``.tmp-*`` folders; they are not items."""
    for folder in ("A1", ".tmp-A2"):
        d = tmp_path / folder
        d.mkdir()
        Image.new("RGB", (16, 16)).save(d / "front.jpg")
        Image.new("RGB", (16, 16)).save(d / "back.jpg")
        (d / f"labels_{folder}.json").write_text(json.dumps({"type": "Sweater"}))
    items, _ = read_rise_release(tmp_path)
    assert [i.item_id for i in items] == ["A1"]
