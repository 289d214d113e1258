"""render_result and garment_label on hand-made ``fashionlens/result/v1`` records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fashionlens.io.records import encode_mask
from fashionlens.render import OBJECT_TYPE_COLOURS, garment_label, render_result

W, H = 400, 300  # full-resolution photo
GREY = 120


def _rgb(w: int = W, h: int = H) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def _garment(object_type: str = "upper-body", *, bbox: tuple[float, ...] = (200, 150, 100, 100),
             mask: tuple[slice, slice] | None = (slice(160, 240), slice(210, 290)), **extra: Any) -> dict[str, Any]:
    rle = None
    if mask is not None:
        m = np.zeros((H, W), bool)
        m[mask] = True
        rle = encode_mask(m)
    return {"object_type": object_type, "score": 0.8, "bbox": list(bbox), "mask": rle,
            "category": {"id": "t-shirts", "score": 0.91}, **extra}


def _record(*garments: dict[str, Any], mode: str = "detect") -> dict[str, Any]:
    return {"image": {"path": "p.jpg", "width": W, "height": H}, "mode": mode, "garments": list(garments)}


def _tinted(colour: tuple[int, int, int], alpha: float = 0.45) -> np.ndarray:
    return (GREY * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)


# ------------------------------------------------------------------------------ garment_label


@pytest.mark.parametrize("garment, expected", [
    ({"category": {"id": "jeans", "score": 0.912},
      "attributes": {"pattern": {"id": "plain", "score": 0.8},
                     "colours": [{"id": "blue"}, {"id": "black"}, {"id": "white"}]}},
     "jeans 0.91 | plain, blue, black"),
    ({"category": {"id": "boots", "score": 0.5}, "attributes": {"colours": [{"id": "red"}]}}, "boots 0.50 | red"),
    ({"category": {"id": "bags", "score": 0.25}, "attributes": {}}, "bags 0.25"),
    ({"object_type": "footwear", "score": 0.7, "category": None}, "footwear 0.70"),
    ({}, "? 0.00"),
])
def test_garment_label(garment: dict[str, Any], expected: str) -> None:
    assert garment_label(garment) == expected


def test_garment_label_max_attributes() -> None:
    g = {"category": {"id": "jeans", "score": 1.0},
         "attributes": {"pattern": {"id": "plain"}, "colours": [{"id": "blue"}, {"id": "black"}]}}
    assert garment_label(g, max_attributes=1) == "jeans 1.00 | plain, blue"
    assert garment_label(g, max_attributes=0) == "jeans 1.00 | plain"


# ------------------------------------------------------------------------------ render_result


def test_mask_pixels_move_towards_the_object_type_colour() -> None:
    rgb = _rgb()
    out = render_result(rgb, _record(_garment()))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert (rgb == GREY).all()  # the input is not drawn on
    colour = OBJECT_TYPE_COLOURS["upper-body"]
    np.testing.assert_allclose(out[200, 250].astype(int), _tinted(colour).astype(int), atol=1)
    before = np.abs(rgb[200, 250].astype(int) - colour).sum()
    assert np.abs(out[200, 250].astype(int) - colour).sum() < before
    # box outline in the object type's colour
    assert tuple(out[250, 200]) == colour and tuple(out[220, 300]) == colour


def test_pixels_far_from_any_garment_are_unchanged() -> None:
    rgb = _rgb()
    out = render_result(rgb, _record(_garment()))
    np.testing.assert_array_equal(out[:, :190], rgb[:, :190])  # left of the box (the label grows right)
    np.testing.assert_array_equal(out[260:], rgb[260:])  # below it
    # inside the box but outside the mask: unchanged
    np.testing.assert_array_equal(out[245, 205], rgb[245, 205])


def test_without_mask_only_box_and_label_are_drawn() -> None:
    out = render_result(_rgb(), _record(_garment("bag", mask=None)))
    assert tuple(out[200, 250]) == (GREY,) * 3
    assert tuple(out[250, 200]) == OBJECT_TYPE_COLOURS["bag"]


def test_unknown_object_type_is_grey_box() -> None:
    out = render_result(_rgb(), _record(_garment("scarf", mask=None)))
    assert tuple(out[250, 200]) == (128, 128, 128)


def test_reduced_decode_is_drawn_at_its_own_size() -> None:
    small = _rgb(W // 2, H // 2)
    out = render_result(small, _record(_garment()))  # record in full-resolution pixels
    assert out.shape == small.shape
    colour = OBJECT_TYPE_COLOURS["upper-body"]
    np.testing.assert_allclose(out[100, 125].astype(int), _tinted(colour).astype(int), atol=1)  # mask centre / 2
    assert tuple(out[125, 100]) == colour  # left edge of the box at x = 200 / 2
    np.testing.assert_array_equal(out[:, :95], small[:, :95])


def test_no_garments_is_a_plain_copy() -> None:
    rgb = _rgb()
    out = render_result(rgb, _record())
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb


def test_whole_image_fallback_is_noted() -> None:
    rgb = _rgb()
    out = render_result(rgb, _record(mode="whole_image_fallback"))
    assert (out[H - 30:, :200] != GREY).any()  # the note, bottom left
    np.testing.assert_array_equal(out[: H - 40], rgb[: H - 40])


def test_record_without_image_size_uses_the_array_size() -> None:
    record = _record(_garment(mask=None))
    record["image"] = {"path": "p.jpg", "width": None, "height": None}  # as in error records
    out = render_result(_rgb(), record)
    assert tuple(out[250, 200]) == OBJECT_TYPE_COLOURS["upper-body"]


@pytest.mark.parametrize("shape", [(H, W), (H, W, 4), (H, W, 1), (3, H, W)])
def test_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="H×W×3"):
        render_result(np.zeros(shape, np.uint8), _record())
