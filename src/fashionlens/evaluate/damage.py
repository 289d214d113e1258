"""Damage-head metrics: pixel IoU per type, region recall per type, false damage on clean photos.

* **decoding**: a pixel is damaged when ``1 − p(none) ≥ threshold``; its type is the most probable
  damage class; predicted regions (connected components) smaller than ``min_region_share`` of the
  garment are dropped;
* **IoU** per damage type, accumulated over all pixels of the damaged set; **mIoU** = their mean;
* **region recall** per type: a painted region counts as found when at least ``REGION_HIT`` of its
  pixels are predicted as its type;
* **false damage rate**: the share of *clean* photos with at least one predicted region.

:func:`evaluate_damage_maps` scores maps decoded any other way (e.g. by the region verifier,
:mod:`fashionlens.grading.region_verifier`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fashionlens.models.damage import (  # noqa: F401 - decode_damage re-exported for the metrics' callers
    MinRegionShare,
    decode_damage,
    decode_prepared,
    prepare_damage,
)
from fashionlens.taxonomy import DAMAGE_TYPES

REGION_HIT = 0.3
THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
MIN_REGION_SHARES: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004)


@dataclass
class DamageEvaluation:
    threshold: float
    min_region_share: float | list[float]
    iou: dict[str, float]
    miou: float
    region_recall: dict[str, float]
    regions: dict[str, int]
    false_damage_rate: float
    clean_photos: int
    damaged_photos: int
    verifier_threshold: float | None = None  # set when a region verifier decided (threshold = its candidates')

    @property
    def score(self) -> float:
        """Model selection: mean of mIoU and the mean region recall."""
        return 0.5 * self.miou + 0.5 * float(np.mean(list(self.region_recall.values())))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}


def _as_prepared(p: Any) -> tuple[np.ndarray, np.ndarray]:
    return p if isinstance(p, tuple) else prepare_damage(p)


def _garment_for(garments: Sequence[np.ndarray] | None, i: int) -> np.ndarray | None:
    return None if garments is None else np.asarray(garments[i], bool)


def evaluate_damage_predictions(probs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                                regions: Sequence[Sequence[Any]], clean_probs: Sequence[np.ndarray],
                                garments: Sequence[np.ndarray] | None, *, threshold: float,
                                min_region_share: MinRegionShare) -> DamageEvaluation:
    """Metrics of one decoding setting. ``regions[i]``: the painted regions of photo ``i`` (objects
    with ``type`` and ``bbox_xyxy``); ``garments[i]``: the photo's garment mask (same for clean)."""
    if len(probs) != len(targets) or len(probs) != len(regions):
        raise ValueError(f"expected as many targets and region lists as predictions, got "
                         f"{len(probs)}, {len(targets)}, {len(regions)}")

    def decode(p: Any, i: int) -> np.ndarray:
        return decode_prepared(_as_prepared(p), threshold=threshold, garment=_garment_for(garments, i),
                                min_region_share=min_region_share)

    share = min_region_share if isinstance(min_region_share, (int, float)) else [float(v) for v in min_region_share]
    return evaluate_damage_maps((decode(p, i) for i, p in enumerate(probs)), targets, regions,
                                (decode(p, i) for i, p in enumerate(clean_probs)), threshold=threshold,
                                min_region_share=share)


