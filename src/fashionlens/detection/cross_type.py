"""One region, one garment: detections of different object types (or copies that type fusion made) covering the
same region.

The detector suppresses overlapping boxes only within an object type (class-wise NMS), and type fusion
(:mod:`fashionlens.detection.type_fusion`) may change a garment's type after detection, so one skirt can come
out as both ``lower-body`` and ``full-body``, or one coat as ``upper-body`` and ``full-body``.
:class:`CrossTypeRule` runs on the garments' **final** object types (after type fusion, as ``tag`` emits them):
highest score first, a garment is kept unless a kept garment of another type overlaps it with box IoU above
``iou`` (0.7) — or, with ``same_type`` (the default), a kept garment of the same type: type fusion can turn a
``full-body`` box into a second ``upper-body`` box over the same coat, which the detector's class-wise NMS never
saw. So no two garments in the output overlap that much, by construction.
Scores are the calibrated detector scores ``tag`` reports; the calibration is one monotone map for all types, so
the order is the raw detector score's order, and a tie (calibrated plateaus) keeps the detector's own order
(its raw scores, highest first). The choice of rule and its cost in AP are in ``docs/detection.md``
("Duplicates and footwear pairs").

:func:`cross_type_pairs` lists the pairs a set of garments still has (what the rule leaves none of);
:func:`footwear_pair_boxes` finds footwear boxes that span two shoes found on their own (the data's instance
rule is one box per shoe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashionlens.result import Garments
from fashionlens.runtime.detector_postprocess import box_iou

#: box IoU above which two garments of different object types are one garment (the issue's threshold)
CROSS_TYPE_IOU = 0.7
#: share of a shoe's box that must lie inside a footwear box for that box to be taken as spanning it
FOOTWEAR_INSIDE = 0.8
#: largest share of a pair box's area one shoe inside it may have
FOOTWEAR_PART = 0.75


@dataclass(frozen=True)
class CrossTypeRule:
    """Suppress the lower-scored of two garments of different object types whose boxes overlap with IoU > ``iou``;
    with ``same_type``, of any two garments (the same final type too).

    ``footwear_pairs``: also drop a footwear box that spans two other, separate footwear boxes kept in the photo
    (:func:`footwear_pair_boxes`), so a pair of shoes found both as one box and as two is reported as two, one box
    per shoe, as the detector was trained. A box over two touching shoes found only as one box stays.
    """

    iou: float = CROSS_TYPE_IOU
    footwear_pairs: bool = True
    same_type: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.iou < 1.0:
            raise ValueError(f"CrossTypeRule.iou: expected a box IoU in (0, 1), got {self.iou!r}")

    def keep(self, xyxy: np.ndarray, object_types: list[str], scores: np.ndarray, *, min_score: float = 0.0
             ) -> np.ndarray:
        """Indices of the garments kept, in their original order (see the class docstring). ``min_score``: only
        garments scoring at least this take part in the footwear-pair check (an evaluation that keeps candidates
        below the run-time threshold passes that threshold, so the check sees what ``tag`` sees)."""
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(object_types) != len(xyxy) or len(scores) != len(xyxy):
            raise ValueError(f"CrossTypeRule.keep: expected one object type and score per box, got {len(xyxy)} boxes, "
                             f"{len(object_types)} types and {len(scores)} scores")
        n = len(xyxy)
        if n < 2:
            return np.arange(n)
        iou = box_iou(xyxy, xyxy)
        kept: list[int] = []
        for i in np.argsort(-scores, kind="stable"):  # ties: the detector's order
            if all(not ((self.same_type or object_types[i] != object_types[j]) and iou[i, j] > self.iou)
                   for j in kept):
                kept.append(int(i))
        if self.footwear_pairs:
            sure = [i for i in kept if scores[i] >= min_score]
            pairs = {sure[k] for k in footwear_pair_boxes(xyxy[sure], [object_types[i] for i in sure])}
            kept = [i for i in kept if i not in pairs]
        return np.array(sorted(kept), dtype=np.int64)

    def apply(self, garments: Garments) -> Garments:
        """The garments kept (with all their fields: category, attributes, mask, embedding)."""
        if len(garments) < 2:
            return garments
        return garments.select(self.keep(garments.xyxy, garments.object_type, garments.confidence))

    def __str__(self) -> str:
        return (f"box IoU > {self.iou:g}" + ("" if self.same_type else " across types")
                + (", footwear one box per shoe" if self.footwear_pairs else ""))


def cross_type_pairs(xyxy: np.ndarray, object_types: list[str], *, iou: float = CROSS_TYPE_IOU
                     ) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, IoU)``, ``i < j``, of garments of different object types whose boxes overlap with IoU > ``iou``."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(object_types) != len(xyxy):
        raise ValueError(f"cross_type_pairs: expected one object type per box, got {len(xyxy)} boxes and "
                         f"{len(object_types)} types")
    if len(xyxy) < 2:
        return []
    m = box_iou(xyxy, xyxy)
    return [(i, j, float(m[i, j])) for i in range(len(xyxy)) for j in range(i + 1, len(xyxy))
            if object_types[i] != object_types[j] and m[i, j] > iou]


def footwear_pair_boxes(xyxy: np.ndarray, object_types: list[str]) -> list[int]:
    """Footwear boxes that span two other, separate footwear boxes: one box for a pair of shoes that were also found
    one by one. A shoe is spanned when at least :data:`FOOTWEAR_INSIDE` of its box lies inside the pair's box and
    its box is at most :data:`FOOTWEAR_PART` of the pair's area; the two shoes overlap each other with IoU < 0.5."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(object_types) != len(xyxy):
        raise ValueError(f"footwear_pair_boxes: expected one object type per box, got {len(xyxy)} boxes and "
                         f"{len(object_types)} types")
    shoes = [k for k, t in enumerate(object_types) if t == "footwear"]
    if len(shoes) < 3:
        return []
    area = np.maximum(0.0, xyxy[:, 2] - xyxy[:, 0]) * np.maximum(0.0, xyxy[:, 3] - xyxy[:, 1])
    iou = box_iou(xyxy, xyxy)
    out = []
    for k in shoes:
        spanned = []
        for m in shoes:
            if m == k or not 0 < area[m] <= FOOTWEAR_PART * area[k]:
                continue
            w = min(xyxy[k, 2], xyxy[m, 2]) - max(xyxy[k, 0], xyxy[m, 0])
            h = min(xyxy[k, 3], xyxy[m, 3]) - max(xyxy[k, 1], xyxy[m, 1])
            if max(0.0, w) * max(0.0, h) / area[m] >= FOOTWEAR_INSIDE:
                spanned.append(m)
        if any(iou[a, b] < 0.5 for n, a in enumerate(spanned) for b in spanned[n + 1:]):
            out.append(k)
    return out


#: the default of ``fashionlens tag`` (``--cross-type off`` / ``Tagger(cross_type=None)`` turns it off)
DEFAULT_CROSS_TYPE = CrossTypeRule()
