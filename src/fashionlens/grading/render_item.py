"""A picture of a graded item: each garment view with its garment (mask, box, label) and damage
regions outlined and labelled by type and share; the label photo with what was read from it."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fashionlens.io.records import decode_mask
from fashionlens.render import annotate

DAMAGE_COLOURS: dict[str, tuple[int, int, int]] = {
    "stain": (230, 120, 0), "hole": (220, 0, 0), "pilling": (150, 0, 200), "fading": (0, 150, 220),
}


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _caption(width: int, lines: list[str], height: int = 0) -> np.ndarray:
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    line_h = 20
    out = np.full((max(height, line_h * len(lines) + 10), width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(out, text[:90], (6, 18 + i * line_h), font, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def draw_damage(rgb: np.ndarray, regions: list[dict[str, Any]], *, scale: float = 1.0) -> np.ndarray:
    """Outline each damage region (RLE masks in full-resolution pixels) on ``rgb`` drawn at ``scale``."""
    out = rgb.copy()
    h, w = out.shape[:2]
    for r in regions:
        colour = DAMAGE_COLOURS.get(r["type"], (0, 0, 0))
        m = decode_mask(r["mask"]).astype(np.uint8)
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, max(2, round(min(h, w) / 250)))
        x, y, _bw, _bh = (v * scale for v in r["bbox"])
        text = f"{r['type']} {r['area_share']:.1%}"
        cv2.putText(out, text, (int(x), max(12, int(y) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2, cv2.LINE_AA)
    return out


def render_item(record: dict[str, Any], details: dict[str, Any], *, height: int = 640) -> np.ndarray:
    """One RGB picture: garment views side by side, the label photo, and a caption with the outcome.

    ``details``: :meth:`~fashionlens.grading.grade.ItemGrader.grade`'s (role → ``image``, the view's
    :class:`~fashionlens.result.TagResult` as ``result``)."""
    panels = []
    for role, d in details.items():
        if role == "label":
            continue
        im = d["image"]
        result = d.get("result")
        pic = annotate(im.rgb, result) if result is not None else im.rgb
        regions = [r for r in record["damage"]["regions"] if r["view"] == role]
        pic = draw_damage(pic, regions, scale=im.scale)
        panels.append(_fit(pic, height))
    label = details.get("label")
    if label is not None:
        panels.append(_fit(label["image"].rgb, height))
    if not panels:
        panels.append(np.full((height, height, 3), 255, np.uint8))
    top = np.concatenate(panels, axis=1)
    cat = (record.get("category") or {}).get("id", "?")
    mat = (record.get("attributes", {}).get("material") or {})
    route = record.get("route") or {}
    lines = [(f"item {record['item_id']}: {record.get('object_type') or '?'} / {cat}"
             f"   material: {mat.get('id', '?')} ({mat.get('source', '-')})   brand: {record.get('brand') or '-'}"),
             "damage: " + (", ".join(f"{t} {s:.1%}" for t, s in record["damage"]["area_share"].items() if s > 0)
                           or "none found"),
             f"route: {route.get('decision', '-')}  " + "; ".join(route.get("reasons", []))[:200]]
    return np.concatenate([top, _caption(top.shape[1], lines)], axis=0)
