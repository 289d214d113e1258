from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from fashionlens.io.yolo import read_yolo

W, H = 100, 50
NAMES = ["t-shirts", "jeans", "sleeve"]


def _dataset(tmp_path: Path, rows_a: str) -> tuple[Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    (images / "train").mkdir(parents=True)
    (labels / "train").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(images / "train" / "a.png")
    Image.new("RGB", (40, 30)).save(images / "train" / "b.jpg")  # no label file: background image
    (images / "notes.txt").write_text("not an image")
    (labels / "train" / "a.txt").write_text(rows_a)
    (labels / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return images, labels


GOOD = "0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.5 0.2 0.5 0.8 0.1 0.8\n2 0.05 0.05 0.1 0.1\n"


def test_boxes_and_polygons(tmp_path: Path) -> None:
    images, labels = _dataset(tmp_path, GOOD)
    a, b = read_yolo(images, labels, NAMES)
    assert a.path == images / "train" / "a.png" and a.group == "train/a"
    assert (a.width, a.height, a.source) == (W, H, "yolo")
    box, poly, sleeve = a.garments
    assert box.category == "t-shirts" and box.mask_rle is None
    assert box.bbox_xyxy == pytest.approx((40, 15, 60, 35))
    assert poly.category == "jeans" and poly.object_type == "lower-body"
    assert poly.bbox_xyxy == pytest.approx((10, 10, 50, 40))
    mask = poly.mask()
    assert mask.shape == (H, W)
    assert 40 * 30 <= mask.sum() <= 41 * 31
    assert sleeve.object_type is None and sleeve.source_label == "sleeve"  # unmapped: kept
    assert b.garments == [] and (b.width, b.height) == (40, 30)


def test_orphan_label_files_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images, labels = _dataset(tmp_path, GOOD)
    with caplog.at_level(logging.WARNING, logger="fashionlens.io.yolo"):
        read_yolo(images, labels, NAMES)
    assert "1 label files have no image" in caplog.text


def test_with_real_mapping_and_dict_names(tmp_path: Path) -> None:
    images, labels = _dataset(tmp_path, "0 0.5 0.5 0.2 0.4\n1 0.5 0.5 0.2 0.4\n")
    a, _ = read_yolo(images, labels, {0: "T-Shirt", 1: "Pants"}, mapping="clothing", source="clothing")
    assert a.garments[0].categories == ("t-shirts",) and a.garments[0].attributes == {"sleeve": "short"}
    assert set(a.garments[1].categories) == {"jeans", "trousers"} and a.garments[1].category is None
    assert a.source == "clothing"


def test_coordinates_slightly_outside_are_clipped(tmp_path: Path) -> None:
    images, labels = _dataset(tmp_path, "0 0.9 0.5 0.2 1.0004\n")
    a, _ = read_yolo(images, labels, NAMES)
    assert a.garments[0].bbox_xyxy == pytest.approx((80, 0, 100, 50))


BAD_ROWS = [
    ("0 0.5 0.5 0.2", "got 3 values"),
    ("0 0.1 0.1 0.2 0.2 0.3", "got 5 values"),
    ("x 0.5 0.5 0.2 0.2", "class id 'x' is not an integer"),
    ("1.5 0.5 0.5 0.2 0.2", "class id '1.5' is not an integer"),
    ("3 0.5 0.5 0.2 0.2", "class id 3 is out of range"),
    ("-1 0.5 0.5 0.2 0.2", "class id -1 is out of range"),
    ("0 0.5 abc 0.2 0.2", "value 2 'abc' is not a number"),
    ("0 1.5 0.5 0.2 0.2", r"not a normalised coordinate in \[0, 1\]"),
    ("0 0.5 0.5 nan 0.2", "value 3 'nan'"),
    ("0 0.5 0.5 0 0.2", "width and height must be > 0"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS, ids=[r[0] for r in BAD_ROWS])
def test_bad_row_raises_with_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    images, labels = _dataset(tmp_path, f"0 0.5 0.5 0.2 0.4\n{row}\n")
    with pytest.raises(ValueError, match=rf"a\.txt:2: .*{message}"):
        read_yolo(images, labels, NAMES)


@pytest.mark.parametrize(("row", "message"), BAD_ROWS[:3], ids=[r[0] for r in BAD_ROWS[:3]])
def test_bad_row_skipped_on_request(tmp_path: Path, caplog: pytest.LogCaptureFixture, row: str, message: str) -> None:
    images, labels = _dataset(tmp_path, f"0 0.5 0.5 0.2 0.4\n{row}\n1 0.5 0.5 0.2 0.4\n")
    with caplog.at_level(logging.WARNING, logger="fashionlens.io.yolo"):
        a, _ = read_yolo(images, labels, NAMES, on_error="skip")
    assert [g.category for g in a.garments] == ["t-shirts", "jeans"]
    assert "a.txt:2" in caplog.text and "skipped 1 bad rows" in caplog.text


def test_unreadable_image(tmp_path: Path) -> None:
    images, labels = _dataset(tmp_path, GOOD)
    (images / "train" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read the size of image .*broken.jpg"):
        read_yolo(images, labels, NAMES)
    records = read_yolo(images, labels, NAMES, on_error="skip")
    assert [r.group for r in records] == ["train/a", "train/b"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": []}, "class_names is empty"),
        ({"class_names": "t-shirts"}, "class_names must be a list"),
        ({"class_names": ["ok", 3]}, "non-empty strings"),
        ({"class_names": {1: "a"}}, "keys 0..n-1"),
        ({"on_error": "ignore"}, "on_error must be 'raise' or 'skip'"),
        ({"images_dir": "missing"}, "images_dir .* is not a directory"),
        ({"labels_dir": "missing"}, "labels_dir .* is not a directory"),
        ({"mapping": "clothing"}, "class_names: .*unknown source label 't-shirts'"),
        ({"mapping": "no-such-mapping"}, "no mapping for source"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    images, labels = _dataset(tmp_path, GOOD)
    args = {"images_dir": images, "labels_dir": labels, "class_names": NAMES, **kwargs}
    for key in ("images_dir", "labels_dir"):
        if args[key] == "missing":
            args[key] = tmp_path / "missing"
    with pytest.raises(ValueError, match=message):
        read_yolo(**args)
