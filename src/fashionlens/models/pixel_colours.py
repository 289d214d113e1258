"""Colour names learnt from a garment's own pixels, combined with the classifier's colour head.

The classifier's colour head sees a 224 px squashed photo, backdrop included. When the garment's
pixels are known (its detector mask, or the plain backdrop of a sorting-station photo:
:mod:`fashionlens.colours.backdrop`), a second opinion comes from them: a histogram of their hue, chroma and
lightness in CIELAB (:func:`colour_features`), and one logistic regression per palette colour
(:class:`PixelColourModel`) fitted on labelled garments (RISE). The two opinions are averaged:

    p = w · p_head + (1 − w) · p_pixels,  kept when p ≥ w · t_head + (1 − w) · t_pixels

(top colour always kept), with ``w`` fixed (0.5, not tuned) and ``t_pixels`` chosen by group
cross-validation on the training split. Weights are one small ``.npz`` (NumPy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashionlens.models.weights_io import load_npz_weights, save_npz_weights

PIXEL_COLOUR_FORMAT = "fashionlens/pixel-colours/v1"

#: hue sectors (22.5° each) × chroma bands × lightness bands for chromatic pixels
_HUE_BINS, _CHROMA_EDGES, _LIGHT_EDGES = 16, (20.0, 40.0), (35.0, 65.0)
#: lightness bands (12.5 each) for achromatic pixels (chroma below this)
_ACHROMATIC_CHROMA, _GREY_BINS = 8.0, 8
#: the histogram is computed on at most this many pixels (regular subsample)
MAX_PIXELS = 8192
N_FEATURES = _HUE_BINS * 3 * 3 + _GREY_BINS + 5


def colour_features(pixels: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 RGB garment pixels → ``(N_FEATURES,)`` float64 features.

    Square roots of the shares of pixels in each hue × chroma × lightness cell (chromatic pixels)
    and each lightness band (achromatic pixels), then mean lightness, median and spread of chroma,
    spread of lightness and the chromatic share.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected (N, 3) uint8 RGB pixels, got shape {pixels.shape} dtype {pixels.dtype}")
    if len(pixels) == 0:
        raise ValueError("expected at least one garment pixel, got none")
    pixels = pixels[:: max(1, len(pixels) // MAX_PIXELS)]
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    light, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = (np.degrees(np.arctan2(b, a)) + 360.0) % 360.0
    chromatic = chroma >= _ACHROMATIC_CHROMA
    hb = np.minimum((hue / (360.0 / _HUE_BINS)).astype(int), _HUE_BINS - 1)
    cell = hb * 9 + np.digitize(chroma, _CHROMA_EDGES) * 3 + np.digitize(light, _LIGHT_EDGES)
    coloured = np.bincount(cell[chromatic], minlength=_HUE_BINS * 9)
    grey = np.bincount(np.minimum((light[~chromatic] / (100.0 / _GREY_BINS)).astype(int), _GREY_BINS - 1),
                       minlength=_GREY_BINS)
    hist = np.concatenate([coloured, grey]).astype(np.float64) / len(light)
    stats = np.array([light.mean() / 100, np.median(chroma) / 50, chroma.std() / 50, light.std() / 50,
                      chromatic.mean()])
    return np.concatenate([np.sqrt(hist), stats])


@dataclass
class PixelColourModel:
    """One logistic regression per colour on :func:`colour_features`, and how to combine it with the head."""

    values: tuple[str, ...]  # colour names, in the classifier's colour-head order
    coef: np.ndarray  # (K, N_FEATURES)
    intercept: np.ndarray  # (K,)
    threshold: float  # t_pixels
    head_weight: float = 0.5  # w
    metrics: dict[str, Any] | None = None
    training: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.values = tuple(self.values)
        self.coef = np.asarray(self.coef, np.float64)
        self.intercept = np.asarray(self.intercept, np.float64)
        k = len(self.values)
        if self.coef.shape != (k, N_FEATURES) or self.intercept.shape != (k,):
            raise ValueError(f"expected coef ({k}, {N_FEATURES}) and intercept ({k},) for {k} colours, "
                             f"got {self.coef.shape} and {self.intercept.shape}")
        if not 0 <= self.head_weight <= 1 or not 0 < self.threshold < 1:
            raise ValueError(f"expected head_weight in [0, 1] and threshold in (0, 1), "
                             f"got {self.head_weight} and {self.threshold}")

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(N_FEATURES,)`` or ``(n, N_FEATURES)`` features → per-colour probabilities."""
        z = np.asarray(features, np.float64) @ self.coef.T + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def check_head(self, head_values: Sequence[str]) -> None:
        if tuple(head_values) != self.values:
            raise ValueError(f"pixel colour model expects the colour head's values {list(self.values)}, "
                             f"got {list(head_values)}")

    def combine(self, head_probs: np.ndarray, pixel_probs: np.ndarray, head_threshold: float
                ) -> tuple[np.ndarray, float]:
        """``(probabilities, threshold)`` of the combined decision (see the module docstring)."""
        w = self.head_weight
        return (w * np.asarray(head_probs, np.float64) + (1 - w) * pixel_probs,
                w * head_threshold + (1 - w) * self.threshold)

    def save(self, path: str | Path) -> None:
        meta = {"values": list(self.values), "threshold": self.threshold, "head_weight": self.head_weight,
                "metrics": self.metrics or {}, "training": self.training or {}}
        save_npz_weights(path, fmt=PIXEL_COLOUR_FORMAT, meta=meta,
                         arrays={"coef": self.coef.astype(np.float32), "intercept": self.intercept.astype(np.float32)})

    @classmethod
    def load(cls, path: str | Path) -> PixelColourModel:
        meta, arrays = load_npz_weights(path, fmt=PIXEL_COLOUR_FORMAT, what="pixel colour model")
        return cls(values=tuple(meta["values"]), coef=arrays["coef"], intercept=arrays["intercept"],
                   threshold=float(meta["threshold"]), head_weight=float(meta["head_weight"]),
                   metrics=meta.get("metrics"), training=meta.get("training"))
