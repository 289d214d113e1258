"""The pixel colour model: features, the model, fitting by grouped cross-validation, plain backdrops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fashionlens.colours.backdrop import backdrop_garment_mask, border_agreement
from fashionlens.models.pixel_colours import N_FEATURES, PixelColourModel, colour_features
from fashionlens.colours.naming import garment_pixels, whole_image_pixels
from fashionlens.models.registry import DEFAULT_PIXEL_COLOURS, default_weights_path
from fashionlens.train.colours import ColourTrainConfig, fit_pixel_colour_model

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

NAMES = ("red", "green", "blue", "white")
HUES = {"red": (200, 30, 35), "green": (40, 150, 60), "blue": (30, 50, 190), "white": (235, 235, 235)}


def _pixels(colour: tuple[int, int, int], n: int = 500, noise: float = 12.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour) + rng.normal(0, noise, (n, 3)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ features


def test_features_shape_and_shares() -> None:
    f = colour_features(_pixels(HUES["red"]))
    assert f.shape == (N_FEATURES,)
    hist = f[:-5] ** 2  # square roots of shares
    assert hist.sum() == pytest.approx(1.0)
    g = colour_features(_pixels(HUES["blue"]))
    assert np.abs(f - g).sum() > 1.0  # red and blue fall in different cells


def test_features_grey_pixels_go_to_lightness_bands() -> None:
    f = colour_features(np.full((100, 3), 128, np.uint8))
    hist = f[:-5] ** 2
    assert hist[:-8].sum() == 0 and hist[-8:].sum() == pytest.approx(1.0)
    assert f[-1] == 0  # no chromatic pixels


@pytest.mark.parametrize("bad", [np.zeros((0, 3), np.uint8), np.zeros((5, 4), np.uint8), np.zeros((5, 3), np.float32)])
def test_features_reject_bad_pixels(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected"):
        colour_features(bad)


# ------------------------------------------------------------------------------ the model


def test_model_checks_shapes_and_round_trips(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="coef"):
        PixelColourModel(values=NAMES, coef=np.zeros((3, N_FEATURES)), intercept=np.zeros(4), threshold=0.5)
    with pytest.raises(ValueError, match="head_weight"):
        PixelColourModel(values=NAMES, coef=np.zeros((4, N_FEATURES)), intercept=np.zeros(4), threshold=1.5)
    rng = np.random.default_rng(0)
    m = PixelColourModel(values=NAMES, coef=rng.normal(size=(4, N_FEATURES)), intercept=rng.normal(size=4),
                         threshold=0.6, head_weight=0.4, metrics={"val": {"macro_f1": 0.5}})
    m.save(tmp_path / "m.npz")
    back = PixelColourModel.load(tmp_path / "m.npz")
    assert back.values == NAMES and back.threshold == 0.6 and back.metrics == {"val": {"macro_f1": 0.5}}
    x = colour_features(_pixels(HUES["green"]))
    np.testing.assert_allclose(back.predict_proba(x), m.predict_proba(x), atol=1e-4)  # stored as float32
    p, t = m.combine(np.full(4, 0.2), np.full(4, 0.6), 0.2)
    np.testing.assert_allclose(p, 0.4 * 0.2 + 0.6 * 0.6)
    assert t == pytest.approx(0.4 * 0.2 + 0.6 * 0.6)
    with pytest.raises(ValueError, match="expected a fashionlens/pixel-colours/v1"):
        PixelColourModel.load(Path(__file__))


def test_fit_learns_colours_from_pixels() -> None:
    """Garments of known colours (some two-coloured): the fitted model names fresh ones right."""
    rng = np.random.default_rng(1)

    def garment(seed: int) -> tuple[np.ndarray, np.ndarray]:
        k = rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False)
        parts = [_pixels(HUES[NAMES[i]], n=300, seed=seed * 10 + j) for j, i in enumerate(k)]
        y = np.zeros(len(NAMES), bool)
        y[k] = True
        return colour_features(np.concatenate(parts)), y

    train = [garment(s) for s in range(80)]
    x, y = np.stack([t[0] for t in train]), np.stack([t[1] for t in train])
    config = ColourTrainConfig(c_grid=[0.3, 3.0], folds=4)
    model, selection = fit_pixel_colour_model(x, y, [f"g{i}" for i in range(len(x))], NAMES, config)
    assert selection["chosen"]["cv_macro_f1"] > 0.9
    assert len(selection["grid"]) == 2 * len(config.threshold_grid)
    fresh = [garment(s) for s in range(100, 130)]
    pred = model.predict_proba(np.stack([f[0] for f in fresh])) >= model.threshold
    assert (pred == np.stack([f[1] for f in fresh])).mean() > 0.95


def test_fit_refuses_too_few_groups_and_bad_config() -> None:
    with pytest.raises(ValueError, match="groups"):
        fit_pixel_colour_model(np.zeros((4, N_FEATURES)), np.zeros((4, 4), bool), ["a", "a", "b", "b"], NAMES,
                               ColourTrainConfig())
    with pytest.raises(ValueError, match="head_weight"):
        ColourTrainConfig(head_weight=2)
    with pytest.raises(ValueError, match="thresholds"):
        ColourTrainConfig(threshold_grid=[0.0, 0.5])


def test_shipped_model_matches_the_classifier_and_names_plain_colours() -> None:
    from fashionlens.pipeline import Tagger

    model = PixelColourModel.load(default_weights_path(DEFAULT_PIXEL_COLOURS))
    model.check_head(Tagger(backend="onnx").meta.head("colours").values)
    rng = np.random.default_rng(0)
    for name, colour in (("black", (28, 28, 30)), ("red", (190, 25, 30)), ("blue", (40, 90, 170)),
                         ("white", (250, 250, 250))):
        rgb, garment = _hanging(512, 288, colour)
        if name == "white":
            rgb[~garment] = (150, 150, 150)  # a white garment on a grey backdrop
        noisy = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)  # sensor noise
        pixels, masked = whole_image_pixels(noisy)
        assert masked
        p = model.predict_proba(colour_features(pixels))
        assert model.values[int(p.argmax())] == name
    assert set(model.metrics) >= {"selection", "val", "test"}


# ------------------------------------------------------------------------------ plain backdrops


def _hanging(h: int = 200, w: int = 120, colour: tuple[int, int, int] = (190, 25, 30), *,
             size: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """A garment (an ellipse with semi-axes ``size`` of the photo's sides) hanging on a light backdrop."""
    rgb = np.full((h, w, 3), 238, np.uint8)
    garment = np.zeros((h, w), np.uint8)
    cv2.ellipse(garment, (w // 2, h // 2), (int(w * size), int(h * size)), 0, 0, 360, 1, -1)
    rgb[garment.astype(bool)] = colour
    return rgb, garment.astype(bool)


def test_backdrop_mask_finds_a_hanging_garment() -> None:
    rgb, garment = _hanging()
    assert border_agreement(rgb) == pytest.approx(1.0)
    found = backdrop_garment_mask(rgb)
    assert found is not None and (found & garment).sum() / (found | garment).sum() > 0.9


def test_backdrop_mask_refuses_busy_and_full_frame_photos() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    assert border_agreement(noise) < 0.8 and backdrop_garment_mask(noise) is None
    full = np.full((100, 80, 3), 240, np.uint8)
    full[2:-2, 2:-2] = (30, 50, 170)  # the garment fills the frame
    assert backdrop_garment_mask(full) is None
    assert backdrop_garment_mask(np.full((100, 80, 3), 240, np.uint8)) is None  # nothing on the backdrop
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        border_agreement(np.zeros((10, 10), np.uint8))


def test_whole_image_pixels_masked_only_on_a_plain_backdrop() -> None:
    rgb, _ = _hanging(h=600, w=400, size=0.2)  # downscaled to 128 px before masking
    pixels, masked = whole_image_pixels(rgb)

    def red_share(px: np.ndarray) -> float:
        return float((np.abs(px.astype(int) - (190, 25, 30)).max(1) < 40).mean())

    assert masked and red_share(pixels) > 0.9
    assert red_share(garment_pixels(rgb)) < 0.5  # the centre of the photo is mostly backdrop
    noise = np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    pixels, masked = whole_image_pixels(noise)
    assert not masked and len(pixels) == 60 * 48  # the central 60 %
    tiny_pixels, tiny_masked = whole_image_pixels(np.full((4, 4, 3), 200, np.uint8))
    assert not tiny_masked and len(tiny_pixels) > 0


def test_on_plain_backdrop() -> None:
    from fashionlens.colours.naming import on_plain_backdrop

    rgb, _ = _hanging(h=600, w=400)
    assert on_plain_backdrop(rgb)
    patches = np.random.default_rng(0).integers(0, 256, (15, 10, 3), dtype=np.uint8)  # a busy floor: 20-px patches
    assert not on_plain_backdrop(np.repeat(np.repeat(patches, 20, axis=0), 20, axis=1))
    assert not on_plain_backdrop(np.full((8, 8, 3), 200, np.uint8))  # too small to tell
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        on_plain_backdrop(np.zeros((10, 10), np.uint8))
