"""Synthetic damage on clean garment photos: stains, holes and tears, pilling, fading.

Real photos with region-level damage labels do not exist offline, so the damage head trains on
clean garments with damage painted on (the RISE talk's "synthetic damage for training" next step).
:func:`add_synthetic_damage` takes an ``H×W×3`` uint8 photo and the garment's ``H×W`` bool mask and
returns the damaged photo, a ``uint8`` damage map (``0`` = none, ``k + 1`` = ``DAMAGE_TYPES[k]``)
and one :class:`DamageRegion` per painted region. Damage stays inside the (slightly eroded) garment.

* **stain**: an irregular blob in one of a palette of stain colours (coffee, wine, grease, sweat,
  ink, grass, rust), 30–85 % opacity with soft edges, sometimes with a darker drying ring;
  labelled only where it visibly changed the cloth (a coffee stain on black cloth leaves no label);
* **hole**: a small irregular blob or a thin jagged tear showing what is behind the fabric —
  the backdrop outside the garment or the shadowed inside of the garment — with a dark frayed rim;
* **pilling**: a patch densely covered with small fibre balls, lighter and darker than the cloth;
* **fading**: a large soft patch with lower saturation and higher lightness (sun/bleach fading),
  labelled, like stains, only where visible.

Everything is drawn from an ``np.random.Generator``: the same seed gives the same damage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fashionlens.colours.backdrop import plain_background_mask  # noqa: F401  (re-exported: damage training uses it)
from fashionlens.grading.item import DAMAGE_TYPES

_STAIN_COLOURS: tuple[tuple[int, int, int], ...] = (
    (96, 58, 30),    # coffee / tea
    (110, 18, 45),   # red wine
    (52, 48, 44),    # grease / dirt
    (196, 164, 58),  # sweat / yellowing
    (32, 40, 112),   # ink
    (70, 98, 38),    # grass
    (150, 70, 28),   # rust
)  # bleach spots are not here: a bleached patch is fading


@dataclass(frozen=True)
class DamageRegion:
    """One painted region: its type, its share of the garment's pixels and its box (xyxy)."""

    type: str
    area_share: float
    bbox_xyxy: tuple[int, int, int, int]


@dataclass(frozen=True)
class DamageStyle:
    """How much damage to paint. Areas are fractions of the garment's pixels."""

    max_regions: int = 3
    type_weights: tuple[float, ...] = (0.3, 0.3, 0.2, 0.2)  # stain, hole, pilling, fading
    stain_area: tuple[float, float] = (0.003, 0.04)
    hole_area: tuple[float, float] = (0.001, 0.02)
    pilling_area: tuple[float, float] = (0.02, 0.10)
    fading_area: tuple[float, float] = (0.04, 0.20)
    erode_frac: float = 0.03

    def __post_init__(self) -> None:
        if self.max_regions < 1:
            raise ValueError(f"max_regions must be >= 1, got {self.max_regions}")
        if len(self.type_weights) != len(DAMAGE_TYPES) or min(self.type_weights) < 0 or sum(self.type_weights) <= 0:
            raise ValueError(f"type_weights: expected {len(DAMAGE_TYPES)} non-negative weights "
                             f"for {DAMAGE_TYPES}, got {self.type_weights}")


