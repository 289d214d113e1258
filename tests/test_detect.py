"""GarmentDetector on tiny saved detectors (tests/conftest.py): settings, thresholds, rules, and
boxes/masks in full-resolution pixels for photos decoded at a reduced scale."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from fashionlens.models.fcos_seg import DetectionLimits
from fashionlens.detection.detector import DetectSettings, GarmentDetector
from fashionlens.result import Garments
from fashionlens.imageio import DecodedImage
from fashionlens.taxonomy import load_taxonomy

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # tiny PyTorch detectors, torch outputs


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _decoded(rgb: np.ndarray, width: int, height: int) -> DecodedImage:
    return DecodedImage(rgb=rgb, width=width, height=height, scale=rgb.shape[1] / width, format="JPEG", mode="RGB")


# ------------------------------------------------------------------------------ DetectSettings


@pytest.mark.parametrize("kwargs, message", [
    ({}, None),
    ({"score_thresh": 0.0, "nms_thresh": 1.0, "rules": ("duplicates", "sparse_mask"), "max_detections": 1}, None),
    ({"score_thresh": -0.1}, "score_thresh: expected a number in \\[0, 1\\], got -0.1"),
    ({"score_thresh": 1.5}, "score_thresh"),
    ({"nms_thresh": 2}, "nms_thresh"),
    ({"rules": ("duplicates", "nope")}, "unknown post-processing rule\\(s\\) \\['nope'\\]"),
    ({"max_detections": 0}, "max_detections: expected >= 1, got 0"),
])
def test_detect_settings(kwargs: dict[str, Any], message: str | None) -> None:
    if message is None:
        settings = DetectSettings(**kwargs)
        assert all(getattr(settings, k) == v for k, v in kwargs.items())
        return
    with pytest.raises(ValueError, match=message):
        DetectSettings(**kwargs)


# ------------------------------------------------------------------------------ loading


def test_thresholds_from_settings_metadata_or_fallback(save_detector_weights: Callable[..., Path],
                                                       tmp_path: Path) -> None:
    plain = save_detector_weights(tmp_path / "plain.pt")
    tuned = save_detector_weights(tmp_path / "tuned.pt", defaults={"score_thresh": 0.4, "nms_thresh": 0.5})

    d = GarmentDetector(plain)
    assert (d.score_thresh, d.nms_thresh) == (0.3, 0.6)  # fallbacks
    assert d.limits() == DetectionLimits(0.3, 0.6, 20)  # no rules: the network applies the threshold itself
    assert d.limits(DetectSettings(rules=("duplicates",))).score_thresh == 0.05  # per call, rules see candidates
    assert d.class_names == ["__background__", *load_taxonomy().object_types]
    assert d.model_info["name"] == "tiny-detector" and d.model_info["version"] == "test"
    assert d.path == plain and not d.model.training

    d = GarmentDetector(tuned)
    assert (d.score_thresh, d.nms_thresh) == (0.4, 0.5)
    d = GarmentDetector(str(tuned), settings=DetectSettings(score_thresh=0.02, nms_thresh=0.7, max_detections=5))
    assert (d.score_thresh, d.nms_thresh) == (0.02, 0.7)
    assert d.limits() == DetectionLimits(0.02, 0.7, 5)
    assert d.thresholds(DetectSettings()) == (0.4, 0.5)  # another call's settings, the weights' defaults


def test_per_call_settings_leave_the_network_alone(save_detector_weights: Callable[..., Path],
                                                   tmp_path: Path) -> None:
    """One detector serves every threshold: a call's settings never change the network."""
    d = GarmentDetector(save_detector_weights(tmp_path / "u.pt", "upper-body"), backend="torch")
    before = (d.model.score_thresh, d.model.nms_thresh, d.model.detections_per_img)
    rgb = np.full((96, 128, 3), 200, np.uint8)
    many = d.detect_rgb(rgb, DetectSettings(score_thresh=0.0, max_detections=7))
    none = d.detect_rgb(rgb, DetectSettings(score_thresh=1.0))
    assert len(many) == 7 and len(none) == 0
    assert len(d.detect_rgb(rgb)) == len(d.detect_rgb(rgb, d.settings))
    assert (d.model.score_thresh, d.model.nms_thresh, d.model.detections_per_img) == before


