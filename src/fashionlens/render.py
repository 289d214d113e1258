"""Draw tag results on photos: masks and boxes coloured by object type, category and attributes as labels.

:func:`annotate` draws a :class:`~fashionlens.result.TagResult`; :func:`render_result` takes a
``fashionlens/result/v1`` record (as written by ``fashionlens tag``) so saved JSON lines can be
rendered later too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from fashionlens.result import Garments, Label, TagResult

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


def garment_label(garments: Garments, i: int, *, max_attributes: int = 2) -> str:
    """``"jeans 0.91 | plain, blue"``: garment ``i``'s category, its score and the top attributes
    (object type and detection score before classification)."""
    cat = garments.category[i] if garments.category is not None else None
    if cat is not None:
        parts = [f"{cat.id} {float(cat.score):.2f}"]
    else:  # the score as in the JSON record (4 decimals), so saved and live results read alike
        parts = [f"{garments.object_type[i]} {round(float(garments.confidence[i]), 4):.2f}"]
    attrs = garments.attributes[i] if garments.attributes is not None else {}
    extra: list[str] = []
    pattern = attrs.get("pattern")
    if isinstance(pattern, Label):
        extra.append(pattern.id)
    colours = attrs.get("colours")
    for c in (colours if isinstance(colours, list) else [])[:max_attributes]:
        extra.append(c.id)
    if extra:
        parts.append(", ".join(extra[: max_attributes + 1]))
    return " | ".join(parts)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution mask at the drawn image's size (nearest neighbour)."""
    if mask.shape == shape:
        return mask
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def annotate(rgb: np.ndarray, result: TagResult, *, alpha: float = 0.45) -> np.ndarray:
    """A copy of ``rgb`` with each garment's mask (translucent), box and label drawn.

    Boxes and masks in ``result`` are in the photo's full-resolution pixels (``result.width``);
    ``rgb`` may be smaller (a reduced decode) and is drawn on at its own size.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    out = rgb.copy()
    h, w = out.shape[:2]
    s = w / (result.width or w)
    thick = max(2, round(min(h, w) / 300))
    font = max(0.4, min(h, w) / 900)
    garments = result.garments
    colours = [OBJECT_TYPE_COLOURS.get(t, _OTHER) for t in garments.object_type]
    # boxes rounded as in the JSON record (2 decimals): a live result and its saved line draw the same pixels
    boxes = [garments.bbox_json(i) for i in garments]
    if garments.mask is not None:
        for i in garments:
            m = _fit_mask(garments.mask[i], (h, w))
            out[m] = (out[m] * (1 - alpha) + np.array(colours[i]) * alpha).astype(np.uint8)
    for i in garments:
        x, y, bw, bh = (v * s for v in boxes[i])
        p0, p1 = (int(x), int(y)), (int(x + bw), int(y + bh))
        cv2.rectangle(out, p0, p1, colours[i], thick)
        text = garment_label(garments, i)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(th + base, p0[1])
        cv2.rectangle(out, (p0[0], ty - th - base), (p0[0] + tw + 4, ty), colours[i], -1)
        cv2.putText(out, text, (p0[0] + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if result.mode == "whole_image_fallback":
        cv2.putText(out, "no garment detected: whole-image result", (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 0), 1, cv2.LINE_AA)
    return out


def render_result(rgb: np.ndarray, record: Mapping[str, Any], *, alpha: float = 0.45) -> np.ndarray:
    """:func:`annotate` for a saved ``fashionlens/result/v1`` record (a JSON line of ``fashionlens tag``)."""
    return annotate(rgb, TagResult.from_json(record), alpha=alpha)