def _check(rgb: np.ndarray, garment: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
    if garment.shape != rgb.shape[:2]:
        raise ValueError(f"expected a garment mask of shape {rgb.shape[:2]}, got {garment.shape}")


def blob_mask(shape: tuple[int, int], center: tuple[float, float], radius: float, rng: np.random.Generator, *,
              elongation: float = 1.0, roughness: float = 0.45) -> np.ndarray:
    """An irregular filled blob (``float32`` in [0, 1], soft edge) of about ``radius`` pixels.

    A radial falloff is perturbed by upsampled low-resolution noise, so outlines are organic;
    ``elongation`` > 1 stretches it along a random angle (tears, drips).
    """
    h, w = shape
    cy, cx = center
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    r = np.sqrt((u / (radius * np.sqrt(elongation))) ** 2 + (v * np.sqrt(elongation) / radius) ** 2)
    side = int(rng.integers(3, 7))
    noise = rng.standard_normal((side, side)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.standard_normal((side * 4, side * 4)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    field = 1.0 - r + roughness * (0.7 * noise + 0.3 * fine) * np.clip(1.5 - r, 0, 1)
    return np.clip(field * 3.0, 0.0, 1.0)


def _pick_center(allowed: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    ys, xs = np.nonzero(allowed)
    if len(ys) == 0:
        return None
    i = int(rng.integers(len(ys)))
    return float(ys[i]), float(xs[i])


def _stain(img: np.ndarray, allowed: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    h, w = allowed.shape
    center = _pick_center(allowed, rng)
    if center is None:
        return np.zeros((h, w), bool)
    radius = max(2.0, np.sqrt(area / np.pi))
    alpha = blob_mask((h, w), center, radius, rng, elongation=float(rng.uniform(1.0, 2.5)))
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, radius * 0.12)) * allowed
    colour = np.asarray(_STAIN_COLOURS[int(rng.integers(len(_STAIN_COLOURS)))], np.float32)
    colour = np.clip(colour + rng.normal(0, 12, 3), 0, 255)
    opacity = float(rng.uniform(0.3, 0.85))
    a = (alpha * opacity)[..., None]
    base = img.astype(np.float32)
    if colour.mean() < 160:  # dark stains darken the cloth (multiply), keeping its texture
        stained = base * (0.35 + 0.65 * colour / 255.0)
    else:  # light (bleach, sweat) stains lift it towards the colour
        stained = 0.4 * base + 0.6 * colour
    if rng.random() < 0.35:  # a darker drying ring at the edge
        ring = np.clip(alpha * (1 - alpha) * 4, 0, 1)[..., None] * 0.35
        stained = stained * (1 - ring)
    img[:] = np.clip(base * (1 - a) + stained * a, 0, 255).astype(np.uint8)
    # labelled only where the change is visible, as for fading: coffee on black cloth changes nothing
    changed = np.abs(img.astype(np.float32) - base).max(axis=2) > 12
    return ((alpha * opacity) > 0.12) & changed


def _hole(img: np.ndarray, allowed: np.ndarray, garment: np.ndarray, area: float, rng: np.random.Generator
          ) -> np.ndarray:
    h, w = allowed.shape
    center = _pick_center(allowed, rng)
    if center is None:
        return np.zeros((h, w), bool)
    tear = rng.random() < 0.35
    elong = float(rng.uniform(6.0, 14.0)) if tear else float(rng.uniform(1.0, 2.0))
    radius = max(1.5, np.sqrt(area / np.pi))
    hole = (blob_mask((h, w), center, radius, rng, elongation=elong, roughness=0.6) > 0.5) & allowed
    if not hole.any():
        return hole
    outside = ~garment
    if outside.sum() > 50 and rng.random() < 0.5:  # the backdrop shows through
        ys, xs = np.nonzero(outside)
        pick = rng.integers(len(ys), size=int(hole.sum()))
        fill = img[ys[pick], xs[pick]].astype(np.float32)
        fill = np.full_like(fill, np.median(fill, axis=0)) + rng.normal(0, 4, fill.shape)
    else:  # the shadowed inside of the garment (its back panel, lining or the wearer's layer)
        inside = img[hole].astype(np.float32) * float(rng.uniform(0.15, 0.45))
        fill = inside + rng.normal(0, 3, inside.shape)
    img[hole] = np.clip(fill, 0, 255).astype(np.uint8)
    rim = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~hole & garment
    fray = rim & (rng.random((h, w)) < 0.8)
    img[fray] = (img[fray].astype(np.float32) * rng.uniform(0.35, 0.7)).astype(np.uint8)
    return hole


def _pilling(img: np.ndarray, allowed: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    h, w = allowed.shape
    center = _pick_center(allowed, rng)
    if center is None:
        return np.zeros((h, w), bool)
    radius = max(4.0, np.sqrt(area / np.pi))
    region = (blob_mask((h, w), center, radius, rng, elongation=float(rng.uniform(1.0, 2.0)), roughness=0.3) > 0.5)
    region &= allowed
    n = int(region.sum() * rng.uniform(0.05, 0.12))
    ys, xs = np.nonzero(region)
    if n == 0 or len(ys) == 0:
        return region
    pick = rng.integers(len(ys), size=n)
    base = img.astype(np.float32)
    out = base.copy()
    lift = float(rng.uniform(25, 60)) * (1 if rng.random() < 0.7 else -0.6)
    for y, x in zip(ys[pick], xs[pick]):
        r = int(rng.integers(1, 3))
        colour = np.clip(base[y, x] + lift + rng.normal(0, 8, 3), 0, 255)
        cv2.circle(out, (int(x) + 1, int(y) + 1), r, tuple(float(c) * 0.6 for c in base[y, x]), -1)  # shadow
        cv2.circle(out, (int(x), int(y)), r, tuple(float(c) for c in colour), -1)
    keep = region[..., None]
    img[:] = np.where(keep, np.clip(out, 0, 255), base).astype(np.uint8)
    return region


def _fading(img: np.ndarray, allowed: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    h, w = allowed.shape
    center = _pick_center(allowed, rng)
    if center is None:
        return np.zeros((h, w), bool)
    radius = max(4.0, np.sqrt(area / np.pi))
    alpha = blob_mask((h, w), center, radius, rng, elongation=float(rng.uniform(1.0, 3.0)), roughness=0.35)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, radius * 0.25)) * allowed
    strength = float(rng.uniform(0.35, 0.7))
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    faded = hsv.copy()
    faded[..., 1] *= 1 - strength
    faded[..., 2] = faded[..., 2] + (255 - faded[..., 2]) * strength * 0.6
    faded_rgb = cv2.cvtColor(np.clip(faded, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    a = alpha[..., None]
    before = img.astype(np.float32)
    img[:] = np.clip(before * (1 - a) + faded_rgb * a, 0, 255).astype(np.uint8)
    # labelled only where the change is visible: fading white cloth changes nothing
    changed = np.abs(img.astype(np.float32) - before).max(axis=2) > 12
    return (alpha > 0.35) & changed


def add_synthetic_damage(rgb: np.ndarray, garment: np.ndarray, *, rng: np.random.Generator,
                         style: DamageStyle = DamageStyle(), n_regions: int | None = None,
                         types: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[DamageRegion]]:
    """Paint 1..``style.max_regions`` damage regions (or ``n_regions``) inside ``garment``.

    ``types``: force the region types (one per region); default drawn with ``style.type_weights``.
    Returns ``(damaged_rgb, damage_map, regions)``; later regions overwrite earlier ones in the map.
    """
    _check(rgb, garment)
    garment = garment.astype(bool)
    img = rgb.copy()
    damage = np.zeros(garment.shape, np.uint8)
    g_area = int(garment.sum())
    if g_area < 64:
        return img, damage, []
    k = max(1, round(style.erode_frac * np.sqrt(g_area)))
    allowed = cv2.erode(garment.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    if allowed.sum() < 32:
        allowed = garment
    count = n_regions if n_regions is not None else int(rng.integers(1, style.max_regions + 1))
    if types is not None and len(types) != count:
        raise ValueError(f"expected {count} region types, got {len(types)}")
    p = np.asarray(style.type_weights, float) / sum(style.type_weights)
    regions: list[DamageRegion] = []
    for i in range(count):
        kind = types[i] if types is not None else DAMAGE_TYPES[int(rng.choice(len(DAMAGE_TYPES), p=p))]
        if kind not in DAMAGE_TYPES:
            raise ValueError(f"unknown damage type {kind!r}; expected one of {DAMAGE_TYPES}")
        lo, hi = getattr(style, f"{kind}_area")
        area = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * g_area
        if kind == "stain":
            m = _stain(img, allowed, area, rng)
        elif kind == "hole":
            m = _hole(img, allowed, garment, area, rng)
        elif kind == "pilling":
            m = _pilling(img, allowed, area, rng)
        else:
            m = _fading(img, allowed, area, rng)
        if not m.any():
            continue
        damage[m] = DAMAGE_TYPES.index(kind) + 1
        ys, xs = np.nonzero(m)
        regions.append(DamageRegion(kind, float(m.sum()) / g_area,
                                    (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return img, damage, regions
