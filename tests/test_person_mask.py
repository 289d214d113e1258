"""Person-aware masks (issue 28): mask intersection rules on synthetic garments, the missing-model message,
and (when mediapipe's model file is installed) the segmenter on a CCP photo against its mask."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fashionlens.detection import person_mask
from fashionlens.detection.person_mask import (
    PersonAwareDetector,
    PersonModelMissing,
    person_model_path,
    restrict_to_person,
)
from fashionlens.result import Garments


def _garments() -> Garments:
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 2:10, 2:10] = True  # upper-body: half on the person
    masks[1, 12:18, 0:4] = True  # bag: wholly off the person
    masks[2, 5:8, 12:16] = True  # footwear: on the person
    return Garments(xyxy=np.array([[2, 2, 10, 10], [0, 12, 4, 18], [12, 5, 16, 8]], float),
                    object_type=["upper-body", "bag", "footwear"], confidence=np.array([0.9, 0.8, 0.7]), mask=masks)


def _person() -> np.ndarray:
    person = np.zeros((20, 20), bool)
    person[:, 6:18] = True
    return person


def test_masks_are_cut_to_the_person_and_nothing_else_changes() -> None:
    g = _garments()
    out = restrict_to_person(g, _person())
    assert out.mask is not None and g.mask is not None
    assert out.mask[0].sum() == 8 * 4 and not out.mask[0][:, :6].any()
    assert out.mask[1].sum() == 0 and (out.mask[2] == g.mask[2]).all()
    assert (out.xyxy == g.xyxy).all() and out.object_type == g.object_type and (out.confidence == g.confidence).all()
    assert g.mask[0].sum() == 64  # the input is not modified


def test_types_min_kept_and_dilation() -> None:
    g = _garments()
    assert g.mask is not None
    only_upper = restrict_to_person(g, _person(), types={"upper-body"})
    assert only_upper.mask is not None and (only_upper.mask[1] == g.mask[1]).all()
    kept = restrict_to_person(g, _person(), min_kept=0.3)  # the bag would keep 0 %: it keeps its own mask
    assert kept.mask is not None and (kept.mask[1] == g.mask[1]).all() and kept.mask[0].sum() == 32
    dilated = restrict_to_person(g, _person(), dilate_px=2)
    assert dilated.mask is not None and dilated.mask[0].sum() == 8 * 6
    with pytest.raises(ValueError, match="person mask is"):
        restrict_to_person(g, np.ones((10, 10), bool))


def test_missing_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(person_mask.MODEL_ENV, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PersonModelMissing, match="pip install --no-deps mediapipe==0.10.14"):
        person_model_path()
    monkeypatch.setenv(person_mask.MODEL_ENV, str(tmp_path / "none.tflite"))
    with pytest.raises(PersonModelMissing, match="no such file"):
        person_model_path()


class _FakeSegmenter:
    def mask(self, rgb: np.ndarray) -> np.ndarray:
        return _person()


class _FakeDetector:
    class_names = ("__background__", "upper-body")

    def candidates(self, rgb: np.ndarray, *args: object) -> Garments:
        return _garments()


def test_person_aware_detector_wraps_a_detector() -> None:
    det = PersonAwareDetector(_FakeDetector(), _FakeSegmenter())  # type: ignore[arg-type]
    out = det.candidates(np.zeros((20, 20, 3), np.uint8))
    assert out.mask is not None and out.mask[1].sum() == 0
    assert det.class_names == ("__background__", "upper-body")


CCP = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ccp"


def test_segmenter_finds_the_person_of_a_ccp_photo() -> None:
    try:
        segmenter = person_mask.PersonSegmenter()
    except PersonModelMissing:
        pytest.skip("mediapipe's model file is not installed (pip install --no-deps mediapipe==0.10.14)")
    if not (CCP / "masks" / "0100.png").is_file():
        pytest.skip("CCP data set not present")
    from PIL import Image

    rgb = np.asarray(Image.open(CCP / "photos" / "0100.jpg").convert("RGB"))
    truth = np.asarray(Image.open(CCP / "masks" / "0100.png")) != 0  # every labelled class is on the person
    mask = segmenter.mask(rgb)
    assert mask.shape == truth.shape
    assert (mask & truth).sum() / (mask | truth).sum() > 0.85