def test_not_detector_weights(tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="detector-weights"):
        GarmentDetector(path)


def test_unknown_backend(random_detector_weights: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        GarmentDetector(random_detector_weights, backend="tensorrt")


# ------------------------------------------------------------------------------ detect_rgb


@pytest.mark.parametrize("rgb", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32)], ids=["grey", "rgba", "float"])
def test_detect_rgb_rejects_other_arrays(rgb: np.ndarray, random_detector_weights: Path) -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        GarmentDetector(random_detector_weights).detect_rgb(rgb)


def test_detect_rgb_forced_detections(upper_body_detector_weights: Path) -> None:
    g = GarmentDetector(upper_body_detector_weights, settings=DetectSettings(max_detections=6)).detect_rgb(_rgb(60, 90))
    assert 1 <= len(g) <= 6
    assert set(g.object_type) == {"upper-body"}
    assert (g.confidence >= 0.99).all()
    assert g.mask is not None and g.mask.shape == (len(g), 60, 90) and g.mask.dtype == bool
    assert (g.xyxy[:, [0, 2]] >= 0).all() and (g.xyxy[:, [0, 2]] <= 90).all()
    assert (g.xyxy[:, [1, 3]] >= 0).all() and (g.xyxy[:, [1, 3]] <= 60).all()
    for m, (x0, y0, x1, y1) in zip(g.mask, g.xyxy):  # the semantic map is upper-body everywhere
        ys, xs = np.nonzero(m)
        assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1


def test_score_thresh_one_finds_nothing(upper_body_detector_weights: Path) -> None:
    g = GarmentDetector(upper_body_detector_weights, settings=DetectSettings(score_thresh=1.0)).detect_rgb(_rgb(40, 40))
    assert len(g) == 0 and g.mask is not None and g.mask.shape == (0, 40, 40)


def test_untrained_detector_never_reports_background(random_detector_weights: Path) -> None:
    d = GarmentDetector(random_detector_weights, settings=DetectSettings(score_thresh=0.0, max_detections=200))
    d.model.topk_candidates = 1000
    for seed in range(3):
        g = d.detect_rgb(_rgb(64, 64, seed))
        assert len(g) > 0 and "__background__" not in g.object_type


# ------------------------------------------------------------------------------ to_garments: rules, thresholds


