"""fashionlens.models.pixel_filter: features of a garment's mask pixels, the MLP that drops skin, hair and
background, its weights file, and the shipped filter on synthetic street-photo garments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionlens.colours.naming import colour_shares, garment_pixels
from fashionlens.models.pixel_filter import (
    FEATURE_NAMES,
    N_PIXEL_FEATURES,
    GarmentPixelFilter,
    default_pixel_filter,
    pixel_features,
    sample_mask_pixels,
)
from fashionlens.models.weights_io import save_npz_weights
from fashionlens.taxonomy import load_taxonomy

RGB = load_taxonomy().attribute("colours").rgb


def _box(h: int = 60, w: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[10:50, 5:35] = True
    return rgb, mask


def _tiny_filter(hidden: int = 4, bias: float = 0.0, **kw: float) -> GarmentPixelFilter:
    rng = np.random.default_rng(1)
    return GarmentPixelFilter(mean=np.zeros(N_PIXEL_FEATURES), scale=np.ones(N_PIXEL_FEATURES),
                              w1=rng.normal(size=(N_PIXEL_FEATURES, hidden)), b1=np.zeros(hidden),
                              w2=rng.normal(size=hidden), b2=np.array([bias]), **kw)


# ------------------------------------------------------------------------------ features


def test_features_shape_ranges_and_positions() -> None:
    rgb, mask = _box()
    ys, xs = sample_mask_pixels(mask, 10_000)
    f = pixel_features(rgb, mask, ys, xs)
    assert f.shape == (mask.sum(), N_PIXEL_FEATURES) == (1200, len(FEATURE_NAMES)) and f.dtype == np.float32
    assert np.isfinite(f).all()
    col = {n: f[:, i] for i, n in enumerate(FEATURE_NAMES)}
    assert 0 < col["x_in_box"].min() and col["x_in_box"].max() < 1 and 0 < col["y_in_box"].min() < 0.25
    assert 0 <= col["L"].min() and col["L"].max() <= 1
    assert col["edge_distance"].min() > 0  # the mask's own pixels are inside it
    np.testing.assert_allclose(col["mask_fill"], 1200 / 2400)


def test_edge_distance_grows_towards_the_mask_centre() -> None:
    rgb, mask = _box()
    ys, xs = np.array([10, 30]), np.array([20, 20])  # on the top edge, in the middle
    f = pixel_features(rgb, mask, ys, xs)
    k = FEATURE_NAMES.index("edge_distance")
    assert f[0, k] < f[1, k]


def test_a_mask_that_fills_its_box_uses_the_box_border_as_surroundings() -> None:
    rgb = np.full((20, 20, 3), 200, np.uint8)
    f = pixel_features(rgb, np.ones((20, 20), bool), np.array([10]), np.array([10]))
    assert f[0, FEATURE_NAMES.index("delta_e_surroundings")] == pytest.approx(0.0, abs=1e-4)


def test_features_reject_bad_inputs() -> None:
    rgb, mask = _box()
    with pytest.raises(ValueError, match="uint8 box"):
        pixel_features(rgb.astype(np.float32), mask, np.array([20]), np.array([20]))
    with pytest.raises(ValueError, match="mask shape"):
        pixel_features(rgb, mask[1:], np.array([20]), np.array([20]))
    with pytest.raises(ValueError, match="empty"):
        pixel_features(rgb, np.zeros_like(mask), np.array([20]), np.array([20]))


def test_sample_mask_pixels_is_the_regular_subsample_garment_pixels_takes() -> None:
    rgb, mask = _box()
    ys, xs = sample_mask_pixels(mask, 100)
    assert len(ys) <= 100
    np.testing.assert_array_equal(rgb[ys, xs], garment_pixels(rgb, mask=mask, max_pixels=100, pixel_filter=None))


# ------------------------------------------------------------------------------ the model


def test_round_trip_and_numpy_forward(tmp_path: Path) -> None:
    f = _tiny_filter(threshold=0.4, min_kept=0.2, meta={"seed": 3})
    f.save(tmp_path / "f.npz")
    g = GarmentPixelFilter.load(tmp_path / "f.npz")
    x = np.random.default_rng(2).normal(size=(50, N_PIXEL_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(g.predict_proba(x), f.predict_proba(x), rtol=1e-6)
    hidden = np.maximum(x @ f.w1 + f.b1, 0)
    np.testing.assert_allclose(f.predict_proba(x), 1 / (1 + np.exp(-(hidden @ f.w2 + f.b2))), rtol=1e-5)
    assert (g.threshold, g.min_kept, g.meta["seed"]) == (0.4, 0.2, 3)


def test_bad_shapes_and_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected an MLP"):
        GarmentPixelFilter(mean=np.zeros(3), scale=np.ones(3), w1=np.zeros((3, 2)), b1=np.zeros(2), w2=np.zeros(2),
                           b2=np.zeros(1))
    with pytest.raises(ValueError, match="threshold"):
        _tiny_filter(threshold=1.0)
    path = tmp_path / "other.npz"
    f = _tiny_filter()
    save_npz_weights(path, fmt="fashionlens/garment-pixel-filter/v1",
                     meta={"threshold": 0.5, "min_kept": 0.3, "features": ["L", "a"]},
                     arrays={"mean": f.mean, "scale": f.scale, "w1": f.w1, "b1": f.b1, "w2": f.w2, "b2": np.zeros(1)})
    with pytest.raises(ValueError, match="trained on"):
        GarmentPixelFilter.load(path)


def test_keep_never_removes_a_whole_garment() -> None:
    rgb, mask = _box()
    ys, xs = sample_mask_pixels(mask, 4096)
    drop_all = _tiny_filter(bias=50.0)  # says "not garment" everywhere
    assert drop_all.keep(rgb, mask, ys, xs).all()  # fewer than min_kept would stay: all are kept
    keep_all = _tiny_filter(bias=-50.0)
    assert keep_all.keep(rgb, mask, ys, xs).all()
    assert keep_all.keep(rgb, mask, ys[:0], xs[:0]).shape == (0,)


# ------------------------------------------------------------------------------ the shipped filter


def _street_garment(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box from a street photo: a blue coat, a bare arm along its side, pavement below it; the
    detector's mask covers the coat and leaks over the arm and the pavement. Returns box, mask and
    the true coat pixels."""
    rng = np.random.default_rng(seed)
    h, w = 200, 120
    box = np.empty((h, w, 3), np.uint8)
    box[:] = (128, 126, 122)  # pavement
    box += rng.integers(0, 12, (h, w, 1), dtype=np.uint8)
    coat = np.zeros((h, w), bool)
    coat[15:170, 25:100] = True
    box[coat] = (35, 60, 140)
    box[coat] += rng.integers(0, 10, (int(coat.sum()), 1), dtype=np.uint8)
    arm = np.zeros((h, w), bool)
    arm[40:150, 8:25] = True
    box[arm] = (224, 172, 140)  # skin
    mask = coat | arm
    mask[170:190, 25:100] = True  # the leak onto the pavement
    return box, mask, coat


