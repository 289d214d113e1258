"""Name a garment's pixels in the taxonomy's colour palette and measure each colour's share.

The classifier's colour head says *which* palette colours a garment has; the pixels say *how
much* of each. Pixels of the garment region are compared with the palette's reference colours in
CIELAB; each pixel goes to the nearest of the predicted colours, or to none when it is far from
all of them (shadows, leftovers). Inside a detector's mask, skin, hair and background are dropped
first (:mod:`fashionlens.models.pixel_filter`), so shares are measured on the garment's own
pixels; :func:`colour_labels` lists only colours that some of those pixels actually have.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Literal, NamedTuple

import cv2
import numpy as np

from fashionlens.colours.backdrop import backdrop_garment_mask, border_agreement
from fashionlens.models.pixel_filter import (
    GarmentPixelFilter,
    default_pixel_filter,
    sample_mask_pixels,
)
from fashionlens.result import ColourLabel
from fashionlens.taxonomy import load_taxonomy

#: pixels further than this (CIE76 ΔE) from every predicted colour are not counted
MAX_DELTA_E = 40.0
#: a garment's colours are measured on at most this many of its pixels (a regular subsample)
MAX_GARMENT_PIXELS = 4096
#: :func:`colour_labels` lists a colour only when at least this share of the garment's counted pixels has it
MIN_SHARE = 0.02


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 sRGB → float32 CIELAB (L in 0..100, a/b roughly -128..127)."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape[:-1] + (3,))


@lru_cache(maxsize=1)
def palette_lab() -> tuple[tuple[str, ...], np.ndarray]:
    """Names and ``(K, 3)`` CIELAB reference colours of every palette entry that has an ``rgb``."""
    group = load_taxonomy().attribute("colours")
    names = tuple(n for n in group.values if n in group.rgb)
    rgb = np.array([group.rgb[n] for n in names], dtype=np.uint8)
    return names, _to_lab(rgb)


def garment_pixels(rgb: np.ndarray, *, mask: np.ndarray | None = None, centre_fraction: float = 0.6,
                   max_pixels: int = MAX_GARMENT_PIXELS,
                   pixel_filter: GarmentPixelFilter | Literal["default"] | None = "default") -> np.ndarray:
    """``(N, 3)`` uint8 pixels of the garment: the mask's pixels, or without a mask the central
    ``centre_fraction`` of the box (where a single-garment photo's garment is). Subsampled to at
    most ``max_pixels`` on a regular grid (deterministic).

    With a mask, ``rgb`` is the garment's box and ``pixel_filter`` (default: the shipped
    :class:`~fashionlens.models.pixel_filter.GarmentPixelFilter`) drops the subsampled mask pixels that
    are skin, hair or background; ``None`` keeps every mask pixel (a mask known to be exact, such as a
    plain backdrop's)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if mask is not None:
        if mask.shape != (h, w):
            raise ValueError(f"mask shape {mask.shape} does not match image {(h, w)}")
        ys, xs = sample_mask_pixels(mask.astype(bool), max_pixels)
        if pixel_filter == "default":
            pixel_filter = default_pixel_filter()
        if pixel_filter is not None and len(ys) and rgb.dtype == np.uint8:
            keep = pixel_filter.keep(rgb, mask, ys, xs)
            ys, xs = ys[keep], xs[keep]
        return rgb[ys, xs]
    mh, mw = int(h * (1 - centre_fraction) / 2), int(w * (1 - centre_fraction) / 2)
    pix = rgb[mh:h - mh or h, mw:w - mw or w].reshape(-1, 3)
    if len(pix) > max_pixels:
        pix = pix[:: int(np.ceil(len(pix) / max_pixels))]
    return pix


class GarmentPixels(NamedTuple):
    """A garment's colour pixels and where they come from."""

    pixels: np.ndarray  # (N, 3) uint8 RGB
    # True: the garment's own pixels (a mask) where the pixel colour model may read them; False: the centre of
    # its box (may include backdrop), or mask pixels of a photo it does not apply to (not a plain backdrop)
    masked: bool


def _check_uint8_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")


def _small_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR)


