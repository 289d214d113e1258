from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from fashionlens.io.deepfashion2 import DEEPFASHION2_CATEGORIES, read_deepfashion2
from fashionlens.taxonomy import available_mappings

W, H = 64, 48


def _anno() -> dict:
    return {
        "source": "user",
        "pair_id": 3,
        "item2": {
            "category_id": 8, "category_name": "trousers", "bounding_box": [10, 20, 30, 47],
            "segmentation": [[10, 20, 30, 20, 30, 47, 10, 47]], "landmarks": [12, 21, 2, 28, 21, 1],
            "style": 0, "occlusion": 2, "zoom_in": 1, "viewpoint": 2, "scale": 3,
        },
        "item1": {
            "category_id": 1, "category_name": "short sleeve top", "bounding_box": [5, 2, 40, 19],
            "segmentation": [[5, 2, 40, 2, 40, 19, 5, 19], [0, 0, 1, 1]], "landmarks": [],
            "style": 1, "occlusion": 1, "zoom_in": 1, "viewpoint": 2, "scale": 2,
        },
    }


def _dataset(tmp_path: Path, anno: dict | str, image: bool = True) -> tuple[Path, Path]:
    annos, images = tmp_path / "annos", tmp_path / "image"
    annos.mkdir(exist_ok=True)
    images.mkdir(exist_ok=True)
    (annos / "000001.json").write_text(anno if isinstance(anno, str) else json.dumps(anno))
    if image:
        Image.new("RGB", (W, H)).save(images / "000001.jpg")
    return annos, images


def test_read_without_mapping(tmp_path: Path) -> None:
    (rec,) = read_deepfashion2(*_dataset(tmp_path, _anno()), mapping=None)
    assert rec.path == tmp_path / "image" / "000001.jpg"
    assert (rec.width, rec.height, rec.group, rec.source) == (W, H, "pair-3", "deepfashion2")
    assert rec.meta["source_type"] == "user" and rec.meta["pair_id"] == 3
    top, trousers = rec.garments  # item1 before item2
    assert top.source_label == "short sleeve top" and top.object_type is None  # unmapped: kept
    assert top.bbox_xyxy == (5.0, 2.0, 40.0, 19.0)
    assert top.mask().sum() == 35 * 17  # the 2-point polygon is ignored
    assert trousers.mask().shape == (H, W)
    items = rec.meta["items"]
    assert [i["item"] for i in items] == ["item1", "item2"]
    assert items[1] == {"item": "item2", "landmarks": [12.0, 21.0, 2.0, 28.0, 21.0, 1.0], "style": 0,
                        "occlusion": 2, "zoom_in": 1, "viewpoint": 2, "scale": 3}


@pytest.mark.skipif("deepfashion2" not in available_mappings(), reason="deepfashion2 mapping not written yet")
def test_read_with_default_mapping(tmp_path: Path) -> None:
    (rec,) = read_deepfashion2(*_dataset(tmp_path, _anno()))
    top, trousers = rec.garments
    assert top.object_type == "upper-body" and "t-shirts" in top.categories
    assert top.attributes == {"sleeve": "short"}
    assert set(trousers.categories) == {"jeans", "trousers"}


def test_every_category_name_resolves_in_mapping() -> None:
    if "deepfashion2" not in available_mappings():
        pytest.skip("deepfashion2 mapping not written yet")
    from fashionlens.taxonomy import load_mapping

    mapping = load_mapping("deepfashion2")
    for name in DEEPFASHION2_CATEGORIES.values():
        mapping.resolve(name)


def _mut(key: str, field: str | None, value: object):
    def apply(doc: dict) -> dict:
        doc = copy.deepcopy(doc)
        target = doc if field is None else doc[key]
        name = key if field is None else field
        if value is KeyError:
            del target[name]
        else:
            target[name] = value
        return doc

    return apply


BAD = [
    ("no pair_id", _mut("pair_id", None, KeyError), r"lacks \['pair_id'\]"),
    ("str pair_id", _mut("pair_id", None, "3"), "pair_id must be an integer"),
    ("source not str", _mut("source", None, 1), "source must be 'user' or 'shop'"),
    ("item not object", _mut("item1", None, [1, 2]), "item1 must be an object"),
    ("category 14", _mut("item1", "category_id", 14), "category_id must be 1..13, got 14"),
    ("name mismatch", _mut("item1", "category_name", "trousers"), "does not match category_id 1"),
    ("no bbox", _mut("item1", "bounding_box", KeyError), "item1 lacks 'bounding_box'"),
    ("bbox of 2", _mut("item1", "bounding_box", [1, 2]), r"bounding_box must be \[x1, y1, x2, y2\]"),
    ("inverted bbox", _mut("item1", "bounding_box", [10, 2, 5, 19]), "x2 >= x1"),
    ("str in bbox", _mut("item1", "bounding_box", [1, 2, "3", 4]), "bounding_box value must be a number"),
    ("odd polygon", _mut("item1", "segmentation", [[1, 2, 3, 4, 5, 6, 7]]), "odd number of coordinates"),
    ("segmentation dict", _mut("item1", "segmentation", {"counts": "x"}), "polygons must be a list"),
    ("landmarks not triples", _mut("item1", "landmarks", [1, 2, 3, 4]), "x, y, visibility triples"),
    ("str style", _mut("item1", "style", "a"), "style must be an integer"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_annotation_raises(tmp_path: Path, case: str, mutate, message: str) -> None:
    with pytest.raises(ValueError, match=rf"000001\.json.*{message}"):
        read_deepfashion2(*_dataset(tmp_path, mutate(_anno())), mapping=None)


def test_not_json_and_not_object(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        read_deepfashion2(*_dataset(tmp_path, "{"), mapping=None)
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_deepfashion2(*_dataset(tmp_path, "[]"), mapping=None)


def test_missing_image_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"000001\.json: image file .*000001\.jpg not found"):
        read_deepfashion2(*_dataset(tmp_path, _anno(), image=False), mapping=None)


def test_missing_dirs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="annos_dir .* is not a directory"):
        read_deepfashion2(tmp_path / "a", tmp_path, mapping=None)
    with pytest.raises(ValueError, match="image_dir .* is not a directory"):
        read_deepfashion2(tmp_path, tmp_path / "b", mapping=None)
