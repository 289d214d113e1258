from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionlens.io.imaterialist import (
    IMATERIALIST_CATEGORIES,
    kaggle_rle_to_coco,
    kaggle_rle_to_mask,
    mask_to_kaggle_rle,
    read_imaterialist,
)
from fashionlens.io.records import decode_mask
from fashionlens.taxonomy import available_mappings

# ------------------------------------------------------------------------------ Kaggle RLE


def test_hand_made_example_is_column_major() -> None:
    # 3 rows x 4 columns; pixels are numbered down each column first:
    #   1 4 7 10
    #   2 5 8 11
    #   3 6 9 12
    expected = np.array(
        [
            [0, 1, 0, 1],
            [1, 0, 0, 1],
            [1, 0, 0, 0],
        ],
        dtype=bool,
    )
    rle = "2 3 10 2"  # pixels 2, 3 (column 0, rows 1-2), 4 (column 1, row 0), then 10, 11 (column 3)
    np.testing.assert_array_equal(kaggle_rle_to_mask(rle, 3, 4), expected)
    assert mask_to_kaggle_rle(expected) == rle


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (7, 5), (32, 17), (64, 64)])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_round_trip_random_masks(shape: tuple[int, int], density: float) -> None:
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = rng.random(shape) < density
    rle = mask_to_kaggle_rle(mask)
    np.testing.assert_array_equal(kaggle_rle_to_mask(rle, *shape), mask)
    coco = kaggle_rle_to_coco(rle, *shape)
    assert isinstance(coco["counts"], str) and coco["size"] == list(shape)
    np.testing.assert_array_equal(decode_mask(coco), mask)


@pytest.mark.parametrize("rle", ["3 2 1 1", "1 3 2 4", "1 2 3 2", "5 1"], ids=["unsorted", "overlap", "touching", "one"])
def test_coco_conversion_handles_unsorted_overlapping_and_touching_runs(rle: str) -> None:
    np.testing.assert_array_equal(decode_mask(kaggle_rle_to_coco(rle, 3, 3)), kaggle_rle_to_mask(rle, 3, 3))


def test_empty_rle_is_empty_mask() -> None:
    assert not kaggle_rle_to_mask("", 2, 3).any()
    assert mask_to_kaggle_rle(np.zeros((2, 3), bool)) == ""


