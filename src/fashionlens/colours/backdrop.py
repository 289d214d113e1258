"""Garments photographed on a plain backdrop: find the garment's pixels without a detector.

Sorting stations (RISE: garments hanging on white) and many catalogue photos show one garment on a
plain backdrop. :func:`plain_background_mask` separates the garment from it by colour distance to
the border's median colour; :func:`backdrop_garment_mask` adds the checks that say whether a photo
*is* a plain-backdrop photo at all (most of its border agrees on one colour, the garment does not
fill the frame), so a photo of a garment on a patterned floor gets ``None`` instead of a wrong mask.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")


def _blurred_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)


def _border(lab: np.ndarray) -> np.ndarray:
    h, w = lab.shape[:2]
    b = max(2, min(h, w) // 40)
    return np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3),
                           lab[:, -b:].reshape(-1, 3)])


def _sq_distance(lab: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Squared CIELAB distance of every pixel of ``lab`` (``…×3`` float32) to ``ref`` (cheaper than a norm)."""
    diff = lab - ref.astype(np.float32)
    return np.einsum("...k,...k->...", diff, diff)


def _garment_from_lab(lab: np.ndarray, *, tolerance: float, min_share: float) -> np.ndarray | None:
    h, w = lab.shape[:2]
    bg = np.median(_border(lab), axis=0)
    fg = (_sq_distance(lab, bg) > tolerance * tolerance).astype(np.uint8)
    k = max(3, (min(h, w) // 60) | 1)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if filled.sum() < min_share * h * w:
        return None
    return filled.astype(bool)


def _border_agreement(lab: np.ndarray, tolerance: float) -> float:
    border = _border(lab)
    return float((_sq_distance(border, np.median(border, axis=0)) <= tolerance * tolerance).mean())


def plain_background_mask(rgb: np.ndarray, *, tolerance: float = 28.0, min_share: float = 0.02) -> np.ndarray | None:
    """The garment of a photo taken on a plain backdrop (RISE: hanging on white) as an ``H×W`` bool mask.

    The backdrop colour is the median of the photo's border; pixels further than ``tolerance``
    (CIELAB ΔE) from it are garment, closed, hole-filled, largest component kept. None when the
    garment covers less than ``min_share`` of the photo (not a plain-backdrop photo).
    """
    _check_rgb(rgb)
    return _garment_from_lab(_blurred_lab(rgb), tolerance=tolerance, min_share=min_share)


def border_agreement(rgb: np.ndarray, *, tolerance: float = 28.0) -> float:
    """The share of the photo's border pixels within ``tolerance`` (CIELAB ΔE) of the border's median
    colour: near 1 for a plain backdrop, low for a floor, a bed or a street."""
    _check_rgb(rgb)
    return _border_agreement(_blurred_lab(rgb), tolerance)


def backdrop_garment_mask(rgb: np.ndarray, *, tolerance: float = 28.0, min_share: float = 0.05,
                          max_share: float = 0.9, min_border_agreement: float = 0.8) -> np.ndarray | None:
    """The garment's ``H×W`` bool mask when ``rgb`` is a single garment on a plain backdrop, else None.

    A plain-backdrop photo: at least ``min_border_agreement`` of its border is one colour, and the
    garment found by :func:`plain_background_mask` covers between ``min_share`` and ``max_share`` of it.
    """
    _check_rgb(rgb)
    lab = _blurred_lab(rgb)
    if _border_agreement(lab, tolerance) < min_border_agreement:
        return None
    mask = _garment_from_lab(lab, tolerance=tolerance, min_share=min_share)
    if mask is None or mask.mean() > max_share:
        return None
    return mask
