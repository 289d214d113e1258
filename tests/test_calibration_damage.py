"""Damage-region calibration (issue 25): regions labelled real by their painted pixels, every region on a clean
photo false; the calibration sidecar maps scores monotonically and ``grade`` applies it to region scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fashionlens.evaluate.calibration_damage import DAMAGE_HEAD, damage_regions
from fashionlens.grading.damage import FoundDamage
from fashionlens.grading.grade import _damage_calibration
from fashionlens.models.calibration import Calibration, HeadCalibration


class _CentreFinder:
    """Reports the photo's centre square as one region, and a corner square on every photo."""

    def find(self, rgb: np.ndarray, garment: np.ndarray) -> list[FoundDamage]:
        h, w = rgb.shape[:2]
        out = []
        for (y0, x0), score in (((h // 2 - 20, w // 2 - 20), 0.9), ((0, 0), 0.4)):
            m = np.zeros((h, w), bool)
            m[y0:y0 + 40, x0:x0 + 40] = True
            out.append(FoundDamage("stain", float(m.sum()) / garment.sum(), score, (x0, y0, x0 + 40, y0 + 40), m))
        return out


def test_regions_are_real_where_damage_was_painted_and_false_on_clean_photos(monkeypatch: Any) -> None:
    from fashionlens.grading import synthetic_damage

    def paint_centre(rgb: np.ndarray, garment: np.ndarray, *, rng: Any, style: Any) -> tuple[Any, Any, list]:
        painted = np.zeros(rgb.shape[:2], np.uint8)
        h, w = painted.shape
        painted[h // 2 - 20:h // 2 + 20, w // 2 - 20:w // 2 + 20] = 1
        return rgb, painted, []

    monkeypatch.setattr(synthetic_damage, "add_synthetic_damage", paint_centre)
    rgb = np.full((160, 96, 3), 128, np.uint8)
    photos = [("a.jpg", rgb, np.ones((160, 96), bool)), ("b.jpg", rgb, np.ones((160, 96), bool))]
    score, real, photo, n = damage_regions(_CentreFinder(), photos, seed=0)
    assert n == 4 and len(score) == 8  # two photos painted + the same two clean, two regions each
    assert real.tolist() == [True, False, False, False, True, False, False, False]
    assert photo.tolist() == [0, 0, 2, 2, 1, 1, 3, 3]


def test_grade_uses_a_damage_calibration_only_for_the_head_it_was_fitted_on() -> None:
    cal = Calibration(heads={"damage": HeadCalibration("damage", "multi", ("damage",), "temperature", 0.5)},
                      provenance={"weights": {"name": "damage-segmenter-lite0", "version": "4.1"}})
    assert _damage_calibration(None, cal) == (None, None)  # no damage head, nothing to calibrate
    given, source = _damage_calibration(object(), cal)
    assert given is cal and source == "given"
    raw = np.array([[0.3], [0.6], [0.9]])
    out = given.heads["damage"].apply(raw)[:, 0]
    assert np.all(np.diff(out) > 0) and out[2] > 0.9  # monotone: the head's ranking is kept

    class _OtherHead:
        class meta:  # mimics DamageMeta
            name, version = "my-damage-head", "1"

    assert _damage_calibration(_OtherHead(), "default") == (None, "none (uncalibrated)")
    with pytest.raises(ValueError, match="expected a head 'damage'"):
        _damage_calibration(object(), Calibration(heads={"garment": HeadCalibration(
            "garment", "multi", ("garment",), "identity")}))
    assert DAMAGE_HEAD.name == "damage"
