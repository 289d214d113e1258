"""Cross-type duplicates (fashionlens.detection.cross_type) on hand-made boxes with known answers, and the
Tagger step that applies the rule to the final object types."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fashionlens.detection.cross_type import (
    DEFAULT_CROSS_TYPE,
    CrossTypeRule,
    cross_type_pairs,
    footwear_pair_boxes,
)
from fashionlens.result import Garments, Label
from fashionlens.runtime.detector_postprocess import box_iou

A = [0, 0, 100, 100]
B = [0, 0, 100, 110]  # IoU(A, B) = 0.909
C = [0, 0, 100, 150]  # IoU(A, C) = 0.667, IoU(B, C) = 0.733
D = [0, 0, 100, 142]  # IoU(A, D) = 0.704: just above 0.7
E = [0, 0, 100, 143]  # IoU(A, E) = 0.699: just below 0.7
FAR = [200, 200, 260, 260]


def _keep(*items: tuple[str, float, Sequence[float]], rule: CrossTypeRule = CrossTypeRule()) -> list[int]:
    return rule.keep(np.array([b for _, _, b in items], np.float64).reshape(-1, 4), [t for t, _, _ in items],
                     np.array([s for _, s, _ in items])).tolist()


CASES = [
    ("empty", [], []),
    ("one", [("upper-body", 0.9, A)], [0]),
    ("different types, IoU 0.91: the higher score stays", [("upper-body", 0.9, A), ("full-body", 0.8, B)], [0]),
    ("the higher score second", [("full-body", 0.6, A), ("upper-body", 0.9, B)], [1]),
    ("IoU just above 0.7", [("lower-body", 0.9, A), ("full-body", 0.8, D)], [0]),
    ("IoU just below 0.7: both stay", [("lower-body", 0.9, A), ("full-body", 0.8, E)], [0, 1]),
    ("same final type (a copy type fusion made): the higher score stays", [("upper-body", 0.9, A),
                                                                            ("upper-body", 0.8, B)], [0]),
    ("far apart", [("upper-body", 0.9, A), ("full-body", 0.8, FAR)], [0, 1]),
    # chain: B (0.8) is suppressed by A (0.9); C overlaps B (0.73) but not A (0.67), and B is gone: C stays
    ("chain of three", [("upper-body", 0.9, A), ("full-body", 0.8, B), ("lower-body", 0.7, C)], [0, 2]),
    # the middle one highest: it suppresses both neighbours
    ("chain, middle highest", [("upper-body", 0.7, A), ("full-body", 0.9, B), ("lower-body", 0.8, C)], [1]),
    # tie (calibrated plateau): the detector's order decides, the first stays
    ("tie: the first in the detector's order stays", [("full-body", 0.8, A), ("upper-body", 0.8, B)], [0]),
    ("tie, other order", [("upper-body", 0.8, B), ("full-body", 0.8, A)], [0]),
]


@pytest.mark.parametrize("items, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_keep(items: list[tuple[str, float, Sequence[float]]], expected: list[int]) -> None:
    assert _keep(*items) == expected


def test_across_types_only() -> None:
    rule = CrossTypeRule(same_type=False)
    assert _keep(("upper-body", 0.9, A), ("upper-body", 0.8, B), rule=rule) == [0, 1]  # NMS's business
    assert _keep(("upper-body", 0.9, A), ("full-body", 0.8, B), rule=rule) == [0]
    assert str(rule) == "box IoU > 0.7 across types, footwear one box per shoe"
    assert str(DEFAULT_CROSS_TYPE) == "box IoU > 0.7, footwear one box per shoe"


def test_output_never_has_a_cross_type_pair() -> None:
    rng = np.random.default_rng(0)
    types = ["upper-body", "lower-body", "full-body", "footwear", "bag", "headwear"]
    for _ in range(200):
        n = int(rng.integers(2, 12))
        xy = rng.uniform(0, 80, (n, 2))
        wh = rng.uniform(10, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        boxes[n // 2:] = boxes[: n - n // 2] + rng.normal(0, 2, (n - n // 2, 4)).clip(-1.5, 1.5)  # near-copies
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        t = [types[int(k)] for k in rng.integers(0, len(types), n)]
        scores = rng.choice([0.5, 0.7, 0.9], n)  # many ties
        for same_type in (False, True):
            kept = CrossTypeRule(footwear_pairs=False, same_type=same_type).keep(boxes, t, scores)
            assert cross_type_pairs(boxes[kept], [t[i] for i in kept]) == []
            if same_type:  # no pair at all: every garment counted as a type of its own
                assert cross_type_pairs(boxes[kept], [str(i) for i in kept]) == []
            # nothing is dropped without a reason: each dropped garment overlaps a kept, not lower-scored one
            iou = box_iou(boxes, boxes)
            for i in sorted(set(range(n)) - set(kept.tolist())):
                assert any(iou[i, j] > 0.7 and scores[j] >= scores[i] and (same_type or t[i] != t[j])
                           for j in kept), (i, kept)


def test_cross_type_pairs() -> None:
    boxes = np.array([A, B, C, FAR], np.float64)
    pairs = cross_type_pairs(boxes, ["upper-body", "full-body", "lower-body", "bag"])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 2)]
    assert pairs[0][2] == pytest.approx(100 / 110, rel=1e-5)
    assert cross_type_pairs(boxes, ["bag"] * 4) == []
    with pytest.raises(ValueError, match="one object type per box"):
        cross_type_pairs(boxes, ["bag"])


LEFT, RIGHT = [10, 100, 50, 130], [55, 102, 95, 131]
PAIR = [8, 98, 97, 133]  # spans both shoes


def test_footwear_pair_box_found_only_with_both_shoes() -> None:
    assert footwear_pair_boxes(np.array([LEFT, RIGHT, PAIR], float), ["footwear"] * 3) == [2]
    assert footwear_pair_boxes(np.array([LEFT, PAIR], float), ["footwear"] * 2) == []  # one shoe: the box stays
    # a box the size of one shoe is not a pair box, even if a near-copy of a shoe lies inside it
    assert footwear_pair_boxes(np.array([LEFT, [10, 100, 51, 131], RIGHT], float), ["footwear"] * 3) == []
    # other object types do not count as shoes
    assert footwear_pair_boxes(np.array([LEFT, RIGHT, PAIR], float), ["footwear", "bag", "footwear"]) == []


def test_rule_drops_the_pair_box_and_keeps_the_shoes() -> None:
    kept = _keep(("footwear", 0.9, PAIR), ("footwear", 0.7, LEFT), ("footwear", 0.6, RIGHT))
    assert kept == [1, 2]
    assert _keep(("footwear", 0.9, PAIR), ("footwear", 0.7, LEFT), ("footwear", 0.6, RIGHT),
                 rule=CrossTypeRule(footwear_pairs=False)) == [0, 1, 2]
    # min_score: shoes below the run-time threshold do not take part (an evaluation keeping candidates ≥ 0.05)
    boxes = np.array([PAIR, LEFT, RIGHT], float)
    assert CrossTypeRule().keep(boxes, ["footwear"] * 3, np.array([0.9, 0.7, 0.3]), min_score=0.5).tolist() == [0, 1, 2]


def test_rule_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="box IoU in"):
        CrossTypeRule(iou=1.0)
    with pytest.raises(ValueError, match="one object type and score per box"):
        CrossTypeRule().keep(np.array([A, B], float), ["bag"], np.array([0.5, 0.4]))


def test_apply_keeps_every_field_of_the_kept_garments() -> None:
    g = Garments(xyxy=np.array([A, B, FAR], float), object_type=["full-body", "lower-body", "bag"],
                 confidence=[0.6, 0.9, 0.5], mask=np.zeros((3, 8, 8), bool),
                 category=[Label("dresses", 0.5), Label("skirts", 0.8), Label("bags", 0.9)],
                 category_top=[[], [], []], attributes=[{}, {}, {}], embedding=np.eye(3, 4, dtype=np.float32))
    out = DEFAULT_CROSS_TYPE.apply(g)
    assert out.object_type == ["lower-body", "bag"]
    assert [c.id for c in out.category] == ["skirts", "bags"]
    assert out.embedding.tolist() == np.eye(3, 4)[[1, 2]].tolist()
    assert out.mask.shape == (2, 8, 8)
