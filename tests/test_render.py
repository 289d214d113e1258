"""annotate, render_result and garment_label on hand-made results and ``fashionlens/result/v1`` records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fashionlens.io.records import encode_mask
from fashionlens.render import OBJECT_TYPE_COLOURS, annotate, garment_label, render_result
from fashionlens.result import RESULT_SCHEMA, ColourLabel, Garments, Label, TagResult

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
    return {"schema": RESULT_SCHEMA, "image": {"path": "p.jpg", "width": W, "height": H}, "model": {},
            "mode": mode, "garments": list(garments), "error": None, "timing_ms": {}}


def _tinted(colour: tuple[int, int, int], alpha: float = 0.45) -> np.ndarray:
    return (GREY * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)


# ------------------------------------------------------------------------------ garment_label


def _one(object_type: str = "upper-body", score: float = 0.8, category: Label | None = None,
         attributes: dict[str, Any] | None = None) -> Garments:
    return Garments(xyxy=[[0, 0, 10, 10]], object_type=[object_type], confidence=[score],
                    category=None if category is None else [category],
                    attributes=None if attributes is None else [attributes])


@pytest.mark.parametrize("garments, expected", [
    (_one(category=Label("jeans", 0.912),
          attributes={"pattern": Label("plain", 0.8),
                      "colours": [ColourLabel("blue", 0.5, 0.9), ColourLabel("black", 0.3, 0.8),
                                  ColourLabel("white", None, 0.7)]}),
     "jeans 0.91 | plain, blue, black"),
    (_one(category=Label("boots", 0.5), attributes={"colours": [ColourLabel("red", None, 0.6)]}), "boots 0.50 | red"),
    (_one(category=Label("bags", 0.25), attributes={}), "bags 0.25"),
    (_one("footwear", 0.7), "footwear 0.70"),
    (_one("footwear", 0.0049996), "footwear 0.01"),  # the score as saved (4 decimals), then 2
])
def test_garment_label(garments: Garments, expected: str) -> None:
    assert garment_label(garments, 0) == expected


def test_garment_label_max_attributes() -> None:
    g = _one(category=Label("jeans", 1.0), attributes={"pattern": Label("plain", 0.9), "colours": [
        ColourLabel("blue", None, 0.9), ColourLabel("black", None, 0.8)]})
    assert garment_label(g, 0, max_attributes=1) == "jeans 1.00 | plain, blue"
    assert garment_label(g, 0, max_attributes=0) == "jeans 1.00 | plain"


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


def test_object_type_without_a_colour_is_grey_box(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(OBJECT_TYPE_COLOURS, "bag")  # a taxonomy type this module has no colour for
    out = render_result(_rgb(), _record(_garment("bag", mask=None)))
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


# ------------------------------------------------------------------------------ annotate == the old renderer


def _render_before(rgb: np.ndarray, record: dict[str, Any], alpha: float = 0.45) -> np.ndarray:
    """``render_result`` as it was before issue 24 (JSON dicts, RLE decoded per garment), kept to show
    that :func:`annotate` draws the same pixels."""
    import cv2

    from fashionlens.io.records import decode_mask

    def label(g: dict[str, Any]) -> str:
        cat = g.get("category") or {}
        parts = [f"{cat.get('id', g.get('object_type', '?'))} {float(cat.get('score', g.get('score', 0))):.2f}"]
        attrs, extra = g.get("attributes") or {}, []
        if isinstance(attrs.get("pattern"), dict):
            extra.append(str(attrs["pattern"]["id"]))
        extra += [str(c["id"]) for c in (attrs.get("colours") or [])[:2]]
        return " | ".join(parts + ([", ".join(extra[:3])] if extra else []))

    out = rgb.copy()
    h, w = out.shape[:2]
    s = w / ((record.get("image") or {}).get("width") or w)
    thick, font = max(2, round(min(h, w) / 300)), max(0.4, min(h, w) / 900)
    for g in record["garments"]:
        if g.get("mask"):
            m = decode_mask(g["mask"]).astype(np.uint8)
            if m.shape != (h, w):
                m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
            m = m.astype(bool)
            out[m] = (out[m] * (1 - alpha) + np.array(OBJECT_TYPE_COLOURS[g["object_type"]]) * alpha).astype(np.uint8)
    for g in record["garments"]:
        colour = OBJECT_TYPE_COLOURS[g["object_type"]]
        x, y, bw, bh = (float(v) * s for v in g["bbox"])
        p0, p1 = (int(x), int(y)), (int(x + bw), int(y + bh))
        cv2.rectangle(out, p0, p1, colour, thick)
        text = label(g)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(th + base, p0[1])
        cv2.rectangle(out, (p0[0], ty - th - base), (p0[0] + tw + 4, ty), colour, -1)
        cv2.putText(out, text, (p0[0] + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    if record.get("mode") == "whole_image_fallback":
        cv2.putText(out, "no garment detected: whole-image result", (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 0), 1, cv2.LINE_AA)
    return out


def _generated_result(seed: int, *, masks: bool = True, mode: str = "detect") -> TagResult:
    """Three garments with fractional boxes, masks, categories, patterns and colours."""
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(0, 150, 3), rng.uniform(0, 100, 3)
    xyxy = np.stack([x0, y0, x0 + rng.uniform(20, 200, 3), y0 + rng.uniform(20, 180, 3)], axis=1)
    mask = np.zeros((3, H, W), bool)
    for i, (a, b, c, d) in enumerate(xyxy.astype(int)):
        mask[i, b:d, a:c] = rng.random((min(d, H) - b, min(c, W) - a)) > 0.3
    types = ["upper-body", "lower-body", "footwear"]
    attrs = [{"pattern": Label("striped", 0.61), "colours": [ColourLabel("red", 0.7, 0.9), ColourLabel("white", 0.2, 0.6),
                                                              ColourLabel("blue", None, 0.51)]},
             {"colours": [ColourLabel("blue", 0.9, 0.88)]}, {}]
    garments = Garments(xyxy=xyxy, object_type=types, confidence=rng.uniform(0, 1, 3), mask=mask if masks else None,
                        category=[Label("t-shirts", 0.9123), Label("jeans", 0.4), Label("boots", 0.77)],
                        category_top=[[Label("t-shirts", 0.9123)], [Label("jeans", 0.4)], [Label("boots", 0.77)]],
                        attributes=attrs)
    return TagResult(path="p.jpg", width=W, height=H, model={"name": "m"}, mode=mode, garments=garments)


@pytest.mark.parametrize("seed, masks, mode, size", [
    (0, True, "detect", (W, H)), (1, True, "detect", (W // 2, H // 2)), (2, False, "whole_image_fallback", (W, H)),
    (3, True, "detect", (333, 250)),
])
def test_annotate_draws_what_the_old_renderer_drew(seed: int, masks: bool, mode: str, size: tuple[int, int]) -> None:
    result = _generated_result(seed, masks=masks, mode=mode)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected = _render_before(rgb, result.to_json())
    np.testing.assert_array_equal(annotate(rgb, result), expected)
    np.testing.assert_array_equal(render_result(rgb, result.to_json()), expected)  # the saved-JSON wrapper
