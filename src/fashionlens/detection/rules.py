"""Optional post-processing rules for detections, from the source pipeline's observed failures.

Each rule takes :class:`~fashionlens.result.Garments` (all candidates, before the score
threshold) and returns the ones it keeps. Whether a rule helps is measured on the validation split
(``experiments/README.md``); none is on by default unless it measurably helped.

* ``duplicates``: one garment detected as two object types (a dress as ``full-body`` and
  ``upper-body``): boxes of *different* types overlapping with IoU > 0.7 keep only the higher score. This runs on
  the detector's own types, before type fusion; ``tag`` applies the same rule to the final (fused) object types
  after classification (:mod:`fashionlens.detection.cross_type`, ``docs/detection.md``).
* ``hand_footwear``: hands detected as footwear: footwear whose box centre lies above the vertical
  middle of the best-scoring ``lower-body``/``full-body`` box is dropped (kept when there is none).
* ``sparse_mask``: bare legs detected as ``lower-body`` (and similar): a detection whose mask fills
  less than 25 % of its box is dropped (needs masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fashionlens.detection.cross_type import CROSS_TYPE_IOU, CrossTypeRule
from fashionlens.detection.settings import RULE_NAMES
from fashionlens.result import Garments

DUPLICATE_IOU = CROSS_TYPE_IOU
SPARSE_MASK_FILL = 0.25


def duplicates(g: Garments, **_: object) -> Garments:
    return CrossTypeRule(DUPLICATE_IOU, footwear_pairs=False, same_type=False).apply(g)


def hand_footwear(g: Garments, **_: object) -> Garments:
    body = [i for i in g if g.object_type[i] in ("lower-body", "full-body")]
    if not body:
        return g
    best = max(body, key=lambda i: g.confidence[i])
    middle = (g.xyxy[best, 1] + g.xyxy[best, 3]) / 2
    centre_y = (g.xyxy[:, 1] + g.xyxy[:, 3]) / 2
    keep = np.array([g.object_type[i] != "footwear" or centre_y[i] >= middle for i in g], dtype=bool)
    return g.select(keep)


def sparse_mask(g: Garments, **_: object) -> Garments:
    if g.mask is None or not len(g):
        return g
    keep = np.ones(len(g), dtype=bool)
    for i in g:
        x0, y0, x1, y1 = (int(round(v)) for v in g.xyxy[i])
        area = max(1, (x1 - x0) * (y1 - y0))
        keep[i] = g.mask[i, max(0, y0):y1, max(0, x0):x1].sum() / area >= SPARSE_MASK_FILL
    return g.select(keep)


RULES: dict[str, Callable[..., Garments]] = {
    "duplicates": duplicates,
    "hand_footwear": hand_footwear,
    "sparse_mask": sparse_mask,
}
if tuple(RULES) != RULE_NAMES:
    raise ImportError(f"detection.settings.RULE_NAMES {RULE_NAMES} must list the rules {tuple(RULES)}")


def apply_rules(garments: Garments, rules: Sequence[str], **context: object) -> Garments:
    """Apply ``rules`` (names of :data:`RULES`) in the given order."""
    for name in rules:
        try:
            rule = RULES[name]
        except KeyError:
            raise ValueError(f"unknown post-processing rule {name!r}; expected one of {sorted(RULES)}") from None
        garments = rule(garments, **context)
    return garments
