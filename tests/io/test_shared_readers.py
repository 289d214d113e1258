"""Readers of the shared data sets (clothing, RISE, CCP) on generated mini fixtures + the real sets."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.io import ccp as ccp_module
from fashionlens.io.ccp import ccp_instances, read_ccp
from fashionlens.io.clothing import read_clothing
from fashionlens.io.records import decode_mask
from fashionlens.io.rise import read_rise, rise_attributes
from fashionlens.taxonomy import load_taxonomy

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _jpeg(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 60, 30)).save(path, "JPEG")


# --- clothing ------------------------------------------------------------------------------


def _clothing(root: Path, rows: list[dict], fieldnames=("image", "sender_id", "label", "kids")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        if r.get("image"):
            _jpeg(root / "images" / f"{r['image']}.jpg")
    return root


CLOTHING_ROWS = [
    {"image": "a1", "sender_id": "7", "label": "T-Shirt", "kids": "False"},
    {"image": "a2", "sender_id": "7", "label": "Pants", "kids": "False"},
    {"image": "a3", "sender_id": "8", "label": "Shoes", "kids": "True"},
    {"image": "a4", "sender_id": "8", "label": "Not sure", "kids": "False"},
    {"image": "a5", "sender_id": "9", "label": "Polo", "kids": "False"},
    {"image": "a6", "sender_id": "9", "label": "Top", "kids": "False"},
    {"image": "a7", "sender_id": "9", "label": "Skip", "kids": "False"},
]


def test_read_clothing(tmp_path: Path) -> None:
    root = _clothing(tmp_path / "clothing", CLOTHING_ROWS)
    recs = read_clothing(root)
    assert [r.meta["label"] for r in recs] == ["T-Shirt", "Pants", "Shoes", "Polo", "Top"]
    by = {r.meta["label"]: r for r in recs}
    assert all(r.source == "clothing" and r.path.is_file() and len(r.garments) == 1 for r in recs)
    assert by["T-Shirt"].path == root / "images" / "a1.jpg"
    assert by["T-Shirt"].group == by["Pants"].group == "clothing/7"
    assert by["Shoes"].meta["kids"] is True and by["T-Shirt"].meta["kids"] is False
    tshirt = by["T-Shirt"].garments[0]
    assert tshirt.categories == ("t-shirts",) and tshirt.object_type == "upper-body"
    assert tshirt.attributes == {"sleeve": "short"}
    assert tshirt.bbox_xyxy is None and tshirt.source_label == "T-Shirt"
    assert by["Pants"].garments[0].categories == ("jeans", "trousers")
    assert by["Pants"].garments[0].object_type == "lower-body"
    shoes = by["Shoes"].garments[0]
    assert set(shoes.categories) == set(load_taxonomy().categories_of("footwear"))
    assert shoes.object_type == "footwear"
    assert by["Polo"].garments[0].attributes == {"sleeve": "short", "neckline": "collared"}
    top = by["Top"].garments[0]
    assert top.categories == () and top.object_type == "upper-body"


def test_read_clothing_include_unmapped(tmp_path: Path) -> None:
    recs = read_clothing(_clothing(tmp_path / "clothing", CLOTHING_ROWS), include_unmapped=True)
    assert len(recs) == len(CLOTHING_ROWS)
    unmapped = [r for r in recs if not r.garments]
    assert sorted(r.meta["label"] for r in unmapped) == ["Not sure", "Skip"]


def test_read_clothing_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        read_clothing(tmp_path / "nowhere")
    root = _clothing(tmp_path / "no_sender", CLOTHING_ROWS, fieldnames=("image", "label"))
    with pytest.raises(ValueError, match=r"missing columns \['sender_id'\]"):
        read_clothing(root)
    root = _clothing(tmp_path / "empty_id", [{"image": "", "sender_id": "1", "label": "Hat"}])
    with pytest.raises(ValueError, match=r"labels.csv:2: empty image id"):
        read_clothing(root)
    root = _clothing(tmp_path / "bad_label", [{"image": "x", "sender_id": "1", "label": "Tshirt"}])
    with pytest.raises(ValueError, match="unknown source label 'Tshirt'"):
        read_clothing(root)


# --- RISE ------------------------------------------------------------------------------------


def _rise(root: Path, rows: list[dict | str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (root / "garments.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    for r in rows:
        if isinstance(r, dict) and "id" in r:
            _jpeg(root / "images" / f"{r['id']}.jpg", (29, 51))
    return root


def _row(id_: str, type_: str, **kw) -> dict:
    row = {"id": id_, "type": type_, "pattern": None, "cut": "[]", "material": "", "colors": "[]", "season": "",
           "gender": "women"}
    row.update(kw)
    return row


RISE_ROWS = [
    _row("FN0001", "Sweater", material="80% ull, 20% polyamid", colors="['Red', 'Multicolor', 'red']",
         cut="['Loose', 'V-collar']", pattern="Striped"),
    _row("FN0002", "Blazer", material="Shell: 73% Cotton, 11% Polyester. Lining: 100% Polyester",
         colors="['Black']", cut="['Regular', 'Oversize']", pattern="Other"),
    _row("FN0003", "Vest", material="?", colors="['Beige', 'Mauve']", cut="['Regular']", pattern="none"),
    _row("FN0004", "Winter Jacket", material=None, colors=None, cut=None),
]


def test_read_rise(tmp_path: Path) -> None:
    root = _rise(tmp_path / "rise", RISE_ROWS)
    recs = read_rise(root)
    assert [r.group for r in recs] == ["rise/FN0001", "rise/FN0002", "rise/FN0003", "rise/FN0004"]
    assert all(r.source == "rise" and r.path.is_file() and len(r.garments) == 1 for r in recs)
    assert recs[0].path == root / "images" / "FN0001.jpg"
    sweater, blazer, vest, winter = (r.garments[0] for r in recs)
    assert sweater.categories == ("sweaters",) and sweater.object_type == "upper-body"
    assert sweater.source_label == "Sweater"
    assert sweater.attributes == {"pattern": "striped", "colours": ("red", "multicolour"), "material": "wool",
                                  "fit": "loose", "neckline": "v-neck"}
    assert blazer.categories == ("formal-jackets",)
    # "Other" pattern is unmapped; a non-regular fit wins over "Regular"; the shell counts
    assert blazer.attributes == {"colours": ("black",), "material": "cotton", "fit": "oversize"}
    # vests have only an object type; an unknown colour is dropped; "?" is no material
    assert vest.categories == () and vest.object_type == "upper-body"
    assert vest.attributes == {"colours": ("beige",), "fit": "regular"}
    assert winter.categories == ("coats-jackets",) and winter.attributes == {}
    assert recs[0].meta["material"] == "80% ull, 20% polyamid"


def test_rise_attributes_accept_real_lists() -> None:
    attrs = rise_attributes({"colors": ["Blue"], "cut": ["Turtle neck", "Tight"], "pattern": "Dots",
                             "material": "100% Poly"})
    assert attrs == {"colours": ("blue",), "neckline": "turtle-neck", "fit": "tight", "pattern": "polka-dots",
                     "material": "polyester"}


def test_read_rise_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="garments.jsonl"):
        read_rise(tmp_path / "nowhere")
    root = _rise(tmp_path / "badjson", [_row("A", "Sweater"), "{not json"])
    with pytest.raises(ValueError, match=r"garments.jsonl:2: not valid JSON"):
        read_rise(root)
    root = _rise(tmp_path / "nokeys", [{"id": "A"}])
    with pytest.raises(ValueError, match=r"garments.jsonl:1: expected keys 'id' and 'type'"):
        read_rise(root)
    root = _rise(tmp_path / "badcolors", [_row("A", "Sweater", colors="['Red'")])
    with pytest.raises(ValueError, match=r"garments.jsonl:1: colors: expected a list string"):
        read_rise(root)
    root = _rise(tmp_path / "notalist", [_row("A", "Sweater", colors="'Red'")])
    with pytest.raises(ValueError, match=r"colors: expected a list"):
        read_rise(root)
    root = _rise(tmp_path / "badcut", [_row("A", "Sweater", cut="[Loose]")])
    with pytest.raises(ValueError, match=r"cut: expected a list string"):
        read_rise(root)
    root = _rise(tmp_path / "badtype", [_row("A", "Swetaer")])
    with pytest.raises(ValueError, match="Did you mean 'Sweater'"):
        read_rise(root)


def test_read_rise_skips_blank_lines(tmp_path: Path) -> None:
    root = _rise(tmp_path / "rise", [_row("A", "Hoodie"), "", "   ", _row("B", "Cardigan")])
    assert [r.garments[0].categories for r in read_rise(root)] == [("hoodies",), ("cardigans",)]


# --- CCP ---------------------------------------------------------------------------------------

CCP_LABELS = ["null", "skin", "hair", "shoes", "coat", "boots", "sneakers", "jeans", "bag", "top"]
L = {name: i for i, name in enumerate(CCP_LABELS)}
MH, MW = 100, 80  # min area: max(16, 0.002 * 8000) = 16 px


def _scene() -> np.ndarray:
    m = np.zeros((MH, MW), np.uint8)
    m[5:15, 30:50] = L["hair"]
    m[15:60, 20:60] = L["skin"]
    # a coat in two parts (cut by the skin of an arm): one instance
    m[20:50, 20:35] = L["coat"]
    m[20:50, 45:60] = L["coat"]
    # two shoes apart: two instances; a 3×3 shoe speck: dropped
    m[85:95, 10:20] = L["shoes"]
    m[85:95, 50:60] = L["shoes"]
    m[70:73, 70:73] = L["shoes"]
    # two boots touching: one instance (the mask cannot separate them)
    m[60:70, 0:5] = L["boots"]
    m[60:70, 5:10] = L["boots"]
    # sneakers meeting only at a corner: one 8-connected instance
    m[73:78, 30:35] = L["sneakers"]
    m[78:83, 35:40] = L["sneakers"]
    # a tiny bag: dropped (single-instance classes need min area too)
    m[0:3, 0:3] = L["bag"]
    # jeans
    m[60:85, 20:28] = L["jeans"]
    return m


def test_ccp_instance_rule() -> None:
    mask = _scene()
    garments = ccp_instances(mask, CCP_LABELS)
    by_label: dict[str, list] = {}
    for g in garments:
        by_label.setdefault(g.source_label, []).append(g)
    assert sorted(by_label) == ["boots", "coat", "jeans", "shoes", "sneakers"]  # no skin, hair or tiny bag
    assert len(by_label["shoes"]) == 2
    assert len(by_label["coat"]) == 1
    assert len(by_label["boots"]) == 1
    assert len(by_label["sneakers"]) == 1
    coat = by_label["coat"][0]
    assert coat.categories == ("coats-jackets",) and coat.object_type == "upper-body"
    assert coat.bbox_xyxy == (20.0, 20.0, 60.0, 50.0)
    assert decode_mask(coat.mask_rle).sum() == 2 * 30 * 15
    shoes = sorted(by_label["shoes"], key=lambda g: g.bbox_xyxy)
    assert [g.bbox_xyxy for g in shoes] == [(10.0, 85.0, 20.0, 95.0), (50.0, 85.0, 60.0, 95.0)]
    for g in shoes:
        assert g.categories == () and g.object_type == "footwear"
        m = decode_mask(g.mask_rle)
        assert m.shape == (MH, MW) and m.sum() == 100
    assert by_label["boots"][0].bbox_xyxy == (0.0, 60.0, 10.0, 70.0)
    assert by_label["boots"][0].categories == ("boots",)
    assert by_label["sneakers"][0].categories == ("trainers",)
    assert decode_mask(by_label["sneakers"][0].mask_rle).sum() == 50
    assert by_label["jeans"][0].categories == ("jeans",)


def test_ccp_min_area_frac() -> None:
    mask = _scene()
    # at 2 % of the photo (160 px) only the coat (900 px) and jeans (200 px) are big enough
    kept = {g.source_label for g in ccp_instances(mask, CCP_LABELS, min_area_frac=0.02)}
    assert kept == {"coat", "jeans"}


def test_ccp_mask_value_outside_labels() -> None:
    mask = _scene()
    mask[0, 79] = len(CCP_LABELS)
    with pytest.raises(ValueError, match=f"mask value {len(CCP_LABELS)} is outside the {len(CCP_LABELS)} CCP labels"):
        ccp_instances(mask, CCP_LABELS)


def _ccp(root: Path, masks: dict[str, np.ndarray], photos: list[str] | None = None,
         labels: list[str] = CCP_LABELS) -> Path:
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps(labels), "utf-8")
    for stem, m in masks.items():
        Image.fromarray(m).save(root / "masks" / f"{stem}.png")
    for stem in masks if photos is None else photos:
        _jpeg(root / "photos" / f"{stem}.jpg", (MW, MH))
    return root


def test_read_ccp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = np.zeros((MH, MW), np.uint8)
    root = _ccp(tmp_path / "ccp", {"0001": _scene(), "0002": empty, "0003": _scene()}, photos=["0001", "0002"])
    with caplog.at_level(logging.WARNING, logger="fashionlens.io.ccp"):
        recs = read_ccp(root)
    assert [r.group for r in recs] == ["ccp/0001", "ccp/0002"]
    assert "0003.png has no photo" in caplog.text
    r = recs[0]
    assert r.source == "ccp" and r.path == root / "photos" / "0001.jpg" and r.path.is_file()
    assert (r.width, r.height) == (MW, MH)
    assert len(r.garments) == 6  # coat, 2 shoes, boots, sneakers, jeans
    assert recs[1].garments == []


def test_read_ccp_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="labels.json"):
        read_ccp(tmp_path / "nowhere")
    bad = _scene()
    bad[50, 50] = 200
    with pytest.raises(ValueError, match="outside"):
        read_ccp(_ccp(tmp_path / "outside", {"0001": bad}))
    rgb_root = _ccp(tmp_path / "rgb", {})
    Image.new("RGB", (MW, MH)).save(rgb_root / "masks" / "0001.png")
    _jpeg(rgb_root / "photos" / "0001.jpg")
    with pytest.raises(ValueError, match="single-channel"):
        read_ccp(rgb_root)
    with pytest.raises(ValueError, match="unknown source label 'coats'"):
        read_ccp(_ccp(tmp_path / "badlabel", {"0001": _scene()}, labels=[*CCP_LABELS[:4], "coats", *CCP_LABELS[5:]]))


# --- the real data sets ---------------------------------------------------------------------------


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data set not found at {path}")
    return path


@pytest.mark.data
def test_real_clothing() -> None:
    root = _need(DATASETS / "clothing")
    with (root / "labels.csv").open(newline="", encoding="utf-8") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    assert n_rows == 4606
    recs = read_clothing(root)
    assert len(recs) == 4340
    assert all(len(r.garments) == 1 for r in recs)
    assert all(r.path.is_file() for r in recs)
    assert len(read_clothing(root, include_unmapped=True)) == 4606


@pytest.mark.data
def test_real_rise() -> None:
    root = _need(DATASETS / "rise")
    recs = read_rise(root)
    assert len(recs) == 1406
    assert len({r.group for r in recs}) == 1406
    assert all(r.path.is_file() for r in recs)
    assert all(r.garments[0].object_type == "upper-body" for r in recs)
    with_colour = sum(1 for r in recs if "colours" in r.garments[0].attributes)
    assert with_colour > 0.9 * len(recs)


@pytest.mark.data
def test_real_ccp(monkeypatch: pytest.MonkeyPatch) -> None:
    root = _need(DATASETS / "ccp")
    labels = json.loads((root / "labels.json").read_text("utf-8"))
    assert len(labels) == 59
    # every photo and path (instances stubbed out: the full rule over 873 masks takes ~20 s) ...
    monkeypatch.setattr(ccp_module, "ccp_instances", lambda mask, labels, min_area_frac=0.002: [])
    recs = read_ccp(root)
    assert len(recs) == 873
    assert all(r.path.is_file() for r in recs)
    assert len({r.group for r in recs}) == 873
    monkeypatch.undo()
    # ... and the real rule on a sample of them
    types = set()
    for r in recs[::40]:
        mask = np.asarray(Image.open(root / "masks" / f"{r.path.stem}.png"))
        assert mask.shape == (r.height, r.width)
        garments = ccp_instances(mask, labels)
        assert garments, r.path
        for g in garments:
            x0, y0, x1, y1 = g.bbox_xyxy
            assert 0 <= x0 < x1 <= r.width and 0 <= y0 < y1 <= r.height
            assert g.object_type is not None
            assert decode_mask(g.mask_rle).sum() >= 0.002 * r.width * r.height
            types.add(g.object_type)
    assert {"upper-body", "lower-body", "footwear"} <= types