def evaluate_damage_maps(pred_maps: Iterable[np.ndarray], targets: Sequence[np.ndarray],
                         regions: Sequence[Sequence[Any]], clean_maps: Iterable[np.ndarray], *, threshold: float,
                         min_region_share: float | list[float] = 0.0,
                         verifier_threshold: float | None = None) -> DamageEvaluation:
    """Metrics of decoded ``H×W`` damage maps (0 none, k = ``DAMAGE_TYPES[k-1]``), one per damaged photo
    in ``targets`` order, and of the clean photos' maps. ``threshold``/``min_region_share``/
    ``verifier_threshold`` only describe the decoding in the result."""
    k = len(DAMAGE_TYPES)
    inter, union = np.zeros(k), np.zeros(k)
    hits, counts = np.zeros(k), np.zeros(k)
    n_damaged = 0
    for i, pred in enumerate(pred_maps):
        if i >= len(targets):
            raise ValueError(f"expected {len(targets)} predicted maps (one per target), got more")
        t = targets[i]
        if pred.shape != t.shape:
            raise ValueError(f"photo {i}: predicted map {pred.shape} and target {t.shape} differ in size")
        n_damaged += 1
        for c in range(k):
            pc, tc = pred == c + 1, t == c + 1
            inter[c] += np.logical_and(pc, tc).sum()
            union[c] += np.logical_or(pc, tc).sum()
        for r in regions[i]:
            c = DAMAGE_TYPES.index(r.type)
            x0, y0, x1, y1 = r.bbox_xyxy
            region = t[y0:y1, x0:x1] == c + 1
            if not region.any():
                continue
            counts[c] += 1
            hits[c] += float((pred[y0:y1, x0:x1][region] == c + 1).mean() >= REGION_HIT)
    if n_damaged != len(targets):
        raise ValueError(f"expected {len(targets)} predicted maps (one per target), got {n_damaged}")
    flagged = n_clean = 0
    for pred in clean_maps:
        n_clean += 1
        flagged += int(pred.any())
    iou = {DAMAGE_TYPES[c]: float(inter[c] / union[c]) if union[c] else 0.0 for c in range(k)}
    recall = {DAMAGE_TYPES[c]: float(hits[c] / counts[c]) if counts[c] else 0.0 for c in range(k)}
    return DamageEvaluation(threshold=threshold, min_region_share=min_region_share, iou=iou,
                            miou=float(np.mean(list(iou.values()))), region_recall=recall,
                            regions={DAMAGE_TYPES[c]: int(counts[c]) for c in range(k)},
                            false_damage_rate=flagged / max(1, n_clean), clean_photos=n_clean,
                            damaged_photos=n_damaged, verifier_threshold=verifier_threshold)


def choose_threshold(probs: Sequence[np.ndarray], targets: Sequence[np.ndarray], regions: Sequence[Sequence[Any]],
                     clean_probs: Sequence[np.ndarray], garments: Sequence[np.ndarray] | None, *,
                     max_false_rate: float = 0.05, per_type: bool = False) -> tuple[float, float | list[float]]:
    """The ``(threshold, min_region_share)`` with the best score among those whose false damage rate
    on the clean photos is at most ``max_false_rate`` (else the one with the lowest rate).

    ``per_type``: after the grid over one shared minimum region, refine one minimum per damage type
    (coordinate search over :data:`MIN_REGION_SHARES`, two passes) at each threshold.
    """
    prepared = [prepare_damage(p) for p in probs]
    clean = [prepare_damage(p) for p in clean_probs]

    def run(t: float, m: MinRegionShare) -> DamageEvaluation:
        return evaluate_damage_predictions(prepared, targets, regions, clean, garments, threshold=t, min_region_share=m)

    def key(r: DamageEvaluation) -> tuple[bool, float]:
        ok = r.false_damage_rate <= max_false_rate
        return (ok, r.score if ok else -r.false_damage_rate)

    results = [run(t, m) for t in THRESHOLDS for m in MIN_REGION_SHARES]
    best = max(results, key=key)
    if per_type:
        for t in THRESHOLDS:
            start = max((r for r in results if r.threshold == t), key=key)
            shares = [float(start.min_region_share)] * len(DAMAGE_TYPES)
            current = start
            for _ in range(2):
                for k in range(len(DAMAGE_TYPES)):
                    for m in (*MIN_REGION_SHARES, 0.008):
                        trial = [*shares[:k], m, *shares[k + 1:]]
                        r = run(t, trial)
                        if key(r) > key(current):
                            current, shares = r, trial
            if key(current) > key(best):
                best = current
    return best.threshold, best.min_region_share
