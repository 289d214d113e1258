"""Tests for fashionlens.colours.naming on synthetic pixels: which pixels are the garment's, and how much
of them each predicted palette colour covers."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.colours.naming import (
    MAX_DELTA_E,
    MIN_SHARE,
    colour_labels,
    colour_shares,
    garment_pixels,
    palette_lab,
)
from fashionlens.result import ColourLabel
from fashionlens.taxonomy import load_taxonomy

GROUP = load_taxonomy().attribute("colours")
WHITE, RED = GROUP.rgb["white"], GROUP.rgb["red"]


def _red_square_on_white(size: int = 100, lo: int = 30, hi: int = 70) -> np.ndarray:
    rgb = np.full((size, size, 3), WHITE, np.uint8)
    rgb[lo:hi, lo:hi] = RED
    return rgb


def _px(*colours: tuple[int, int, int], n: int = 10) -> np.ndarray:
    return np.array([c for c in colours for _ in range(n)], np.uint8).reshape(-1, 3)


# ------------------------------------------------------------------------------ palette


def test_palette_has_every_colour_with_a_reference() -> None:
    names, lab = palette_lab()
    assert set(names) == set(GROUP.rgb) and "multicolour" not in names
    assert lab.shape == (len(names), 3) and lab.dtype == np.float32
    assert 0 <= lab[:, 0].min() and lab[:, 0].max() <= 100  # L in 0..100


@pytest.mark.parametrize("name", sorted(GROUP.rgb))
def test_each_reference_colour_is_named_as_itself(name: str) -> None:
    names, _ = palette_lab()
    shares = colour_shares(_px(GROUP.rgb[name]), list(names))
    assert shares[name] == 1.0
    assert sum(shares.values()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ colour_shares


def test_red_square_alone_is_all_red() -> None:
    """Only red is predicted: the white background is too far from red to be counted."""
    assert colour_shares(garment_pixels(_red_square_on_white()), ["red"]) == {"red": 1.0}


def test_red_square_and_white_background_shares() -> None:
    shares = colour_shares(garment_pixels(_red_square_on_white()), ["red", "white"])
    assert list(shares) == ["red", "white"]
    assert sum(shares.values()) == pytest.approx(1.0)
    # the central 60×60 crop holds the 40×40 red square and 2000 white pixels
    assert shares["red"] == pytest.approx(1600 / 3600)
    assert shares["white"] == pytest.approx(2000 / 3600)


def test_unknown_and_multicolour_get_no_share() -> None:
    shares = colour_shares(_px(RED), ["multicolour", "red", "chartreuse"])
    assert shares == {"red": 1.0}
    assert colour_shares(_px(RED), ["multicolour"]) == {}
    assert colour_shares(_px(RED), []) == {}


def test_colours_no_pixel_is_near_get_zero() -> None:
    shares = colour_shares(_px(RED, WHITE), ["red", "blue"])
    assert shares == {"red": 1.0, "blue": 0.0}
    # green pixels are far (ΔE > MAX_DELTA_E) from both red and pink: nothing is counted
    assert colour_shares(_px(GROUP.rgb["green"]), ["red", "pink"]) == {"red": 0.0, "pink": 0.0}
    assert MAX_DELTA_E > 0


def test_no_pixels() -> None:
    assert colour_shares(np.zeros((0, 3), np.uint8), ["red", "multicolour"]) == {"red": 0.0}


def test_shares_follow_pixel_counts() -> None:
    pixels = np.concatenate([_px(RED, n=30), _px(GROUP.rgb["blue"], n=10), _px(GROUP.rgb["black"], n=60)])
    shares = colour_shares(pixels, ["blue", "red", "black"])
    assert shares == pytest.approx({"blue": 0.1, "red": 0.3, "black": 0.6})


@pytest.mark.parametrize("shape", [(6, 4), (8, 1, 3), (9,), (4, 2)])
def test_colour_shares_rejects_pixels_that_are_not_rgb_triples(shape: tuple[int, ...]) -> None:
    """An (N, 4) array whose size divides by 3 must not be silently reshaped into other pixels."""
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        colour_shares(np.full(shape, 200, np.uint8), ["red", "white"])


# ------------------------------------------------------------------------------ garment_pixels


def test_garment_pixels_without_mask_is_the_centre() -> None:
    rgb = np.zeros((100, 80, 3), np.uint8)
    rgb[20:80, 16:64] = (1, 2, 3)  # exactly the central 60 %
    pix = garment_pixels(rgb)
    assert pix.shape == (60 * 48, 3) and pix.dtype == np.uint8
    assert (pix == (1, 2, 3)).all()


def test_garment_pixels_centre_fraction() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    np.testing.assert_array_equal(garment_pixels(rgb, centre_fraction=1.0), rgb.reshape(-1, 3))
    assert len(garment_pixels(rgb, centre_fraction=0.5)) == 20 * 26


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (1, 200)])
def test_garment_pixels_of_tiny_images_are_never_empty(shape: tuple[int, int]) -> None:
    rgb = np.full((*shape, 3), 7, np.uint8)
    pix = garment_pixels(rgb)
    assert len(pix) >= 1 and (pix == 7).all()


def test_garment_pixels_with_mask() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), bool)
    mask[0, 0] = mask[29, 39] = mask[5, 7] = True  # corners count when the mask says so
    # without the pixel filter every mask pixel counts (the filter has its own tests: test_garment_pixel_filter.py)
    np.testing.assert_array_equal(garment_pixels(rgb, mask=mask, pixel_filter=None), rgb[mask])
    np.testing.assert_array_equal(garment_pixels(rgb, mask=mask.astype(np.uint8), pixel_filter=None), rgb[mask])
    assert garment_pixels(rgb, mask=np.zeros((30, 40), bool)).shape == (0, 3)


def test_garment_pixels_with_mask_measures_only_the_garment() -> None:
    rgb = _red_square_on_white()
    mask = np.zeros(rgb.shape[:2], bool)
    mask[30:70, 30:70] = True
    assert colour_shares(garment_pixels(rgb, mask=mask), ["red", "white"]) == {"red": 1.0, "white": 0.0}


def test_garment_pixels_are_subsampled_deterministically() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    a = garment_pixels(rgb, centre_fraction=1.0, max_pixels=1000)
    assert 0 < len(a) <= 1000
    np.testing.assert_array_equal(a, garment_pixels(rgb, centre_fraction=1.0, max_pixels=1000))
    np.testing.assert_array_equal(a[1], rgb.reshape(-1, 3)[120])  # every 120th pixel


@pytest.mark.parametrize("shape", [(10, 10), (10, 10, 4), (10, 10, 1), (10,)])
def test_garment_pixels_rejects_non_rgb_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="H×W×3"):
        garment_pixels(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("mask_shape", [(10, 11), (11, 10), (10, 10, 1), (100,)])
def test_garment_pixels_rejects_a_mask_of_another_size(mask_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="mask shape"):
        garment_pixels(np.zeros((10, 10, 3), np.uint8), mask=np.ones(mask_shape, bool))


# ------------------------------------------------------------------------------ colour_labels


def test_colour_labels_leave_out_a_colour_the_pixels_do_not_show() -> None:
    pixels = np.concatenate([_px(RED, n=990), _px(WHITE, n=10)])  # 1 % white
    labels = colour_labels(pixels, ["red", "white", "blue"], {"red": 0.9, "white": 0.6, "blue": 0.55})
    assert labels == [ColourLabel("red", 1.0, 0.9)]  # white (1 %) and blue (0 %) left out, red measured again


def test_colour_labels_keep_order_scores_and_shares_that_sum_to_one() -> None:
    pixels = np.concatenate([_px(RED, n=30), _px(WHITE, n=70)])
    labels = colour_labels(pixels, ["red", "white"], {"red": 0.91234, "white": 0.5})
    assert [c.id for c in labels] == ["red", "white"] and labels[0].score == 0.9123
    assert labels[0].share == 0.3 and labels[1].share == 0.7


def test_colour_labels_mark_the_unsure_ones() -> None:
    pixels = np.concatenate([_px(RED, n=30), _px(WHITE, n=70)])
    labels = colour_labels(pixels, ["red", "white"], {"red": 0.9, "white": 0.3}, unsure={"white"})
    assert [c.uncertain for c in labels] == [False, True]


def test_colour_labels_keep_multicolour_without_a_share() -> None:
    labels = colour_labels(_px(RED), ["multicolour", "red", "green"], {"multicolour": 0.7, "red": 0.6, "green": 0.5})
    assert labels == [ColourLabel("multicolour", None, 0.7), ColourLabel("red", 1.0, 0.6)]


def test_colour_labels_without_pixels_measure_nothing_and_drop_nothing() -> None:
    labels = colour_labels(np.zeros((0, 3), np.uint8), ["red", "white"], {"red": 0.9, "white": 0.6})
    assert labels == [ColourLabel("red", None, 0.9), ColourLabel("white", None, 0.6)]


def test_colour_labels_are_empty_when_the_pixels_show_none_of_the_colours() -> None:
    assert colour_labels(_px(GROUP.rgb["green"]), ["red", "pink"], {"red": 0.9, "pink": 0.6}) == []


def test_colour_labels_need_a_score_per_colour_and_a_sane_minimum() -> None:
    with pytest.raises(ValueError, match="score for every colour"):
        colour_labels(_px(RED), ["red", "white"], {"red": 0.9})
    with pytest.raises(ValueError, match="min_share"):
        colour_labels(_px(RED), ["red"], {"red": 0.9}, min_share=1.5)


@pytest.mark.parametrize("seed", range(5))
def test_no_listed_colour_has_a_share_under_the_minimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names, _ = palette_lab()
    pixels = rng.integers(0, 256, (int(rng.integers(1, 400)), 3), dtype=np.uint8)
    chosen = list(rng.choice(names, int(rng.integers(1, 6)), replace=False))
    labels = colour_labels(pixels, chosen, {c: 0.5 for c in chosen})
    shares = [c.share for c in labels]
    assert all(s is not None and s >= MIN_SHARE for s in shares)
    assert [c.id for c in labels] == [c for c in chosen if c in {x.id for x in labels}]  # order kept
    if labels:
        assert abs(sum(shares) - 1.0) < 1e-3
