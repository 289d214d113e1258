from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from fashionlens.io.voc import read_voc


def _obj(name: str, box: tuple, difficult: str | None = "0") -> str:
    diff = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    xmin, ymin, xmax, ymax = box
    return (f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{diff}"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")


def _xml(filename: str = "a.jpg", objects: str = "", size: str = "<size><width>60</width><height>40</height>"
         "<depth>3</depth></size>") -> str:
    return f"<annotation><folder>VOC</folder><filename>{filename}</filename>{size}{objects}</annotation>"


def _voc(tmp_path: Path, xml: str, name: str = "a.xml") -> Path:
    ann = tmp_path / "Annotations"
    ann.mkdir(exist_ok=True)
    (tmp_path / "JPEGImages").mkdir(exist_ok=True)
    (ann / name).write_text(xml)
    return ann


OBJECTS = _obj("t-shirts", (1, 1, 10, 20)) + _obj("sleeve", (5, 6, 7, 8), None) + _obj("jeans", (11, 21, 30, 40), "1")


def test_boxes_are_made_zero_based(tmp_path: Path) -> None:
    ann = _voc(tmp_path, _xml(objects=OBJECTS))
    (rec,) = read_voc(ann)
    assert rec.path == tmp_path / "JPEGImages" / "a.jpg"
    assert (rec.width, rec.height, rec.group, rec.source) == (60, 40, "a", "voc")
    shirt, sleeve, jeans = rec.garments
    assert shirt.bbox_xyxy == (0.0, 0.0, 10.0, 20.0) and shirt.category == "t-shirts"
    assert sleeve.object_type is None and sleeve.source_label == "sleeve"  # unmapped: kept
    assert jeans.bbox_xyxy == (10.0, 20.0, 30.0, 40.0)
    assert rec.meta["difficult"] == [False, False, True]


def test_zero_based_option(tmp_path: Path) -> None:
    (rec,) = read_voc(_voc(tmp_path, _xml(objects=OBJECTS)), one_based=False)
    assert rec.garments[0].bbox_xyxy == (1.0, 1.0, 10.0, 20.0)


def test_difficult_excluded_on_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fashionlens.io.voc"):
        (rec,) = read_voc(_voc(tmp_path, _xml(objects=OBJECTS)), include_difficult=False)
    assert [g.source_label for g in rec.garments] == ["t-shirts", "sleeve"]
    assert rec.meta["difficult"] == [False, False]
    assert "skipped 1 difficult" in caplog.text


def test_labelimg_layout_and_size_from_image(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (33, 22)).save(folder / "p.png")
    (folder / "p.xml").write_text(_xml("p.png", _obj("shirt", (2, 3, 4, 5)), size=""))
    (rec,) = read_voc(folder, mapping="ccp", source="labelimg")
    assert rec.path == folder / "p.png"
    assert (rec.width, rec.height) == (33, 22)
    assert rec.garments[0].categories == ("shirts",)


def test_size_unknown_without_image(tmp_path: Path) -> None:
    (rec,) = read_voc(_voc(tmp_path, _xml(size="<size><width>0</width><height>0</height></size>")), tmp_path)
    assert rec.width is None and rec.height is None and rec.garments == []


def test_files_sorted_and_image_dir(tmp_path: Path) -> None:
    ann = _voc(tmp_path, _xml("b.jpg"), "b.xml")
    _voc(tmp_path, _xml("a.jpg"), "a.xml")
    recs = read_voc(ann, tmp_path / "imgs")
    assert [r.path for r in recs] == [tmp_path / "imgs" / "a.jpg", tmp_path / "imgs" / "b.jpg"]


BAD = [
    ("doctype", '<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY x "y">]>' + _xml(), "DTD/entity"),
    ("entity lower", '<!entity x "y">' + _xml(), "DTD/entity"),
    ("not xml", "<annotation><filename>a.jpg", "not well-formed XML"),
    ("wrong root", "<doc><filename>a.jpg</filename></doc>", "root element must be <annotation>"),
    ("no filename", "<annotation></annotation>", "missing or empty <filename>"),
    ("no name", _xml(objects=_obj("", (1, 1, 2, 2))), r"object 0: missing or empty <name>"),
    ("no bndbox", _xml(objects="<object><name>x</name></object>"), "object 0: missing <bndbox>"),
    ("missing ymax", _xml(objects="<object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax>"
                                  "</bndbox></object>"), "missing or empty <ymax>"),
    ("text coordinate", _xml(objects=_obj("x", (1, "one", 2, 2))), "<ymin> must be a number, got 'one'"),
    ("inf coordinate", _xml(objects=_obj("x", (1, 1, "inf", 2))), "<xmax> must be finite"),
    ("inverted box", _xml(objects=_obj("x", (1, 1, 5, 0))), "ymax >= ymin"),
    ("bad difficult", _xml(objects=_obj("x", (1, 1, 2, 2), "yes")), "<difficult> must be 0 or 1"),
    ("bad size", _xml(size="<size><width>wide</width><height>2</height></size>"), "<size> width/height must be"),
]


@pytest.mark.parametrize(("case", "xml", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_xml_raises(tmp_path: Path, case: str, xml: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"a\.xml.*{message}"):
        read_voc(_voc(tmp_path, xml))


def test_mapping_without_label_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="object 0: .*unknown source label 't-shirts'"):
        read_voc(_voc(tmp_path, _xml(objects=OBJECTS)), mapping="ccp")


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        read_voc(tmp_path / "nope")
