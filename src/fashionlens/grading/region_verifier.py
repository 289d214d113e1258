"""A second look at damage candidates: keep or drop each region by its features, not pixel by pixel.

The damage head alone cannot tell a small, faint stain from the cloth's own print or a shadow, so
the 5 % false-damage budget forces a strict threshold and large minimum regions that also drop real
damage. The verifier instead decodes *candidates* at a low threshold (connected components per
damage type inside the garment) and scores each one with a logistic regression on
:data:`FEATURES`: its size, the head's probabilities over it, its colour contrast with a ring of
cloth around it (CIELAB), texture inside and around it, its shape, whether it sits on the garment's
edge, and how busy the whole photo looks to the head. Candidates scoring at least
``accept_threshold`` are kept.

:func:`fashionlens.train.region_verifier.fit_region_verifier` fits it on a validation set of synthetic damage plus the same photos
clean: a candidate is real when ≥ 30 % of its pixels are painted damage. The acceptance threshold
is chosen on 2-fold cross-fitted scores (folds by photo, seeded) — the highest damage score
(:attr:`fashionlens.evaluate.damage.DamageEvaluation.score`) with at most ``max_false_rate`` of the
clean photos flagged — and the reported validation metrics are those cross-fitted ones. The final
regression is fitted on all candidates. A verifier is a few dozen numbers and is stored in the
damage weights' metadata (:meth:`RegionVerifier.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fashionlens.taxonomy import DAMAGE_TYPES

#: Region features, in the order the regression reads them.
FEATURES: tuple[str, ...] = (
    *(f"type_{t}" for t in DAMAGE_TYPES),
    "area_share", "log_area_share",             # of the garment's pixels
    "damage_prob_mean", "damage_prob_max",      # 1 − p(none) over the region
    "type_purity",                              # mean p(type) / mean damage probability
    "delta_L", "delta_a", "delta_b", "delta_E",  # CIELAB mean inside − mean of the ring around it
    "L_std_inside", "L_std_ring",               # texture
    "fill",                                     # area / bounding-box area
    "at_edge",                                  # share of the ring outside the garment
    "photo_damage_mean",                        # mean damage probability over the garment
    "photo_candidate_share",                    # candidate pixels / garment pixels
)
REAL_REGION_SHARE = 0.3  # a candidate is real damage when this share of its pixels is painted damage
_RING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
_PAD = 10


@dataclass(frozen=True)
class Candidates:
    """Candidate regions of one photo at the damage head's resolution."""

    labels: np.ndarray    # H×W int32: 0 = none, j = candidate j − 1
    types: np.ndarray     # (N,) damage class of each candidate, 1..K (``DAMAGE_TYPES[k − 1]``)
    features: np.ndarray  # (N, len(FEATURES)) float32

    def __len__(self) -> int:
        return len(self.types)

    def damage_map(self, keep: np.ndarray) -> np.ndarray:
        """``H×W`` uint8 damage map of the kept candidates (``keep``: (N,) bool)."""
        lut = np.zeros(len(self.types) + 1, np.uint8)
        lut[1:] = np.where(np.asarray(keep, bool), self.types, 0)
        return lut[self.labels]


