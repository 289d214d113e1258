"""Mirror test-time augmentation: flipping detections back, NMS and weighted-box-fusion merges,
and the detector setting that runs both views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fashionlens.detect import DetectSettings, GarmentDetector
from fashionlens.detect_tta import merge_nms, merge_views, merge_wbf, unmirror

pytestmark = pytest.mark.usefixtures("one_thread")


def _dets(boxes: list[list[float]], scores: list[float], labels: list[int], size: tuple[int, int] = (20, 30),
          masks: bool = True) -> dict[str, torch.Tensor]:
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
           "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}
    if masks:
        m = torch.zeros((len(boxes), 1, *size))
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            m[i, 0, int(y0):int(y1), int(x0):int(x1)] = scores[i]
        out["masks"] = m
    return out


def test_unmirror_flips_boxes_and_masks() -> None:
    det = _dets([[2, 3, 10, 8]], [0.9], [1])
    back = unmirror(det, 30)
    assert back["boxes"].tolist() == [[20, 3, 28, 8]]
    assert torch.equal(back["masks"], det["masks"].flip(-1))
    assert torch.equal(back["scores"], det["scores"]) and torch.equal(back["labels"], det["labels"])
    twice = unmirror(back, 30)
    assert torch.equal(twice["boxes"], det["boxes"]) and torch.equal(twice["masks"], det["masks"])


def test_merge_nms_keeps_best_of_same_type_overlaps() -> None:
    a = _dets([[0, 0, 10, 10], [12, 0, 20, 10]], [0.9, 0.5], [1, 2])
    b = _dets([[1, 0, 10, 10], [0, 0, 10, 10]], [0.95, 0.8], [1, 3])  # same type overlapping; other type kept
    out = merge_nms([a, b], iou_thresh=0.5, max_detections=10)
    assert out["scores"].tolist() == pytest.approx([0.95, 0.8, 0.5])
    assert out["labels"].tolist() == [1, 3, 2]
    assert out["masks"].shape == (3, 1, 20, 30)
    assert len(merge_nms([a, b], iou_thresh=0.5, max_detections=2)["boxes"]) == 2


def test_merge_wbf_averages_boxes_scores_and_masks() -> None:
    a = _dets([[0, 0, 10, 10]], [0.8], [1])
    b = _dets([[2, 0, 12, 10], [20, 10, 28, 18]], [0.4, 0.6], [1, 1])
    out = merge_wbf([a, b], iou_thresh=0.55, max_detections=10)
    # cluster 1: both views, weighted box (0.8·0 + 0.4·2) / 1.2; score (0.8 + 0.4) / 2
    assert out["labels"].tolist() == [1, 1]
    assert out["scores"].tolist() == pytest.approx([0.6, 0.3])  # the lone box is halved: one view of two
    assert out["boxes"][0].tolist() == pytest.approx([0.8 / 1.2, 0, 10 + 0.8 / 1.2, 10])
    assert out["boxes"][1].tolist() == pytest.approx([20, 10, 28, 18])
    expected = (a["masks"][0] * 0.8 + b["masks"][0] * 0.4) / 1.2
    assert torch.allclose(out["masks"][0], expected)


def test_merge_wbf_never_fuses_different_types_or_distant_boxes() -> None:
    a = _dets([[0, 0, 10, 10]], [0.9], [1])
    b = _dets([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.9], [2, 1])  # IoU of [0,10] and [5,15] = 1/3
    out = merge_wbf([a, b], iou_thresh=0.55, max_detections=10)
    assert sorted(out["labels"].tolist()) == [1, 1, 2]
    assert out["scores"].tolist() == pytest.approx([0.45] * 3)


def test_merge_wbf_empty_and_without_masks() -> None:
    empty = _dets([], [], [])
    out = merge_wbf([empty, empty], iou_thresh=0.55, max_detections=5)
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["masks"].shape == (0, 1, 20, 30)
    plain = _dets([[0, 0, 4, 4]], [0.5], [2], masks=False)
    out = merge_wbf([plain, plain], iou_thresh=0.55, max_detections=5)
    assert "masks" not in out and out["scores"].tolist() == pytest.approx([0.5])


def test_merge_views_rejects_unknown_merge() -> None:
    with pytest.raises(ValueError, match="merge: expected one of"):
        merge_views([_dets([], [], [])], "mean", iou_thresh=0.5, max_detections=5)


def test_settings_reject_unknown_tta() -> None:
    with pytest.raises(ValueError, match="mirror_tta: expected one of"):
        DetectSettings(mirror_tta="flip")


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_detector_with_mirror_tta(merge: str, upper_body_detector_weights: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    plain = GarmentDetector(upper_body_detector_weights, settings=DetectSettings(max_detections=6)).detect_rgb(rgb)
    tta = GarmentDetector(upper_body_detector_weights,
                          settings=DetectSettings(max_detections=6, mirror_tta=merge)).detect_rgb(rgb)
    assert 1 <= len(tta) <= 6 and set(tta.object_type) == {"upper-body"}
    assert tta.mask is not None and tta.mask.shape == (len(tta), 60, 90)
    assert (tta.xyxy[:, [0, 2]] >= 0).all() and (tta.xyxy[:, [0, 2]] <= 90).all()
    assert len(plain) >= 1
