from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fashionlens.io.coco import read_coco, segmentation_to_rle, write_coco
from fashionlens.io.records import GarmentAnnotation, ImageRecord, decode_mask, encode_mask
from fashionlens.taxonomy import available_mappings, load_taxonomy

H, W = 20, 30


def _square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _uncompressed(mask: np.ndarray) -> dict:
    """Column-major runs starting with zeros, as COCO writes crowd masks."""
    flat = mask.ravel(order="F").astype(np.int8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _doc() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "sub/b.jpg", "width": W, "height": H},
        ],
        "categories": [
            {"id": 1, "name": "t-shirts"},
            {"id": 2, "name": "jeans"},
            {"id": 3, "name": "sleeve"},
            {"id": 4, "name": "footwear"},
        ],
        "annotations": [
            # polygon covering x 2..10, y 3..9
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 8, 6], "iscrowd": 0,
             "segmentation": [[2, 3, 10, 3, 10, 9, 2, 9]]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 4, 4], "iscrowd": 0,
             "segmentation": _uncompressed(_square(1, 1, 5, 5))},
            {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": encode_mask(_square(20, 10, 25, 15))},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [0, 0, 30, 20], "iscrowd": 1,
             "segmentation": _uncompressed(_square(0, 0, 30, 20))},
            {"id": 5, "image_id": 1, "category_id": 4, "bbox": [5, 5, 2, 2]},
        ],
    }


def _write(tmp_path: Path, doc: dict, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_read_polygons_rle_and_boxes(tmp_path: Path) -> None:
    recs = read_coco(_write(tmp_path, _doc()), tmp_path / "images")
    assert [r.path for r in recs] == [tmp_path / "images" / "a.jpg", tmp_path / "images" / "sub" / "b.jpg"]
    a, b = recs
    assert (a.width, a.height, a.source, a.group) == (W, H, "coco", "a.jpg")
    assert a.meta["coco_image_id"] == 1
    assert b.garments == []  # images without annotations are kept
    poly, rle_list, rle_str, box_only = a.garments  # crowd skipped
    assert poly.categories == ("t-shirts",) and poly.object_type == "upper-body"
    assert poly.bbox_xyxy == (2.0, 3.0, 10.0, 9.0)
    assert poly.mask().sum() == 8 * 6
    assert isinstance(poly.mask_rle["counts"], str)
    np.testing.assert_array_equal(rle_list.mask(), _square(1, 1, 5, 5))
    assert rle_list.category == "jeans"
    np.testing.assert_array_equal(rle_str.mask(), _square(20, 10, 25, 15))
    assert rle_str.bbox_xyxy == (20.0, 10.0, 25.0, 15.0)  # computed from the mask
    assert box_only.mask_rle is None and box_only.bbox_xyxy == (5.0, 5.0, 7.0, 7.0)
    assert box_only.categories == () and box_only.object_type == "footwear"


def test_unmapped_label_is_kept_not_dropped(tmp_path: Path) -> None:
    a = read_coco(_write(tmp_path, _doc()))[0]
    sleeve = a.garments[2]
    assert sleeve.source_label == "sleeve"
    assert sleeve.categories == () and sleeve.object_type is None
    assert sleeve.mask_rle is not None


def test_default_image_dir_is_json_folder(tmp_path: Path) -> None:
    assert read_coco(_write(tmp_path, _doc()))[0].path == tmp_path / "a.jpg"


def test_crowd_included_on_request(tmp_path: Path) -> None:
    a = read_coco(_write(tmp_path, _doc()), include_crowd=True)[0]
    assert len(a.garments) == 5
    assert a.garments[3].mask().all()


def test_crowd_skip_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fashionlens.io.coco"):
        read_coco(_write(tmp_path, _doc()))
    assert "skipped 1 crowd" in caplog.text
    assert "kept unmapped" in caplog.text and "'sleeve'" in caplog.text


def test_test_set_file_without_annotations(tmp_path: Path) -> None:
    doc = {"images": [{"id": 7, "file_name": "x.jpg", "width": 4, "height": 3}]}
    (rec,) = read_coco(_write(tmp_path, doc))
    assert rec.garments == [] and rec.height == 3


def _fashionpedia_doc() -> dict:
    doc = {
        "images": [{"id": 1, "file_name": "f.jpg", "width": W, "height": H}],
        "categories": [{"id": 0, "name": "shirt, blouse"}, {"id": 31, "name": "sleeve"}, {"id": 6, "name": "pants"}],
        "attributes": [
            {"id": 115, "name": "symmetrical", "supercategory": "silhouette"},
            {"id": 317, "name": "plain (pattern)", "supercategory": "textile pattern"},
            {"id": 328, "name": "stripe", "supercategory": "textile pattern"},
            {"id": 322, "name": "check", "supercategory": "textile pattern"},
            {"id": 335, "name": "houndstooth (pattern)", "supercategory": "textile pattern"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 5, 5], "attribute_ids": [115, 328]},
            {"id": 2, "image_id": 1, "category_id": 31, "bbox": [1, 1, 2, 2], "attribute_ids": []},
            {"id": 3, "image_id": 1, "category_id": 6, "bbox": [1, 8, 5, 5], "attribute_ids": [317, 328]},
        ],
    }
    return doc


