"""Detector report: greedy matching and the P/R sweep on hand-made tables with known answers, and
``evaluate_detector`` / ``top_detection_accuracy`` end to end on generated photos with a tiny detector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.detection.detector import DetectSettings, GarmentDetector
from fashionlens.evaluate.detector_report import (
    THRESHOLDS,
    evaluate_detector,
    match,
    precision_recall,
    top_detection_accuracy,
)
from fashionlens.io.records import (
    GarmentAnnotation,
    ImageRecord,
    decode_mask,
    encode_mask,
)
from fashionlens.pipeline import Tagger
from fashionlens.detection.type_fusion import TypeFusion

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch


def _gt(*boxes: tuple[float, float, float, float, int]) -> list[tuple[np.ndarray, int]]:
    """Ground truth ``(x0, y0, x1, y1, class)``."""
    return [(np.array(b[:4], np.float32), b[4]) for b in boxes]


def _p(x0: float, y0: float, x1: float, y1: float, cls: int, score: float, image_id: int = 1) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": cls, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}


# ------------------------------------------------------------------------------ match

MATCH_CASES = [
    ("no ground truth", _gt(), [_p(0, 0, 10, 10, 1, 0.9)], True, []),
    ("no predictions", _gt((0, 0, 10, 10, 1)), [], True, []),
    ("exact box, same class", _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 10, 1, 0.9)], True, [(0, 0)]),
    ("other class", _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 10, 2, 0.9)], True, []),
    ("other class, class-agnostic", _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 10, 2, 0.9)], False, [(0, 0)]),
    ("IoU exactly 0.5 matches", _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 5, 1, 0.9)], True, [(0, 0)]),
    ("IoU below 0.5", _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 4, 1, 0.9)], True, []),
    ("one ground truth, two predictions: the higher score takes it",
     _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 10, 1, 0.5), _p(0, 0, 10, 9, 1, 0.8)], True, [(1, 0)]),
    ("the best IoU among free ground truths",
     _gt((0, 0, 10, 10, 1), (0, 0, 10, 8, 1)), [_p(0, 0, 10, 8, 1, 0.9)], True, [(0, 1)]),
    ("a taken ground truth is not matched twice; the second prediction takes the next best",
     _gt((0, 0, 10, 10, 1), (0, 0, 10, 7, 1)), [_p(0, 0, 10, 10, 1, 0.9), _p(0, 0, 10, 9, 1, 0.8)], True,
     [(0, 0), (1, 1)]),
]


@pytest.mark.parametrize("name, gt, preds, same_class, expected", MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_match(name: str, gt: list, preds: list, same_class: bool, expected: list[tuple[int, int]]) -> None:
    assert match(gt, preds, same_class=same_class) == expected


def test_match_iou_threshold() -> None:
    gt, preds = _gt((0, 0, 10, 10, 1)), [_p(0, 0, 10, 4, 1, 0.9)]  # IoU 0.4
    assert match(gt, preds, iou_thresh=0.4) == [(0, 0)]
    assert match(gt, preds, iou_thresh=0.41) == []


# ------------------------------------------------------------------------------ precision_recall


def _coco(*anns: tuple[int, list[float], int], images: int = 2) -> dict[str, Any]:
    return {"images": [{"id": i + 1, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in range(images)],
            "annotations": [{"id": n + 1, "image_id": im, "bbox": bbox, "category_id": c, "iscrowd": 0,
                             "area": bbox[2] * bbox[3]} for n, (im, bbox, c) in enumerate(anns)],
            "categories": [{"id": c, "name": str(c)} for c in range(1, 7)]}


GT3 = _coco((1, [0, 0, 10, 10], 1), (1, [20, 20, 10, 10], 2), (2, [0, 0, 10, 10], 1))
PREDS = [_p(0, 0, 10, 10, 1, 0.9, 1),  # TP
         _p(50, 50, 60, 60, 2, 0.3, 1),  # FP (nothing there)
         _p(0, 0, 10, 10, 1, 0.6, 2),  # TP
         _p(0, 0, 10, 10, 1, 0.4, 3)]  # FP: an image without ground truth


@pytest.mark.parametrize("gt, preds, thresholds, expected", [
    # (score_thresh, precision, recall, f1)
    (GT3, PREDS, (0.2, 0.35, 0.5, 0.95),
     [(0.2, 0.5, 0.6667, 0.5714), (0.35, 0.6667, 0.6667, 0.6667), (0.5, 1.0, 0.6667, 0.8), (0.95, 0.0, 0.0, 0.0)]),
    (GT3, [], (0.2,), [(0.2, 0.0, 0.0, 0.0)]),
    (_coco(), PREDS[:1], (0.2,), [(0.2, 0.0, 0.0, 0.0)]),  # no ground truth at all
    (GT3, [_p(0, 0, 10, 10, 2, 0.9, 1)], (0.2,), [(0.2, 0.0, 0.0, 0.0)]),  # right box, wrong type
])
def test_precision_recall(gt: dict[str, Any], preds: list[dict[str, Any]], thresholds: tuple[float, ...],
                          expected: list[tuple[float, float, float, float]]) -> None:
    rows = precision_recall(gt, preds, thresholds)
    assert [(r["score_thresh"], r["precision"], r["recall"], r["f1"]) for r in rows] == expected


def test_precision_recall_default_sweep() -> None:
    rows = precision_recall(GT3, PREDS)
    assert [r["score_thresh"] for r in rows] == list(THRESHOLDS)
    assert all(set(r) == {"score_thresh", "precision", "recall", "f1"} for r in rows)


# ------------------------------------------------------------------------------ end to end


def _photos(d: Path, n: int = 3, object_type: str | None = None) -> list[ImageRecord]:
    """``n`` 96×128 photos, each with a red rectangle labelled t-shirts (or ``object_type``)."""
    records = []
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(100, 140, (96, 128, 3), dtype=np.uint8)
        m = np.zeros((96, 128), bool)
        m[20 + i: 70, 30: 90 - i] = True
        arr[m] = (200, 30, 30)
        path = d / f"p{i}.png"
        Image.fromarray(arr).save(path)
        g = (GarmentAnnotation(object_type=object_type, bbox_xyxy=(30, 20 + i, 90 - i, 70)) if object_type else
             GarmentAnnotation(categories=("t-shirts",), bbox_xyxy=(30, 20 + i, 90 - i, 70), mask_rle=encode_mask(m)))
        records.append(ImageRecord(path=path, source="test", group=path.name, width=128, height=96, garments=[g]))
    return records


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(backend="onnx", threads=1)


def test_evaluate_detector_writes_the_report(upper_body_detector_weights: Path, tagger: Tagger, tmp_path: Path) -> None:
    detector = GarmentDetector(upper_body_detector_weights, settings=DetectSettings(score_thresh=0.5))
    records = _photos(tmp_path)
    out = tmp_path / "report"
    saved = (detector.model.score_thresh, detector.model.detections_per_img)

    result = evaluate_detector(detector, records, out_dir=out, rule_sets=[(), ("duplicates", "sparse_mask")],
                               tagger=tagger, progress=False)

    assert {p.name for p in out.iterdir()} == {"detector_eval.json", "predictions.coco.json", "pr_curve.png"}
    assert json.loads((out / "detector_eval.json").read_text()) == json.loads(json.dumps(result))
    assert result["images"] == 3 and result["annotations"] == 3 and result["score_thresh"] == 0.5
    assert set(result["rule_sets"]) == {"none", "duplicates+sparse_mask"}
    for rs in result["rule_sets"].values():
        assert set(rs) == {"bbox", "segm", "bbox_garments4", "segm_garments4", "per_class_AP", "kaggle", "pr_sweep"}
        assert {"AP", "AP50"} <= set(rs["bbox"]) and {"AP", "AP50"} <= set(rs["segm"])
        assert [r["score_thresh"] for r in rs["pr_sweep"]] == list(THRESHOLDS)
    preds = json.loads((out / "predictions.coco.json").read_text())
    assert preds and {p["image_id"] for p in preds} <= {1, 2, 3}
    assert {p["category_id"] for p in preds} == {1}  # upper-body
    assert all(set(p) == {"image_id", "category_id", "bbox", "score", "segmentation"} for p in preds)
    e2e = result["end_to_end"]
    assert set(e2e) == {"gt", "matched", "type_correct", "category_correct", "category_labelled", "found",
                        "type_accuracy", "category_accuracy"}
    assert e2e["gt"] == 3 and 0 <= e2e["matched"] <= 3 and e2e["type_correct"] == e2e["matched"]
    assert e2e["category_labelled"] == e2e["matched"]
    # the detector's run-time settings are restored
    assert (detector.model.score_thresh, detector.model.detections_per_img) == saved


def test_evaluate_detector_without_tagger_and_without_detections(upper_body_detector_weights: Path,
                                                                  tmp_path: Path) -> None:
    detector = GarmentDetector(upper_body_detector_weights)
    detector.model.head.classification_head.cls_logits.bias.data.fill_(-20.0)  # nothing scores ≥ 0.05
    result = evaluate_detector(detector, _photos(tmp_path, 2), out_dir=tmp_path / "r", progress=False)
    assert "end_to_end" not in result and set(result["rule_sets"]) == {"none"}
    assert result["rule_sets"]["none"]["bbox"]["AP"] == 0.0
    assert json.loads((tmp_path / "r" / "predictions.coco.json").read_text()) == []


def test_top_detection_accuracy(upper_body_detector_weights: Path, tmp_path: Path) -> None:
    detector = GarmentDetector(upper_body_detector_weights)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    upper = _photos(tmp_path / "a", 2, "upper-body")
    shoes = [ImageRecord(path=r.path, source="shoes", group=r.group, garments=[GarmentAnnotation(object_type="footwear")])
             for r in _photos(tmp_path / "b", 1)]
    two = ImageRecord(path=upper[0].path, source="test", group="two",
                      garments=[GarmentAnnotation(object_type="bag"), GarmentAnnotation(object_type="footwear")])
    result = top_detection_accuracy(detector, [*upper, *shoes, two], progress=False)
    assert result["photos"] == 3 and result["correct"] == 2 and result["skipped"] == 1
    assert result["accuracy"] == pytest.approx(0.6667)
    assert result["per_source_accuracy"] == {"test": 1.0, "shoes": 0.0}
    assert result["no_detection"] == 0


def test_perfect_detections_score_perfectly(random_detector_weights: Path, tagger: Tagger, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The network replaced by one that returns each photo's ground truth: AP 1, everything found."""
    records = _photos(tmp_path)
    outputs = iter([{"boxes": torch.tensor([r.garments[0].bbox_xyxy], dtype=torch.float32),
                     "labels": torch.tensor([1]), "scores": torch.tensor([0.9]),
                     "masks": torch.from_numpy(decode_mask(r.garments[0].mask_rle)).float()[None, None]}
                    for r in records])
    detector = GarmentDetector(random_detector_weights)
    monkeypatch.setattr(detector, "run", lambda rgb, limits: next(outputs))

    result = evaluate_detector(detector, records, out_dir=tmp_path / "r", tagger=tagger, progress=False)

    none = result["rule_sets"]["none"]
    assert none["bbox"]["AP"] == pytest.approx(1.0) and none["segm"]["AP"] == pytest.approx(1.0)
    assert none["pr_sweep"][0] == {"score_thresh": 0.2, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    e2e = result["end_to_end"]
    assert (e2e["gt"], e2e["matched"], e2e["type_correct"], e2e["category_labelled"]) == (3, 3, 3, 3)
    assert e2e["found"] == 1.0 and e2e["type_accuracy"] == 1.0
    assert 0 <= e2e["category_correct"] <= 3


def test_top_detection_accuracy_with_fused_types(upper_body_detector_weights: Path, tagger: Tagger, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny detector says upper-body; a classifier sure of footwear turns the shoe photo right."""
    detector = GarmentDetector(upper_body_detector_weights)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shoes = [ImageRecord(path=r.path, source="shoes", group=r.group, garments=[GarmentAnnotation(object_type="footwear")])
             for r in _photos(tmp_path / "b", 1)]
    records = [*_photos(tmp_path / "a", 2, "upper-body"), *shoes]
    cats = tagger.meta.head("category").values
    sure = np.zeros(len(cats), np.float32)
    sure[cats.index("boots")] = 0.85
    sure[cats.index("hoodies")] = 0.15
    monkeypatch.setattr(tagger.backend, "run", lambda b: {h.name: np.tile(sure if h.name == "category" else
                                                                        np.full(h.num_outputs, 0.1, np.float32),
                                                                        (len(b), 1)) for h in tagger.meta.heads})
    monkeypatch.setattr(tagger, "type_fusion", TypeFusion(large_threshold=0.9))
    fused = top_detection_accuracy(detector, records, tagger=tagger, progress=False)
    assert fused["correct"] == 1 and fused["per_source_accuracy"] == {"test": 0.0, "shoes": 1.0}
    assert fused["object_types"].startswith("detector, overridden by the classifier (TypeFusion(")
    monkeypatch.setattr(tagger, "type_fusion", None)
    plain = top_detection_accuracy(detector, records, tagger=tagger, progress=False)
    assert plain["correct"] == 2 and plain["object_types"] == "detector"


def test_fused_object_types_crop_the_decoded_pixels(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are in the decoded image's pixels, which may be a reduced decode (scale 0.5 here)."""
    from fashionlens.evaluate.detector_report import fused_object_types
    from fashionlens.result import Garments
    from fashionlens.imageio import DecodedImage

    rgb = np.zeros((60, 80, 3), np.uint8)
    image = DecodedImage(rgb=rgb, width=160, height=120, scale=0.5, format="JPEG", mode="RGB")
    seen: list[tuple[int, ...]] = []
    cats = tagger.meta.head("category").values

    def predict(crops):
        seen.extend(c.shape for c in crops)
        return {"category": np.tile(np.eye(len(cats))[cats.index("jeans")], (len(crops), 1))}

    monkeypatch.setattr(tagger, "predict", predict)
    g = Garments(xyxy=[[40, 20, 80, 60]], object_type=["upper-body"], confidence=[0.9])  # bottom-right half
    fused = fused_object_types(tagger, image, g)
    assert fused.object_type == ["lower-body"]
    assert seen == [(44, 44, 3)]  # the 40 × 40 box + 10 % margin, clipped at the bottom-right border
