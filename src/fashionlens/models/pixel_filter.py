"""Keep only a garment's own pixels inside a detector mask: drop skin, hair and background.

A detector's mask leaks: on a street photo it takes in the wearer's arms, hair falling over a
coat, the pavement between the legs. Colour shares measured on those pixels name skin "beige" and
asphalt "grey". :class:`GarmentPixelFilter` is a small multilayer perceptron (one hidden layer,
NumPy only at run time) that gives each masked pixel a probability of *not* being garment from
:func:`pixel_features` — its colour, its position in the box, its distance to the mask's edge, and
how far its colour is from the mask's typical colour and from the box's surroundings. It was
trained on Clothing Co-Parsing (CCP) train photos, whose pixel labels say skin / hair / background /
garment, with the detector's own masks (``experiments/scripts/train_garment_pixel_filter.py``;
model card ``weights/garment-pixel-filter.md``).

:meth:`GarmentPixelFilter.keep` never removes a garment: when fewer than ``min_kept`` of its pixels
survive (a skin-coloured top, a garment the filter does not understand), all are kept.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashionlens.models.weights_io import load_npz_weights, save_npz_weights

PIXEL_FILTER_FORMAT = "fashionlens/garment-pixel-filter/v1"
#: the shipped filter, in ``fashionlens/weights/``
DEFAULT_PIXEL_FILTER_FILE = "garment-pixel-filter.npz"

FEATURE_NAMES: tuple[str, ...] = (
    "L", "a", "b", "chroma", "x_in_box", "y_in_box", "edge_distance", "edge_distance_box",
    "delta_e_mask_median", "delta_e_surroundings", "dL_mask_median", "box_aspect", "mask_fill",
)
N_PIXEL_FEATURES = len(FEATURE_NAMES)


#: masks and surroundings are measured on a copy of the box at most this many pixels long (speed)
WORK_SIDE = 128


def _lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 sRGB → float32 CIELAB."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape[:-1] + (3,))


def pixel_features(box_rgb: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``(N, N_PIXEL_FEATURES)`` float32 features of the mask pixels at ``(ys, xs)`` of one garment.

    ``box_rgb``: the garment's box (``h×w×3`` uint8); ``mask``: its ``h×w`` mask within the box.
    Features (:data:`FEATURE_NAMES`): CIELAB colour and chroma (scaled to about 0..1), position in
    the box (0..1), distance to the mask's edge (over the box's shorter side and over the mask's
    typical thickness, its 90th percentile), CIELAB distance to the mask's median colour and to the
    median colour of the box's pixels outside the mask (its surroundings; the box's border when the
    mask fills it), lightness difference to the mask's median, the box's aspect ratio and the share
    of it the mask fills. Everything but the pixels' own colours is measured on a copy of the box at
    most :data:`WORK_SIDE` pixels long (about 1 ms a garment).
    """
    if box_rgb.ndim != 3 or box_rgb.shape[2] != 3 or box_rgb.dtype != np.uint8:
        raise ValueError(f"expected an h×w×3 uint8 box, got shape {box_rgb.shape} dtype {box_rgb.dtype}")
    h, w = box_rgb.shape[:2]
    if mask.shape != (h, w):
        raise ValueError(f"mask shape {mask.shape} does not match the box {(h, w)}")
    m = mask.astype(bool)
    if not m.any():
        raise ValueError("expected a mask with at least one pixel, got an empty one")
    scale = min(1.0, WORK_SIDE / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if (sh, sw) != (h, w):
        small_rgb = cv2.resize(box_rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small_m = cv2.resize(m.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        if not small_m.any():  # a sliver lost in the resize: measure it at full size
            small_rgb, small_m, sh, sw = box_rgb, m, h, w
    else:
        small_rgb, small_m = box_rgb, m
    lab = _lab(small_rgb)
    median_in = np.median(lab[small_m], axis=0)
    outside = lab[~small_m]
    if len(outside) < max(4, 0.05 * sh * sw):  # the mask fills its box: its surroundings are the box's border
        outside = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    median_out = np.median(outside, axis=0)
    padded = np.pad(small_m.astype(np.uint8), 1)  # the box's edge counts as the mask's edge
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    thickness = max(1.0, float(np.percentile(dist[small_m], 90)))
    sy = np.minimum((ys * (sh / h)).astype(int), sh - 1)
    sx = np.minimum((xs * (sw / w)).astype(int), sw - 1)
    d = dist[sy, sx]
    px = _lab(box_rgb[ys, xs])
    chroma = np.hypot(px[:, 1], px[:, 2])
    feats = np.empty((len(ys), N_PIXEL_FEATURES), np.float32)
    feats[:, 0] = px[:, 0] / 100.0
    feats[:, 1] = px[:, 1] / 100.0
    feats[:, 2] = px[:, 2] / 100.0
    feats[:, 3] = chroma / 100.0
    feats[:, 4] = (xs + 0.5) / w
    feats[:, 5] = (ys + 0.5) / h
    feats[:, 6] = np.minimum(d / max(1, min(sh, sw)), 0.5)
    feats[:, 7] = np.minimum(d / thickness, 1.5)
    feats[:, 8] = np.linalg.norm(px - median_in, axis=1) / 100.0
    feats[:, 9] = np.linalg.norm(px - median_out, axis=1) / 100.0
    feats[:, 10] = (px[:, 0] - median_in[0]) / 100.0
    feats[:, 11] = np.log(h / w)
    feats[:, 12] = small_m.mean()
    return feats


def sample_mask_pixels(mask: np.ndarray, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)`` of the mask's pixels in row-major order, every k-th one so at most ``max_pixels``
    (the regular subsample :func:`fashionlens.colours.naming.garment_pixels` takes)."""
    ys, xs = np.nonzero(mask)
    if len(ys) > max_pixels:
        step = int(np.ceil(len(ys) / max_pixels))
        ys, xs = ys[::step], xs[::step]
    return ys, xs


class GarmentPixelFilter:
    """An MLP (``relu`` hidden layer, logistic output) on :func:`pixel_features`: the probability
    that a masked pixel is *not* the garment's (skin, hair, background)."""

    def __init__(self, *, mean: np.ndarray, scale: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray,
                 b2: np.ndarray, threshold: float = 0.5, min_kept: float = 0.3,
                 meta: dict[str, Any] | None = None) -> None:
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.scale = np.asarray(scale, np.float32).reshape(-1)
        self.w1 = np.asarray(w1, np.float32)
        self.b1 = np.asarray(b1, np.float32).reshape(-1)
        self.w2 = np.asarray(w2, np.float32).reshape(-1)
        self.b2 = float(np.asarray(b2).reshape(-1)[0])
        hidden = self.w1.shape[1] if self.w1.ndim == 2 else -1
        if (self.mean.shape != (N_PIXEL_FEATURES,) or self.scale.shape != (N_PIXEL_FEATURES,)
                or self.w1.shape != (N_PIXEL_FEATURES, hidden) or self.b1.shape != (hidden,)
                or self.w2.shape != (hidden,)):
            raise ValueError(f"expected an MLP on {N_PIXEL_FEATURES} features (mean, scale ({N_PIXEL_FEATURES},), "
                             f"w1 ({N_PIXEL_FEATURES}, H), b1 (H,), w2 (H,)), got mean {self.mean.shape}, "
                             f"scale {self.scale.shape}, w1 {self.w1.shape}, b1 {self.b1.shape}, w2 {self.w2.shape}")
        if not 0 < threshold < 1 or not 0 <= min_kept <= 1:
            raise ValueError(f"expected threshold in (0, 1) and min_kept in [0, 1], got {threshold} and {min_kept}")
        self.threshold = float(threshold)
        self.min_kept = float(min_kept)
        self.meta = dict(meta or {})

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(N, N_PIXEL_FEATURES)`` features → ``(N,)`` probability of not being garment."""
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        z = hidden @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def keep(self, box_rgb: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: which of the mask pixels at ``(ys, xs)`` are the garment's own. All of them when
        fewer than ``min_kept`` would be."""
        if len(ys) == 0:
            return np.zeros(0, bool)
        return self.keep_features(pixel_features(box_rgb, mask, ys, xs))

    def keep_features(self, features: np.ndarray) -> np.ndarray:
        """:meth:`keep` for one garment's pixels already turned into :func:`pixel_features`."""
        keep = self.predict_proba(features) < self.threshold
        if len(keep) and keep.mean() < self.min_kept:
            return np.ones(len(keep), bool)
        return keep

    def save(self, path: str | Path) -> None:
        meta = {**self.meta, "threshold": self.threshold, "min_kept": self.min_kept,
                "features": list(FEATURE_NAMES)}
        save_npz_weights(path, fmt=PIXEL_FILTER_FORMAT, meta=meta,
                         arrays={"mean": self.mean, "scale": self.scale, "w1": self.w1, "b1": self.b1,
                                 "w2": self.w2, "b2": np.array([self.b2], np.float32)})

    @classmethod
    def load(cls, path: str | Path) -> GarmentPixelFilter:
        meta, arrays = load_npz_weights(path, fmt=PIXEL_FILTER_FORMAT, what="garment pixel filter")
        if list(meta.get("features", [])) != list(FEATURE_NAMES):
            raise ValueError(f"{path}: garment pixel filter expects features {list(FEATURE_NAMES)}, "
                             f"the file was trained on {meta.get('features')}")
        return cls(mean=arrays["mean"], scale=arrays["scale"], w1=arrays["w1"], b1=arrays["b1"], w2=arrays["w2"],
                   b2=arrays["b2"], threshold=float(meta["threshold"]), min_kept=float(meta["min_kept"]),
                   meta={k: v for k, v in meta.items() if k not in ("threshold", "min_kept", "features")})


def default_filter_path() -> Path:
    """Path of the shipped filter inside the installed package."""
    return Path(str(resources.files("fashionlens").joinpath("weights", DEFAULT_PIXEL_FILTER_FILE)))


@lru_cache(maxsize=1)
def default_pixel_filter() -> GarmentPixelFilter:
    """The shipped filter (``weights/garment-pixel-filter.npz``), loaded once."""
    return GarmentPixelFilter.load(default_filter_path())
