"""DetectionDataset on generated records with known boxes and masks: resize, flip, selection rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.io.records import GarmentAnnotation, ImageRecord, encode_mask
from fashionlens.train.detection_data import DetectionDataset, collate_detection

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

W, H = 80, 60  # image width × height


def _record(tmp_path: Path, name: str = "a.png") -> ImageRecord:
    """An 80×60 image with a red upper-body rectangle and a blue footwear rectangle (masks = rectangles)."""
    arr = np.full((H, W, 3), 255, np.uint8)
    m1 = np.zeros((H, W), bool)
    m1[10:30, 8:40] = True  # box (8, 10, 40, 30)
    m2 = np.zeros((H, W), bool)
    m2[40:56, 50:76] = True  # box (50, 40, 76, 56)
    arr[m1] = (255, 0, 0)
    arr[m2] = (0, 0, 255)
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return ImageRecord(path=path, source="test", group=name, width=W, height=H, garments=[
        GarmentAnnotation(categories=("t-shirts",), bbox_xyxy=(8, 10, 40, 30), mask_rle=encode_mask(m1)),
        GarmentAnnotation(object_type="footwear", bbox_xyxy=(50, 40, 76, 56), mask_rle=encode_mask(m2)),
    ])


def test_resize_scales_boxes_and_masks(tmp_path: Path) -> None:
    ds = DetectionDataset([_record(tmp_path)], size=40)  # sx = 0.5, sy = 2/3
    image, t = ds[0]
    assert image.shape == (3, 40, 40) and image.dtype == torch.float32 and float(image.max()) <= 1.0
    torch.testing.assert_close(t["boxes"], torch.tensor([[4.0, 10 * 2 / 3, 20.0, 20.0], [25.0, 40 * 2 / 3, 38.0, 56 * 2 / 3]]))
    assert t["labels"].tolist() == [1, 4]  # upper-body = 0 + 1, footwear = 3 + 1
    assert t["masks"].shape == (2, 40, 40) and t["masks"].dtype == torch.uint8
    for mask, box in zip(t["masks"], t["boxes"]):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert abs(int(xs.min()) - float(box[0])) <= 1 and abs(int(xs.max()) + 1 - float(box[2])) <= 1
        assert abs(int(ys.min()) - float(box[1])) <= 1 and abs(int(ys.max()) + 1 - float(box[3])) <= 1
    # red pixels of the image sit inside the first mask
    red = (image[0] > 0.9) & (image[1] < 0.1)
    assert bool((t["masks"][0].bool() | ~red).all())


def test_keep_aspect_pads_right_and_bottom(tmp_path: Path) -> None:
    ds = DetectionDataset([_record(tmp_path)], size=40, keep_aspect=True)  # scale 0.5 → 40×30, padded to 40×40
    image, t = ds[0]
    torch.testing.assert_close(t["boxes"][0], torch.tensor([4.0, 5.0, 20.0, 15.0]))
    assert float(image[:, 30:, :].abs().sum()) == 0.0


def test_flip_moves_boxes_and_masks_together(tmp_path: Path) -> None:
    rec = _record(tmp_path)
    plain = DetectionDataset([rec], size=40)[0]
    flipped = DetectionDataset([rec], size=40, hflip_prob=1.0)[0]
    b, f = plain[1]["boxes"], flipped[1]["boxes"]
    torch.testing.assert_close(f[:, 0], 40 - b[:, 2])
    torch.testing.assert_close(f[:, 2], 40 - b[:, 0])
    torch.testing.assert_close(f[:, [1, 3]], b[:, [1, 3]])
    assert torch.equal(flipped[1]["masks"], plain[1]["masks"].flip(-1))
    assert torch.equal(flipped[0], plain[0].flip(-1))
    assert flipped[1]["labels"].tolist() == plain[1]["labels"].tolist()


def test_selection_rules(tmp_path: Path) -> None:
    rec = _record(tmp_path)
    Image.new("RGB", (W, H), "white").save(tmp_path / "neg.png")
    negative = ImageRecord(path=tmp_path / "neg.png", source="test", group="neg", width=W, height=H)
    no_geometry = ImageRecord(path=tmp_path / "neg.png", source="test", group="ng",
                              garments=[GarmentAnnotation(categories=("jeans",))])
    box_only = ImageRecord(path=rec.path, source="test", group="box", garments=[
        GarmentAnnotation(object_type="bag", bbox_xyxy=(8, 10, 40, 30)),
        GarmentAnnotation(bbox_xyxy=(0, 0, 5, 5)),  # no object type: ignored
    ])
    ds = DetectionDataset([rec, negative, no_geometry, box_only], size=40)
    assert len(ds) == 3 and dict(ds.skipped) == {"no_geometry": 1}
    _, t_neg = ds[1]
    assert t_neg["boxes"].shape == (0, 4) and t_neg["labels"].shape == (0,) and t_neg["masks"].shape == (0, 40, 40)
    _, t_box = ds[2]
    assert t_box["labels"].tolist() == [5] and t_box["mask_from_box"].tolist() == [True]
    assert int(t_box["masks"].sum()) == 16 * 13  # the filled box (20 rows → 13 after nearest resize)

    strict = DetectionDataset([rec, negative, no_geometry], size=40, keep_negatives=False, with_masks=False)
    assert len(strict) == 1 and dict(strict.skipped) == {"no_geometry": 1, "negative": 1}
    images, targets = collate_detection([strict[0]])
    assert len(images) == 1 and "masks" not in targets[0]


def test_size_mismatch_raises(tmp_path: Path) -> None:
    rec = _record(tmp_path)
    rec.width = 100
    with pytest.raises(ValueError, match="record says 100x60"):
        DetectionDataset([rec], size=40)[0]
    with pytest.raises(ValueError, match="hflip_prob"):
        DetectionDataset([], hflip_prob=2.0)
