"""Draw tag results on photos: masks and boxes coloured by object type, category and attributes as labels.

:func:`render_result` takes a ``fashionlens/result/v1`` record (as written by ``fashionlens tag``)
and the photo, so saved JSON lines can be rendered later too.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

#: RGB colour per object type (upper-body red, lower-body blue, full-body green, footwear orange …).
OBJECT_TYPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "upper-body": (220, 40, 40),
    "lower-body": (40, 90, 230),
    "full-body": (30, 170, 60),
    "footwear": (245, 140, 20),
    "bag": (150, 60, 200),
    "headwear": (20, 190, 200),
}
_OTHER = (128, 128, 128)


def garment_label(garment: dict[str, Any], *, max_attributes: int = 2) -> str:
    """``"jeans 0.91 | plain, blue"``: category, its score and the top attributes."""
    cat = garment.get("category") or {}
    parts = [f"{cat.get('id', garment.get('object_type', '?'))} {float(cat.get('score', garment.get('score', 0))):.2f}"]
    attrs = garment.get("attributes") or {}
    extra: list[str] = []
    pattern = attrs.get("pattern")
    if isinstance(pattern, dict):
        extra.append(str(pattern["id"]))
    for c in (attrs.get("colours") or [])[:max_attributes]:
        extra.append(str(c["id"]))
    if extra:
        parts.append(", ".join(extra[: max_attributes + 1]))
    return " | ".join(parts)


def _decode_mask(rle: dict[str, Any], shape: tuple[int, int]) -> np.ndarray | None:
    counts = rle["counts"]
    m = mask_utils.decode({"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m.astype(bool)


def render_result(rgb: np.ndarray, record: dict[str, Any], *, alpha: float = 0.45) -> np.ndarray:
    """A copy of ``rgb`` with each garment's mask (translucent), box and label drawn.

    Boxes in ``record`` are in the photo's full-resolution pixels (``record["image"]`` size); ``rgb``
    may be smaller (a reduced decode) and is drawn on at its own size.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    out = rgb.copy()
    h, w = out.shape[:2]
    full_w = (record.get("image") or {}).get("width") or w
    s = w / full_w
    thick = max(2, round(min(h, w) / 300))
    font = max(0.4, min(h, w) / 900)
    garments = record.get("garments") or []
    for g in garments:
        colour = OBJECT_TYPE_COLOURS.get(g.get("object_type"), _OTHER)
        if g.get("mask"):
            m = _decode_mask(g["mask"], (h, w))
            if m is not None:
                out[m] = (out[m] * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)
    for g in garments:
        colour = OBJECT_TYPE_COLOURS.get(g.get("object_type"), _OTHER)
        x, y, bw, bh = (float(v) * s for v in g["bbox"])
        p0, p1 = (int(x), int(y)), (int(x + bw), int(y + bh))
        cv2.rectangle(out, p0, p1, colour, thick)
        text = garment_label(g)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(th + base, p0[1])
        cv2.rectangle(out, (p0[0], ty - th - base), (p0[0] + tw + 4, ty), colour, -1)
        cv2.putText(out, text, (p0[0] + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    if record.get("mode") == "whole_image_fallback":
        cv2.putText(out, "no garment detected: whole-image result", (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 0), 1, cv2.LINE_AA)
    return out