def test_fashionpedia_attributes_without_mapping(tmp_path: Path) -> None:
    (rec,) = read_coco(_write(tmp_path, _fashionpedia_doc()))
    assert rec.meta["source_attributes"] == [["symmetrical", "stripe"], [], ["plain (pattern)", "stripe"]]
    shirt, sleeve, pants = rec.garments
    assert shirt.object_type is None  # "shirt, blouse" is no taxonomy name
    assert shirt.attributes == {"pattern": "striped"}
    assert sleeve.attributes == {}
    assert pants.attributes == {}  # plain + stripe disagree: left unset


@pytest.mark.skipif("fashionpedia" not in available_mappings(), reason="fashionpedia mapping not written yet")
def test_fashionpedia_with_real_mapping(tmp_path: Path) -> None:
    doc = _fashionpedia_doc()
    doc["annotations"][2]["attribute_ids"] = [322, 335]  # check + houndstooth both map to "checked"
    (rec,) = read_coco(_write(tmp_path, doc), mapping="fashionpedia", source="fashionpedia")
    shirt, sleeve, pants = rec.garments
    assert set(shirt.categories) == {"shirts", "blouses"} and shirt.object_type == "upper-body"
    assert shirt.attributes["pattern"] == "striped"
    assert sleeve.object_type is None and sleeve.source_label == "sleeve"
    assert pants.object_type == "lower-body" and pants.attributes["pattern"] == "checked"
    assert rec.source == "fashionpedia"


def test_mapping_that_lacks_a_label_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"annotations\[0\].*unknown source label 't-shirts'"):
        read_coco(_write(tmp_path, _doc()), mapping="clothing")


def test_bad_mapping_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapping must be"):
        read_coco(_write(tmp_path, _doc()), mapping=3)  # type: ignore[arg-type]


def _mutate(path: list, value: object):
    def apply(doc: dict) -> dict:
        doc = copy.deepcopy(doc)
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc

    return apply