def on_plain_backdrop(rgb: np.ndarray, *, max_side: int = 128) -> bool:
    """Whether a photo's border is mostly one colour (:func:`fashionlens.colours.backdrop.border_agreement` ≥ 0.8,
    on a copy at most ``max_side`` pixels long): the kind of photo the pixel colour model was trained on."""
    _check_uint8_rgb(rgb)
    small = _small_copy(rgb, max_side)
    return min(small.shape[:2]) >= 16 and border_agreement(small) >= 0.8


def whole_image_pixels(rgb: np.ndarray, *, max_side: int = 128) -> GarmentPixels:
    """The colour pixels of a photo of one garment: the garment's own pixels when it lies on a plain
    backdrop (:func:`fashionlens.colours.backdrop.backdrop_garment_mask`, found on a copy at most ``max_side``
    pixels long, resized bilinearly — colour histograms do not need more, and this runs for every photo
    ``tag`` sees), else the central region (:func:`garment_pixels`)."""
    _check_uint8_rgb(rgb)
    small = _small_copy(rgb, max_side)
    mask = backdrop_garment_mask(small) if min(small.shape[:2]) >= 16 else None
    if mask is not None:
        # the backdrop search's mask is the garment's outline on a plain backdrop: no skin or street to drop
        return GarmentPixels(garment_pixels(small, mask=mask, pixel_filter=None), True)
    return GarmentPixels(garment_pixels(rgb), False)


def colour_shares(pixels: np.ndarray, colours: Sequence[str]) -> dict[str, float]:
    """Share of ``pixels`` nearest to each of ``colours`` (palette names; ``multicolour`` and names
    without a reference colour get no share). Shares sum to 1 over counted pixels; colours that
    no pixel is near get 0."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 3:
        raise ValueError(f"expected (N, 3) RGB pixels, got shape {pixels.shape}")
    names, lab = palette_lab()
    chosen = [c for c in colours if c in names]
    if not chosen or len(pixels) == 0:
        return {c: 0.0 for c in chosen}
    ref = lab[[names.index(c) for c in chosen]]
    px = _to_lab(pixels.reshape(-1, 1, 3)).reshape(-1, 3)
    d = np.linalg.norm(px[:, None, :] - ref[None, :, :], axis=-1)
    nearest = d.argmin(1)
    counted = d[np.arange(len(px)), nearest] <= MAX_DELTA_E
    counts = np.bincount(nearest[counted], minlength=len(chosen)).astype(np.float64)
    total = counts.sum()
    return {c: float(counts[i] / total) if total else 0.0 for i, c in enumerate(chosen)}


def colour_labels(pixels: np.ndarray, colours: Sequence[str], scores: Mapping[str, float], *,
                  unsure: Collection[str] = (), min_share: float = MIN_SHARE) -> list[ColourLabel]:
    """The garment's colours as listed in a result: ``colours`` (palette names, best first) with their
    share of ``pixels`` (:func:`colour_shares`), score (``scores[name]``, rounded to 4 decimals) and
    ``uncertain`` for the names in ``unsure``.

    A palette colour that fewer than ``min_share`` of the counted pixels are nearest to is left out,
    and the shares are measured again among the colours that stay (so they still sum to 1): a
    colour the garment's pixels do not show is not listed with ``share: 0``. Names without a
    reference colour (``multicolour``) are kept with share None. With no pixels at all, every
    colour is kept with share None (nothing was measured). An empty list means the pixels show
    none of ``colours`` (the colour names are then unsure).
    """
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share: expected a number in [0, 1), got {min_share}")
    missing = [c for c in colours if c not in scores]
    if missing:
        raise ValueError(f"expected a score for every colour, none for {missing}")
    names, _ = palette_lab()
    pixels = np.asarray(pixels)
    if len(pixels) == 0:
        return [ColourLabel(c, None, round(float(scores[c]), 4), uncertain=c in unsure) for c in colours]
    kept = list(colours)
    while True:
        shares = colour_shares(pixels, kept)
        low = [c for c, s in shares.items() if s < min_share]
        if not low:
            break
        kept = [c for c in kept if c not in low]
    return [ColourLabel(c, round(shares[c], 4) if c in names else None, round(float(scores[c]), 4),
                        uncertain=c in unsure) for c in kept]