def _raw(*items: tuple[int, float, list[float]], size: tuple[int, int] = (100, 100), prob: float = 0.9
         ) -> dict[str, torch.Tensor]:
    """A network output: ``(label, score, xyxy)`` per detection; each mask = ``prob`` inside its box."""
    masks = torch.zeros((len(items), 1, *size))
    for i, (_, _, (x0, y0, x1, y1)) in enumerate(items):
        masks[i, 0, int(y0):int(y1), int(x0):int(x1)] = prob
    return {"boxes": torch.tensor([b for _, _, b in items], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([c for c, _, _ in items], dtype=torch.int64),
            "scores": torch.tensor([s for _, s, _ in items], dtype=torch.float32), "masks": masks}


LOWER, FOOTWEAR, UPPER, FULL = 2, 4, 1, 3  # detector labels = object type index + 1


@pytest.mark.parametrize("settings, expected", [
    (DetectSettings(score_thresh=0.3), ["footwear", "upper-body"]),
    (DetectSettings(score_thresh=0.1), ["lower-body", "footwear", "upper-body", "full-body"]),
    (DetectSettings(score_thresh=0.5), ["upper-body"]),
    (DetectSettings(score_thresh=0.1, rules=("duplicates",)), ["lower-body", "footwear", "upper-body"]),
    # the hand above the middle of the lower-body candidate is dropped although that candidate
    # scores below the threshold: the rules see every candidate, the threshold applies afterwards
    (DetectSettings(score_thresh=0.3, rules=("hand_footwear",)), ["upper-body"]),
])
def test_to_garments_rules_then_threshold(settings: DetectSettings, expected: list[str],
                                          random_detector_weights: Path) -> None:
    d = GarmentDetector(random_detector_weights, settings=settings)
    raw = _raw((LOWER, 0.2, [20, 40, 80, 100]), (FOOTWEAR, 0.4, [0, 0, 10, 10]), (UPPER, 0.8, [20, 0, 80, 40]),
               (FULL, 0.15, [20, 0, 80, 42]))  # full-body duplicates upper-body (IoU 0.95)
    assert d.to_garments(raw, (100, 100)).object_type == expected


@pytest.mark.parametrize("mask_thresh, filled", [(0.5, False), (0.3, True)])
def test_mask_thresh(mask_thresh: float, filled: bool, random_detector_weights: Path) -> None:
    d = GarmentDetector(random_detector_weights, settings=DetectSettings(score_thresh=0.1, mask_thresh=mask_thresh))
    g = d.to_garments(_raw((UPPER, 0.9, [10, 10, 20, 20]), prob=0.4), (100, 100))
    assert g.mask is not None and bool(g.mask[0, 15, 15]) is filled and int(g.mask.sum()) == (100 if filled else 0)


def test_to_garments_without_masks(random_detector_weights: Path) -> None:
    raw = _raw((UPPER, 0.9, [10, 10, 20, 20]))
    del raw["masks"]
    g = GarmentDetector(random_detector_weights).to_garments(raw, (100, 100))
    assert len(g) == 1 and g.mask is None


# ------------------------------------------------------------------------------ detect: full-resolution pixels


@pytest.mark.parametrize("full, small", [((120, 160), (60, 80)), ((200, 100), (25, 13))],
                         ids=["half", "eighth, rounded"])
def test_detect_returns_full_resolution_boxes_and_masks(full: tuple[int, int], small: tuple[int, int],
                                                        upper_body_detector_weights: Path) -> None:
    d = GarmentDetector(upper_body_detector_weights)
    rgb = _rgb(*small)
    image = _decoded(rgb, width=full[1], height=full[0])
    assert image.scale < 1
    reduced = d.detect_rgb(rgb)
    g = d.detect(image)
    assert len(g) == len(reduced) > 0
    np.testing.assert_allclose(g.xyxy, reduced.xyxy / image.scale, rtol=1e-5)
    assert g.object_type == reduced.object_type
    np.testing.assert_array_equal(g.confidence, reduced.confidence)
    assert g.mask is not None and g.mask.shape == (len(g), *full)
    for big, m in zip(g.mask, reduced.mask):
        expected = cv2.resize(m.astype(np.uint8), (full[1], full[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
        np.testing.assert_array_equal(big, expected)
        assert big.mean() == pytest.approx(m.mean(), abs=0.05)


def test_detect_at_full_scale_is_detect_rgb(upper_body_detector_weights: Path) -> None:
    d = GarmentDetector(upper_body_detector_weights)
    rgb = _rgb(50, 70)
    g, same = d.detect(_decoded(rgb, 70, 50)), d.detect_rgb(rgb)
    np.testing.assert_array_equal(g.xyxy, same.xyxy)
    np.testing.assert_array_equal(g.mask, same.mask)


def test_detect_nothing_at_reduced_scale_has_full_size_empty_masks(upper_body_detector_weights: Path) -> None:
    d = GarmentDetector(upper_body_detector_weights, settings=DetectSettings(score_thresh=1.0))
    g = d.detect(_decoded(_rgb(30, 40), width=160, height=120))
    assert len(g) == 0 and g.mask is not None and g.mask.shape == (0, 120, 160)


def test_detect_many(upper_body_detector_weights: Path) -> None:
    d = GarmentDetector(upper_body_detector_weights)
    out = d.detect_many([_decoded(_rgb(40, 40, 1), 40, 40), _decoded(_rgb(30, 40, 2), 80, 60)])
    assert [type(g) for g in out] == [Garments, Garments]
    assert out[1].mask is not None and out[1].mask.shape[1:] == (60, 80)
    assert d.detect_many([]) == []