@pytest.mark.parametrize(
    ("rle", "height", "width", "message"),
    [
        ("1 2 3", 3, 3, "even number of values"),
        ("1 x", 3, 3, "must be integers, got 'x'"),
        ("1.5 2", 3, 3, "must be integers, got '1.5'"),
        ("0 2", 3, 3, "starts must be >= 1"),
        ("1 0", 3, 3, "lengths >= 1"),
        ("-2 2", 3, 3, "starts must be >= 1"),
        ("8 3", 3, 3, "runs past the last pixel"),
        ("1 1", 0, 3, "height must be a positive integer"),
        ("1 1", 3, 2.5, "width must be a positive integer"),
        (None, 3, 3, "must be a string"),
    ],
)
def test_bad_rle_raises(rle, height, width, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kaggle_rle_to_mask(rle, height, width)


def test_mask_to_rle_rejects_3d() -> None:
    with pytest.raises(ValueError, match="must be 2-D"):
        mask_to_kaggle_rle(np.zeros((2, 2, 3)))


def test_default_categories() -> None:
    assert len(IMATERIALIST_CATEGORIES) == 46
    assert IMATERIALIST_CATEGORIES[0] == "shirt, blouse"
    assert IMATERIALIST_CATEGORIES[6] == "pants"
    assert IMATERIALIST_CATEGORIES[31] == "sleeve"
    assert IMATERIALIST_CATEGORIES[45] == "tassel"


# ------------------------------------------------------------------------------ CSV reader

HEADER = "ImageId,EncodedPixels,Height,Width,ClassId\n"


def _square_rle(h: int, w: int, rows: slice, cols: slice) -> str:
    m = np.zeros((h, w), bool)
    m[rows, cols] = True
    return mask_to_kaggle_rle(m)


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(header + body)
    return path


def _body() -> str:
    pants = _square_rle(10, 8, slice(5, 10), slice(1, 4))
    sleeve = _square_rle(10, 8, slice(0, 2), slice(0, 8))
    dress = _square_rle(4, 6, slice(1, 3), slice(2, 5))
    return (f"aaa.jpg,{pants},10,8,6\n"
            f"bbb.jpg,{dress},4,6,10_0_3\n"
            f"aaa.jpg,{sleeve},10,8,31\n")


def test_read_without_mapping(tmp_path: Path) -> None:
    a, b = read_imaterialist(_csv(tmp_path, _body()), tmp_path / "train", mapping=None)
    assert a.path == tmp_path / "train" / "aaa.jpg" and a.group == "aaa"
    assert (a.width, a.height, a.source) == (8, 10, "imaterialist")
    pants, sleeve = a.garments
    assert pants.source_label == "pants" and pants.object_type is None  # unmapped without a mapping: kept
    assert pants.bbox_xyxy == (1.0, 5.0, 4.0, 10.0)
    assert pants.mask().sum() == 15
    assert sleeve.source_label == "sleeve" and sleeve.bbox_xyxy == (0.0, 0.0, 8.0, 2.0)
    assert b.garments[0].source_label == "dress"
    assert a.meta["source_attribute_ids"] == [[], []] and b.meta["source_attribute_ids"] == [[0, 3]]
    assert "source_attributes" not in a.meta


@pytest.mark.skipif("imaterialist" not in available_mappings(), reason="imaterialist mapping not written yet")
def test_read_with_default_mapping(tmp_path: Path) -> None:
    a, b = read_imaterialist(_csv(tmp_path, _body()), tmp_path)
    pants, sleeve = a.garments
    assert set(pants.categories) == {"jeans", "trousers"} and pants.object_type == "lower-body"
    assert sleeve.object_type is None and sleeve.mask_rle is not None
    assert b.garments[0].category == "dresses"


def test_label_descriptions_and_2020_columns(tmp_path: Path) -> None:
    desc = {
        "categories": [{"id": 0, "name": "dress"}, {"id": 1, "name": "sleeve"}],
        "attributes": [{"id": 115, "name": "symmetrical"}, {"id": 328, "name": "stripe"}],
    }
    desc_path = tmp_path / "label_descriptions.json"
    desc_path.write_text(json.dumps(desc))
    rle = _square_rle(4, 4, slice(0, 2), slice(0, 2))
    body = f'img1,{rle},4,4,0,"115,328"\nimg1,{rle},4,4,1,\n'
    (rec,) = read_imaterialist(_csv(tmp_path, body, HEADER.strip() + ",AttributesIds\n"), tmp_path,
                               mapping=None, label_descriptions=desc_path)
    assert rec.path == tmp_path / "img1.jpg" and rec.group == "img1"
    assert rec.meta["source_attribute_ids"] == [[115, 328], []]
    assert rec.meta["source_attributes"] == [["symmetrical", "stripe"], []]
    assert rec.garments[0].attributes == {"pattern": "striped"}
    assert rec.garments[0].source_label == "dress" and rec.garments[1].source_label == "sleeve"


BAD = [
    ("missing column", "ImageId,EncodedPixels,Height,Width\n", "a.jpg,1 2,3,3\n", r"missing columns \['ClassId'\]"),
    ("bad height", HEADER, "a.jpg,1 2,three,3,6\n", r"train\.csv:2: Height must be a positive integer"),
    ("zero width", HEADER, "a.jpg,1 2,3,0,6\n", r"train\.csv:2: Width must be a positive integer, got 0"),
    ("bad class", HEADER, "a.jpg,1 2,3,3,six\n", r"train\.csv:2: ClassId must be integers"),
    ("class out of range", HEADER, "a.jpg,1 2,3,3,46\n", r"ClassId category 46 is unknown; expected one of 0\.\.45"),
    ("empty class", HEADER, "a.jpg,1 2,3,3,\n", "empty ClassId"),
    ("empty pixels", HEADER, "a.jpg,,3,3,6\n", "empty EncodedPixels"),
    ("odd pixels", HEADER, "a.jpg,1 2 3,3,3,6\n", r"train\.csv:2: EncodedPixels: .*even number"),
    ("pixels past end", HEADER, "a.jpg,8 5,3,3,6\n", "runs past the last pixel"),
    ("size changes", HEADER, "a.jpg,1 2,3,3,6\na.jpg,1 2,4,3,6\n", r"train\.csv:3: image a\.jpg has size 4x3 here"),
    ("short row", HEADER, "a.jpg,1 2,3\n", r"train\.csv:2: expected 5 columns"),
    ("long row", HEADER, "a.jpg,1 2,3,3,6,extra\n", r"train\.csv:2: expected 5 columns"),
    ("empty image id", HEADER, ",1 2,3,3,6\n", "empty ImageId"),
]


@pytest.mark.parametrize(("case", "header", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_csv_raises(tmp_path: Path, case: str, header: str, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_imaterialist(_csv(tmp_path, body, header), tmp_path, mapping=None)


@pytest.mark.parametrize(
    ("descriptions", "message"),
    [
        ({"categories": "x"}, "expected an object with a 'categories' list"),
        ({"categories": [{"id": "0", "name": "dress"}]}, r"categories\[0\] must be \{'id': int, 'name': str\}"),
        ({"categories": [{"id": 6, "name": "pants"}], "attributes": [{"id": 1, "name": "a"}]},
         "attribute ids \\[28\\] are not in label_descriptions"),
    ],
)
def test_bad_label_descriptions(tmp_path: Path, descriptions: dict, message: str) -> None:
    path = _csv(tmp_path, "a.jpg,1 2,3,3,6_28\n")
    with pytest.raises(ValueError, match=message):
        read_imaterialist(path, tmp_path, mapping=None, label_descriptions=descriptions)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="iMaterialist CSV .* not found"):
        read_imaterialist(tmp_path / "train.csv", tmp_path, mapping=None)
    with pytest.raises(ValueError, match="label_descriptions file .* not found"):
        read_imaterialist(_csv(tmp_path, ""), tmp_path, mapping=None, label_descriptions=tmp_path / "nope.json")
