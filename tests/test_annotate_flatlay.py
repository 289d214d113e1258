"""Flat-lay auto-annotation on synthetic photos: a textured shape is boxed, a blank photo is reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.detection.flatlay import FlatlayParams, annotate_flatlay, detect_flatlay, write_flatlay_coco
from fashionlens.cli import main
from fashionlens.io.coco import read_coco
from fashionlens.io.records import GarmentAnnotation, ImageRecord

TRUE_BOX = (60, 40, 260, 200)  # x0, y0, x1, y1 in a 320×240 photo


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _garment_photo(seed: int = 0) -> np.ndarray:
    """Light grey background with slight noise; a T-shirt-like shape (body + sleeves), striped + noisy."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(225, 3, (240, 320, 3)), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = TRUE_BOX
    shape = np.zeros((240, 320), bool)
    shape[y0 + 30:y1, x0 + 50:x1 - 50] = True  # body
    shape[y0:y0 + 60, x0:x1] = True  # shoulders + sleeves
    yy = np.arange(240)[:, None].repeat(320, 1)
    colour = np.where((yy // 8) % 2 == 0, 0, 1)[..., None] * np.array([40, 40, 120]) + np.array([150, 30, 40])
    texture = rng.normal(0, 12, (240, 320, 3))
    img[shape] = np.clip(colour[shape] + texture[shape], 0, 255).astype(np.uint8)
    return img


def test_textured_shape_is_boxed() -> None:
    result = detect_flatlay(_garment_photo())
    assert result.reason is None and result.bbox_xyxy is not None
    assert _iou(result.bbox_xyxy, TRUE_BOX) >= 0.9
    assert result.mask is not None and result.mask.shape == (240, 320)
    assert result.mask[100, 160] and not result.mask[5, 5]
    assert result.flags == ()


def test_reduced_decode_scales_to_full_size() -> None:
    photo = _garment_photo()
    half = photo[::2, ::2].copy()
    result = detect_flatlay(half, full_size=(320, 240))
    assert result.mask.shape == (240, 320) and _iou(result.bbox_xyxy, TRUE_BOX) >= 0.85


def test_blank_photo_has_no_box() -> None:
    result = detect_flatlay(np.full((120, 160, 3), 200, np.uint8))
    assert result.bbox_xyxy is None and result.mask is None and result.reason == "no_edges"


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        detect_flatlay(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="odd blur"):
        FlatlayParams(blur=4)


def test_annotate_reports_blank_and_labels_from_dataset(tmp_path: Path) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(_garment_photo()).save(d / "shirt.png")
    Image.new("RGB", (160, 120), (200, 200, 200)).save(d / "blank.png")
    labels = {(d / "shirt.png").resolve(): ImageRecord(
        path=d / "shirt.png", source="clothing", group="clothing/s1",
        garments=[GarmentAnnotation(categories=("t-shirts",), source_label="T-Shirt")])}
    report = annotate_flatlay([d], labels=labels, render_dir=tmp_path / "render")
    assert report.summary()["boxed"] == 1 and report.no_box == [{"path": str(d / "blank.png"), "reason": "no_edges"}]
    [rec] = report.records
    assert rec.garments[0].category == "t-shirts" and rec.group == "clothing/s1"
    assert (tmp_path / "render" / "shirt.png").is_file() and (tmp_path / "render" / "blank.png").is_file()

    summary = write_flatlay_coco(report, tmp_path / "coco.json")
    assert summary == {"images": 1, "annotations": 1, "skipped": 0}
    [back] = read_coco(tmp_path / "coco.json")
    assert back.path == (d / "shirt.png") and _iou(back.garments[0].bbox_xyxy, TRUE_BOX) >= 0.9


def test_cli_annotate_flatlay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(_garment_photo()).save(tmp_path / "a.png")
    Image.new("RGB", (160, 120), (200, 200, 200)).save(tmp_path / "b.png")
    out = tmp_path / "out" / "coco.json"
    assert main(["annotate", "flatlay", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(out),
                 "--object-types"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["boxed"] == 1 and printed["no_box"] == 1 and printed["unlabelled"] == 1
    assert printed["no_box_photos"][0]["reason"] == "no_edges"
    doc = json.loads(out.read_text())
    # unlabelled garment: no object type, so nothing in the object-type space (counted as skipped)
    assert doc["images"][0]["file_name"] == "../a.png" and printed["coco"]["skipped"] == 1