BAD = [
    ("no images", _mutate(["images"], KeyError), "lacks the 'images' list"),
    ("images not list", _mutate(["images"], {"id": 1}), "'images' must be a list"),
    ("image not object", _mutate(["images", 0], "a.jpg"), r"images\[0\] must be an object"),
    ("image without width", _mutate(["images", 0, "width"], KeyError), r"images\[0\] lacks \['width'\]"),
    ("string width", _mutate(["images", 0, "width"], "30"), "width must be an integer"),
    ("zero height", _mutate(["images", 0, "height"], 0), "must be positive"),
    ("duplicate image id", _mutate(["images", 1, "id"], 1), "duplicate image id 1"),
    ("unknown image", _mutate(["annotations", 0, "image_id"], 99), "image_id 99 is not in 'images'"),
    ("unknown category", _mutate(["annotations", 0, "category_id"], 42), "category_id 42 is not in 'categories'"),
    ("no category id", _mutate(["annotations", 0, "category_id"], KeyError), "lacks 'category_id'"),
    ("bool category id", _mutate(["annotations", 0, "category_id"], True), "must be an integer, got bool"),
    ("bbox of 3", _mutate(["annotations", 0, "bbox"], [1, 2, 3]), r"bbox must be \[x, y, width, height\]"),
    ("negative bbox", _mutate(["annotations", 0, "bbox"], [1, 2, -3, 4]), "must be >= 0"),
    ("string in bbox", _mutate(["annotations", 0, "bbox"], [1, "2", 3, 4]), "bbox value must be a number"),
    ("nan in bbox", _mutate(["annotations", 0, "bbox"], [1, float("nan"), 3, 4]), "must be finite"),
    ("no geometry", _mutate(["annotations", 4, "bbox"], KeyError), "neither a bbox nor a segmentation"),
    ("odd polygon", _mutate(["annotations", 0, "segmentation"], [[1, 2, 3, 4, 5]]), "odd number of coordinates"),
    ("polygon of str", _mutate(["annotations", 0, "segmentation"], [[1, 2, 3, "x", 5, 6]]), "coordinate must be a number"),
    ("segmentation str", _mutate(["annotations", 0, "segmentation"], "abc"), "segmentation must be a list of polygons"),
    ("rle wrong size", _mutate(["annotations", 2, "segmentation", "size"], [10, 10]), "differs from the image size"),
    ("rle bad counts", _mutate(["annotations", 1, "segmentation", "counts"], [1, 2, 3]), "sum to height\\*width"),
    ("rle counts type", _mutate(["annotations", 1, "segmentation", "counts"], 5), "counts must be a list of ints or"),
    ("category without name", _mutate(["categories", 0, "name"], KeyError), r"categories\[0\] needs 'id' and 'name'"),
    ("duplicate category", _mutate(["categories", 1, "id"], 1), "duplicate id 1"),
    ("unknown attribute id", lambda d: {**d, "attributes": [], "annotations": [
        {**d["annotations"][0], "attribute_ids": [5]}]}, "attribute id 5 is not in the top-level"),
    ("attribute_ids not list", lambda d: {**d, "annotations": [
        {**d["annotations"][0], "attribute_ids": 5}]}, "attribute_ids must be a list"),
    ("not an object", lambda d: [d], "must be a JSON object"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises(tmp_path: Path, case: str, mutate, message: str) -> None:
    path = _write(tmp_path, mutate(_doc()))
    with pytest.raises(ValueError, match=message):
        read_coco(path)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        read_coco(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_coco(bad)


def test_degenerate_polygons_are_ignored() -> None:
    rle = segmentation_to_rle([[1, 1, 5, 5], [2, 3, 10, 3, 10, 9, 2, 9]], H, W)
    assert decode_mask(rle).sum() == 48
    empty = segmentation_to_rle([[1, 1, 5, 5]], H, W)
    assert empty is not None and not decode_mask(empty).any()
    assert segmentation_to_rle([], H, W) is None


# ------------------------------------------------------------------------------ writing


def _records(tmp_path: Path) -> list[ImageRecord]:
    img = tmp_path / "images"
    return [
        ImageRecord(
            path=img / "a.jpg", source="test", group="g1", width=W, height=H,
            garments=[
                GarmentAnnotation(categories=("jeans",), mask_rle=encode_mask(_square(3, 4, 9, 15)),
                                  bbox_xyxy=(3, 4, 9, 15), attributes={"pattern": "striped", "colours": ("red", "blue")}),
                GarmentAnnotation(categories=("hats",), bbox_xyxy=(0.5, 1.5, 10.25, 7.0)),
                GarmentAnnotation(categories=("trainers", "boots"), bbox_xyxy=(1, 1, 2, 2)),  # coarse: skipped
                GarmentAnnotation(source_label="skin", mask_rle=encode_mask(_square(0, 0, 2, 2))),  # unmapped
                GarmentAnnotation(categories=("bags",), mask_rle=encode_mask(_square(20, 10, 28, 18))),
            ],
        ),
        ImageRecord(path=img / "nested" / "b.png", source="test", group="g2",
                    garments=[GarmentAnnotation(categories=("dresses",), mask_rle=encode_mask(_square(1, 1, 3, 3)))]),
        ImageRecord(path=img / "c.jpg", source="test", group="g3", width=5, height=6),
    ]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    records = _records(tmp_path)
    out = tmp_path / "out" / "coco.json"
    summary = write_coco(records, out, image_root=tmp_path / "images")
    assert (summary.images, summary.annotations, summary.skipped_no_category, summary.skipped) == (3, 4, 2, 2)

    doc = json.loads(out.read_text())
    tax = load_taxonomy()
    assert [c["name"] for c in doc["categories"]] == list(tax.categories)
    assert doc["categories"][0]["id"] == 1
    ann = doc["annotations"][0]
    assert ann["category_id"] == tax.category_index("jeans") + 1
    assert ann["bbox"] == [3, 4, 6, 11] and ann["area"] == 66 and ann["iscrowd"] == 0
    assert isinstance(ann["segmentation"]["counts"], str)
    assert "segmentation" not in doc["annotations"][1]
    assert doc["images"][1] == {"id": 2, "file_name": "nested/b.png", "width": W, "height": H,
                                "fashionlens_group": "g2"}

    back = read_coco(out, tmp_path / "images", source="test")
    assert [r.path for r in back] == [r.path for r in records]
    assert [r.group for r in back] == ["g1", "g2", "g3"]
    assert [(r.width, r.height) for r in back] == [(W, H), (W, H), (5, 6)]
    kept = [records[0].garments[i] for i in (0, 1, 4)] + records[1].garments
    got = back[0].garments + back[1].garments
    assert len(got) == len(kept)
    for want, have in zip(kept, got):
        assert have.categories == want.categories
        assert have.object_type == want.object_type
        assert have.attributes == want.attributes
        if want.mask_rle is None:
            assert have.mask_rle is None
        else:
            np.testing.assert_array_equal(have.mask(), want.mask())
        expected_box = want.bbox_xyxy
        if expected_box is None:
            x, y, w, h = mask_utils.toBbox({"size": want.mask_rle["size"], "counts": want.mask_rle["counts"].encode()})
            expected_box = (x, y, x + w, y + h)
        assert have.bbox_xyxy == pytest.approx(expected_box)


def test_write_default_root_is_json_folder(tmp_path: Path) -> None:
    records = _records(tmp_path)
    out = tmp_path / "coco.json"
    write_coco(records, out)
    assert json.loads(out.read_text())["images"][0]["file_name"] == "images/a.jpg"
    assert read_coco(out)[0].path == records[0].path


def test_write_logs_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fashionlens.io.coco"):
        write_coco(_records(tmp_path), tmp_path / "c.json")
    assert "skipped 2 garments without exactly one taxonomy category" in caplog.text


def test_write_reads_size_from_image_when_unknown(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "x.png"
    Image.new("RGB", (7, 9)).save(path)
    rec = ImageRecord(path=path, source="t", group="x", garments=[GarmentAnnotation(categories=("hats",),
                                                                                       bbox_xyxy=(1, 1, 2, 2))])
    write_coco([rec], tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["images"][0]["width"] == 7


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ImageRecord(path="missing.jpg", source="t", group="x"), "not found"),
        (ImageRecord(path="a.jpg", source="t", group="x", width=W + 1, height=H,
                     garments=[GarmentAnnotation(categories=("hats",), mask_rle=encode_mask(_square(1, 1, 3, 3)))]),
         "mask size"),
    ],
    ids=["no size anywhere", "mask size mismatch"],
)
def test_write_bad_records_raise(tmp_path: Path, record: ImageRecord, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_coco([record], tmp_path / "c.json", image_root=tmp_path)