def candidate_regions(probs: np.ndarray, rgb: np.ndarray, garment: np.ndarray | None, *,
                      threshold: float) -> Candidates:
    """Candidates of ``(K, H, W)`` damage probabilities: per damage type, the connected components of
    pixels with ``1 − p(none) ≥ threshold`` inside ``garment`` (``H×W`` bool; None = whole photo).
    ``rgb``: the ``H×W×3`` uint8 photo at the same resolution."""
    probs = np.asarray(probs, np.float32)
    if probs.ndim != 3 or probs.shape[0] != len(DAMAGE_TYPES) + 1:
        raise ValueError(f"expected ({len(DAMAGE_TYPES) + 1}, H, W) probabilities, got {probs.shape}")
    h, w = probs.shape[1:]
    if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"expected a {h}×{w}×3 uint8 photo matching the probabilities, got {rgb.shape} {rgb.dtype}")
    garment = np.ones((h, w), bool) if garment is None else np.asarray(garment, bool)
    if garment.shape != (h, w):
        raise ValueError(f"expected a {h}×{w} garment mask, got {garment.shape}")
    damage = 1.0 - probs[0]
    types = probs[1:].argmax(0) + 1
    cand = (damage >= threshold) & garment
    labels = np.zeros((h, w), np.int32)
    g_area = max(float(garment.sum()), 1.0)
    photo = [float(damage[garment].mean()) if garment.any() else 0.0, float(cand.sum()) / g_area]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32) if cand.any() else None
    rtypes: list[int] = []
    rows: list[list[float]] = []
    for k in range(1, probs.shape[0]):
        m = (cand & (types == k)).astype(np.uint8)
        if not m.any():
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        for j in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[j])
            x0, y0 = max(0, x - _PAD), max(0, y - _PAD)
            x1, y1 = min(w, x + bw + _PAD), min(h, y + bh + _PAD)
            inside = comp[y0:y1, x0:x1] == j
            ring = cv2.dilate(inside.astype(np.uint8), _RING).astype(bool) & ~inside
            ring_in = ring & garment[y0:y1, x0:x1]
            patch = lab[y0:y1, x0:x1]  # type: ignore[index]
            lab_in = patch[inside]
            lab_ring = patch[ring_in] if ring_in.sum() >= 5 else lab_in
            d = lab_in.mean(0) - lab_ring.mean(0)
            dmg = damage[y0:y1, x0:x1][inside]
            p_type = probs[k, y0:y1, x0:x1][inside]
            onehot = [float(k == c) for c in range(1, probs.shape[0])]
            rows.append([*onehot, area / g_area, float(np.log(area / g_area)), float(dmg.mean()), float(dmg.max()),
                         float(p_type.mean() / max(dmg.mean(), 1e-3)), *(float(v) for v in d),
                         float(np.sqrt((d ** 2).sum())), float(lab_in[:, 0].std()), float(lab_ring[:, 0].std()),
                         area / float(bw * bh), 1.0 - float(ring_in.sum()) / max(1.0, float(ring.sum())), *photo])
            rtypes.append(k)
            labels[y0:y1, x0:x1][inside] = len(rtypes)
    return Candidates(labels, np.array(rtypes, np.uint8), np.array(rows, np.float32).reshape(-1, len(FEATURES)))


@dataclass(frozen=True)
class RegionVerifier:
    """Candidate threshold, standardisation and logistic regression, and the acceptance threshold."""

    candidate_threshold: float
    accept_threshold: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        if tuple(self.features) != FEATURES:
            raise ValueError(f"region verifier: expected features {list(FEATURES)}, got {list(self.features)} "
                             "(fitted by another version of fashionlens; refit it)")
        for name in ("mean", "scale", "coef"):
            if len(getattr(self, name)) != len(FEATURES):
                raise ValueError(f"region verifier: expected {len(FEATURES)} values in {name}, "
                                 f"got {len(getattr(self, name))}")
        if not 0 < self.candidate_threshold < 1:
            raise ValueError(f"region verifier: candidate_threshold must be in (0, 1), got {self.candidate_threshold}")

    def scores(self, candidates: Candidates) -> np.ndarray:
        """Probability that each candidate is real damage."""
        if not len(candidates):
            return np.zeros(0, np.float32)
        z = (candidates.features - np.asarray(self.mean, np.float32)) / np.asarray(self.scale, np.float32)
        logit = z @ np.asarray(self.coef, np.float32) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def decode(self, probs: np.ndarray, rgb: np.ndarray, garment: np.ndarray | None = None) -> np.ndarray:
        """``H×W`` uint8 damage map (0 none, k = ``DAMAGE_TYPES[k-1]``) of the accepted candidates."""
        cand = candidate_regions(probs, rgb, garment, threshold=self.candidate_threshold)
        return cand.damage_map(self.scores(cand) >= self.accept_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"candidate_threshold": self.candidate_threshold, "accept_threshold": self.accept_threshold,
                "mean": list(self.mean), "scale": list(self.scale), "coef": list(self.coef),
                "intercept": self.intercept, "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegionVerifier:
        expected = {"candidate_threshold", "accept_threshold", "mean", "scale", "coef", "intercept", "features"}
        if set(d) != expected:
            raise ValueError(f"region verifier: expected keys {sorted(expected)}, got {sorted(d)}")
        return cls(candidate_threshold=float(d["candidate_threshold"]), accept_threshold=float(d["accept_threshold"]),
                   mean=tuple(float(v) for v in d["mean"]), scale=tuple(float(v) for v in d["scale"]),
                   coef=tuple(float(v) for v in d["coef"]), intercept=float(d["intercept"]),
                   features=tuple(d["features"]))