@pytest.mark.parametrize("seed", [0, 1])
def test_shipped_filter_drops_skin_and_pavement_but_keeps_the_coat(seed: int) -> None:
    box, mask, coat = _street_garment(seed)
    ys, xs = sample_mask_pixels(mask, 4096)
    keep = default_pixel_filter().keep(box, mask, ys, xs)
    on_coat = coat[ys, xs]
    assert keep[on_coat].mean() >= 0.9  # the coat stays
    assert (~keep[~on_coat]).mean() >= 0.5  # most of the leak goes
    before = colour_shares(box[ys, xs], ["blue", "beige", "grey"])
    after = colour_shares(garment_pixels(box, mask=mask), ["blue", "beige", "grey"])
    assert after["blue"] > before["blue"] + 0.1


def test_shipped_filter_keeps_a_plain_garment_whole() -> None:
    """A garment whose mask is exact (one colour, nothing leaks): every pixel stays."""
    box = np.full((80, 100, 3), 255, np.uint8)
    box[20:60, 20:80] = (0, 0, 200)
    mask = np.zeros((80, 100), bool)
    mask[20:60, 20:80] = True
    pix = garment_pixels(box, mask=mask)
    assert len(pix) >= 0.9 * mask.sum() and (pix == (0, 0, 200)).all()
