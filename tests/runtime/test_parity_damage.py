"""The shipped damage head in ONNX Runtime vs. PyTorch (issue 8, part 1; the ONNX file ships since
issue 26): a fresh export into a temporary folder next to a copy of the weights is compared with PyTorch.

Tolerances: probabilities |Δ| ≤ 1e-4 [measured ≤ 1.1e-6 on RISE photos]; the per-pixel argmax
class may differ on at most 0.1 % of the pixels [measured 0]; the damage regions found are the same:
types equal, boxes within 2 px, area shares within 1e-4, scores within 1e-3.
``tests/grading/test_damage_model.py`` covers a tiny random head; this file covers the shipped
weights on generated and real photos (skipped when ``../shared/datasets`` is absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fashionlens.grading.damage import DEFAULT_DAMAGE_MODEL, DamageFinder
from fashionlens.imageio import load_image
from fashionlens.models.registry import default_weights_path
from fashionlens.runtime.damage_onnx import export_damage_onnx

PROB_ATOL = 1e-4
ARGMAX_DIFF_MAX = 1e-3
SCORE_ATOL = 1e-3
BOX_ATOL_PX = 2.0

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch


def shared_datasets() -> Path:
    """``../shared/datasets`` next to the project root (this file is ``<root>/tests/runtime/…``)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.fixture(scope="module")
def finders(tmp_path_factory: pytest.TempPathFactory) -> tuple[DamageFinder, DamageFinder]:
    folder = tmp_path_factory.mktemp("damage")
    weights = Path(shutil.copy(default_weights_path(DEFAULT_DAMAGE_MODEL), folder / "damage.pt"))
    export_damage_onnx(weights)
    eager, onnx = DamageFinder(weights, backend="torch", threads=1), DamageFinder(weights, backend="onnx", threads=1)
    assert (eager.backend, onnx.backend) == ("torch", "onnx")
    return eager, onnx


def _assert_same(eager: DamageFinder, onnx: DamageFinder, rgb: np.ndarray, garment: np.ndarray | None, where: str
                 ) -> None:
    p_eager, p_onnx = eager.probabilities(rgb, full_size=False), onnx.probabilities(rgb, full_size=False)
    assert p_eager.shape == p_onnx.shape, where
    np.testing.assert_allclose(p_onnx, p_eager, rtol=0, atol=PROB_ATOL, err_msg=where)
    assert (p_onnx.argmax(0) != p_eager.argmax(0)).mean() <= ARGMAX_DIFF_MAX, where
    a, b = eager.find(rgb, garment), onnx.find(rgb, garment)
    assert [d.type for d in a] == [d.type for d in b], where
    for da, db in zip(a, b):
        np.testing.assert_allclose(da.bbox_xyxy, db.bbox_xyxy, rtol=0, atol=BOX_ATOL_PX, err_msg=where)
        assert da.area_share == pytest.approx(db.area_share, abs=1e-4), where
        assert abs(da.score - db.score) <= SCORE_ATOL, where


def _generated() -> list[tuple[np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(5)
    garment = np.zeros((320, 180), bool)
    garment[30:300, 20:160] = True
    shirt = np.full((320, 180, 3), 225, np.uint8)
    shirt[garment] = (60, 90, 150)
    shirt[120:150, 70:110] = (90, 60, 30)  # a brown "stain"
    shirt[200:215, 40:60] = 0  # a dark "hole"
    noise = rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)
    return [(shirt, garment), (noise, None)]


def test_parity_on_generated_photos(finders: tuple[DamageFinder, DamageFinder]) -> None:
    for k, (rgb, garment) in enumerate(_generated()):
        _assert_same(*finders, rgb, garment, f"generated photo {k}")


@pytest.mark.data
@pytest.mark.skipif(not (shared_datasets() / "rise" / "images").is_dir(), reason="../shared/datasets/rise not present")
def test_parity_on_real_photos(finders: tuple[DamageFinder, DamageFinder]) -> None:
    paths = sorted((shared_datasets() / "rise" / "images").glob("*.jpg"))[:4]
    assert len(paths) == 4
    for path in paths:
        _assert_same(*finders, load_image(path).rgb, None, path.name)
