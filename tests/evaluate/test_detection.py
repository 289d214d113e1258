"""Detection metrics on hand-made ground truth: perfect, shifted, empty predictions; the Kaggle metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.evaluate.detection import (
    evaluate_detections,
    format_per_class_table,
    kaggle_imaterialist_score,
    records_to_coco,
    torchvision_to_coco_results,
)
from fashionlens.io.records import GarmentAnnotation, ImageRecord, encode_mask

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

S = 200


def _rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((S, S), bool)
    m[y0:y1, x0:x1] = True
    return m


def _garment(object_type: str, box: tuple[int, int, int, int]) -> GarmentAnnotation:
    return GarmentAnnotation(object_type=object_type, bbox_xyxy=box, mask_rle=encode_mask(_rect(*box)))


def _records() -> list[ImageRecord]:
    return [
        ImageRecord(path=Path("a.jpg"), source="t", group="a", width=S, height=S,
                    garments=[_garment("upper-body", (0, 0, 100, 100)), _garment("footwear", (120, 150, 190, 190))]),
        ImageRecord(path=Path("b.jpg"), source="t", group="b", width=S, height=S,
                    garments=[_garment("lower-body", (50, 20, 150, 180)), GarmentAnnotation(bbox_xyxy=(0, 0, 5, 5))]),
    ]


def _perfect(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9,
             "segmentation": a["segmentation"]} for a in gt["annotations"]]


def test_records_to_coco_object_type_space() -> None:
    gt = records_to_coco(_records())
    assert [c["name"] for c in gt["categories"]][:4] == ["upper-body", "lower-body", "full-body", "footwear"]
    assert [a["category_id"] for a in gt["annotations"]] == [1, 4, 2]
    assert gt["annotations"][0]["bbox"] == [0.0, 0.0, 100.0, 100.0] and gt["annotations"][0]["area"] == 10000.0
    assert gt["info"]["skipped"] == {"no_label": 1, "no_geometry": 0}
    with pytest.raises(ValueError, match="label_space"):
        records_to_coco(_records(), label_space="colour")  # type: ignore[arg-type]


def test_perfect_predictions_give_ap_one(tmp_path: Path) -> None:
    gt = records_to_coco(_records())
    res = evaluate_detections(gt, _perfect(gt), pr_curve_png=tmp_path / "pr.png")
    for iou_type in ("bbox", "segm"):
        stats = res[iou_type]["stats"]
        assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
        assert stats["AR100"] == pytest.approx(1.0)
        assert stats["APs"] is None  # no small ground truth
        assert res[iou_type]["per_class_AP"]["upper-body"] == pytest.approx(1.0)
        assert res[iou_type]["per_class_AP"]["bag"] is None
    assert res["kaggle"]["score"] == pytest.approx(1.0) and res["kaggle"]["iou"] == "mask"
    png = Image.open(tmp_path / "pr.png")
    assert png.size[0] > 100
    table = format_per_class_table(res)
    assert "upper-body" in table and "1.000" in table


def test_shifted_box_gives_known_ap() -> None:
    # one 100×100 box shifted by 20 px: IoU = 80/120 = 0.667 → TP at IoU 0.50..0.65 (4 of 10 thresholds)
    rec = [ImageRecord(path=Path("a.jpg"), source="t", group="a", width=S, height=S,
                       garments=[GarmentAnnotation(object_type="upper-body", bbox_xyxy=(0, 0, 100, 100))])]
    gt = records_to_coco(rec)
    pred = [{"image_id": 1, "category_id": 1, "bbox": [20.0, 0.0, 100.0, 100.0], "score": 0.8}]
    res = evaluate_detections(gt, pred)
    stats = res["bbox"]["stats"]
    assert stats["AP"] == pytest.approx(0.4, abs=1e-6)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(0.0)
    assert stats["APl"] == pytest.approx(0.4, abs=1e-6) and stats["APm"] is None
    assert res["segm"] is None and "no segmentation" in res["segm_reason"]
    assert res["kaggle"]["score"] == pytest.approx(0.4) and res["kaggle"]["iou"] == "box"


def test_empty_predictions_give_zero() -> None:
    gt = records_to_coco(_records())
    res = evaluate_detections(gt, [])
    assert res["bbox"]["stats"]["AP"] == 0.0 and res["bbox"]["stats"]["AR100"] == 0.0
    assert res["segm"]["stats"]["AP"] == 0.0
    assert res["kaggle"]["score"] == 0.0


def test_bad_predictions_raise() -> None:
    gt = records_to_coco(_records())
    with pytest.raises(ValueError, match="image_id 9 is not in the ground truth"):
        evaluate_detections(gt, [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    with pytest.raises(ValueError, match="missing \\['score'\\]"):
        evaluate_detections(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])


def test_kaggle_metric_hand_computed() -> None:
    # image 1, class 1: two GT, one prediction with IoU 2/3 to one of them → TP 1, FP 0, FN 1 = 0.5 at
    #   thresholds 0.50..0.65, TP 0, FP 1, FN 2 = 0 above → 4 × 0.5 / 10 = 0.2
    # image 1, class 2: a prediction with no GT → 0;  image 2, class 1: exact → 1.  Mean = 1.2 / 3 = 0.4
    gt = {"annotations": [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100]},
        {"image_id": 1, "category_id": 1, "bbox": [150, 150, 40, 40]},
        {"image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 50]},
    ]}
    preds = [
        {"image_id": 1, "category_id": 1, "bbox": [20, 0, 100, 100], "score": 0.9},
        {"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [100, 100, 50, 50], "score": 0.1},  # below score_thresh
    ]
    res = kaggle_imaterialist_score(gt, preds, score_thresh=0.5)
    assert res["pairs"] == 3 and res["score"] == pytest.approx(0.4)
    # with the low-score false positive counted, image 2 scores 1/2 → (0.2 + 0 + 0.5) / 3
    assert kaggle_imaterialist_score(gt, preds, score_thresh=0.0)["score"] == pytest.approx(0.7 / 3)


def test_torchvision_outputs_convert(tmp_path: Path) -> None:
    masks = torch.zeros(1, 1, S, S)
    masks[0, 0, 0:100, 0:100] = 0.9
    out = [{"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([1]),
            "scores": torch.tensor([0.95]), "masks": masks}]
    results = torchvision_to_coco_results(out, [1])
    assert results[0]["bbox"] == [0.0, 0.0, 100.0, 100.0] and results[0]["category_id"] == 1
    assert isinstance(results[0]["segmentation"]["counts"], str)
    json.dumps(results)
    gt = records_to_coco(_records()[:1])
    res = evaluate_detections(gt, results)
    assert res["segm"]["per_class_AP"]["upper-body"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one image id per output"):
        torchvision_to_coco_results(out, [1, 2])
