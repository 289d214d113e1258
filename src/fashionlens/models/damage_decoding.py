"""Damage probabilities ``(K, H, W)`` → a damage map: threshold, garment mask, small regions dropped.

NumPy and OpenCV only: the ONNX Runtime path of :class:`fashionlens.grading.damage.DamageFinder`,
the evaluation metrics and training share it without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fashionlens.taxonomy import DAMAGE_TYPES

__all__ = ["MinRegionShare", "decode_damage", "decode_prepared", "prepare_damage"]

MinRegionShare = float | Sequence[float]


def _per_type(min_region_share: MinRegionShare) -> tuple[float, ...] | None:
    if isinstance(min_region_share, (int, float)):
        return None
    values = tuple(float(v) for v in min_region_share)
    if len(values) != len(DAMAGE_TYPES):
        raise ValueError(f"min_region_share: expected one number or {len(DAMAGE_TYPES)} (one per damage type "
                         f"{DAMAGE_TYPES}), got {list(min_region_share)}")
    return values


def prepare_damage(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(damage probability 1 − p(none), most probable damage type + 1)`` of ``(K, H, W)`` probabilities."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] != len(DAMAGE_TYPES) + 1:
        raise ValueError(f"expected ({len(DAMAGE_TYPES) + 1}, H, W) probabilities, got {probs.shape}")
    return 1.0 - probs[0], (probs[1:].argmax(0) + 1).astype(np.uint8)


def decode_prepared(prepared: tuple[np.ndarray, np.ndarray], *, threshold: float, garment: np.ndarray | None,
                    min_region_share: MinRegionShare) -> np.ndarray:
    """:func:`decode_damage` of what :func:`prepare_damage` returned (to decode one photo at many settings)."""
    damage_prob, types = prepared
    damaged = damage_prob >= threshold
    if garment is not None:
        damaged &= garment
    out = np.where(damaged, types, 0).astype(np.uint8)
    if not damaged.any():
        return out
    area = float(garment.sum()) if garment is not None else float(damaged.size)
    per_type = _per_type(min_region_share)
    if per_type is None:
        if min_region_share > 0:
            _n, labels, stats, _ = cv2.connectedComponentsWithStats(damaged.astype(np.uint8), connectivity=8)
            small = np.nonzero(stats[1:, cv2.CC_STAT_AREA] < min_region_share * area)[0] + 1
            if len(small):
                out[np.isin(labels, small)] = 0
        return out
    for k, share in enumerate(per_type, start=1):
        if share <= 0 or not (out == k).any():
            continue
        _n, labels, stats, _ = cv2.connectedComponentsWithStats((out == k).astype(np.uint8), connectivity=8)
        small = np.nonzero(stats[1:, cv2.CC_STAT_AREA] < share * area)[0] + 1
        if len(small):
            out[np.isin(labels, small)] = 0
    return out


def decode_damage(probs: np.ndarray, *, threshold: float, garment: np.ndarray | None = None,
                  min_region_share: MinRegionShare = 0.0) -> np.ndarray:
    """``(K, H, W)`` probabilities → ``H×W`` uint8 damage map (0 none, k = ``DAMAGE_TYPES[k-1]``).

    ``min_region_share``: one number (regions of any damage smaller than that share of the garment
    are dropped) or one per damage type (regions of each type are measured on their own).
    """
    return decode_prepared(prepare_damage(probs), threshold=threshold, garment=garment, min_region_share=min_region_share)
