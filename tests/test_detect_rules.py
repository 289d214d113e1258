"""Post-processing rules on hand-made garments with known answers: duplicates, hand_footwear, sparse_mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fashionlens.detection.rules import (
    RULES,
    apply_rules,
    duplicates,
    hand_footwear,
    sparse_mask,
)
from fashionlens.result import Garments


def _g(*items: tuple[str, float, Sequence[float]], mask: np.ndarray | None = None) -> Garments:
    """Garments from ``(object_type, score, xyxy)``; ``data["id"]`` = input position."""
    return Garments(xyxy=np.array([b for _, _, b in items], np.float32).reshape(-1, 4),
                    object_type=[t for t, _, _ in items], confidence=[s for _, s, _ in items], mask=mask,
                    data={"id": list(range(len(items)))})


# ------------------------------------------------------------------------------ duplicates

A = [0, 0, 100, 100]
B = [0, 0, 100, 110]  # IoU(A, B) = 0.91
C = [0, 0, 100, 150]  # IoU(A, C) = 0.67, IoU(B, C) = 0.73
FAR = [200, 200, 260, 260]
HALF = [0, 0, 100, 50]  # IoU(A, HALF) = 0.5

DUPLICATE_CASES = [
    ("empty", [], []),
    ("one", [("upper-body", 0.9, A)], [0]),
    ("different types, same box: higher score wins", [("upper-body", 0.9, A), ("full-body", 0.8, B)], [0]),
    ("higher score second", [("full-body", 0.6, A), ("upper-body", 0.9, B)], [1]),
    ("same type is NMS's business, not this rule's", [("upper-body", 0.9, A), ("upper-body", 0.8, B)], [0, 1]),
    ("IoU 0.5 is not a duplicate", [("upper-body", 0.9, A), ("full-body", 0.8, HALF)], [0, 1]),
    ("far apart", [("upper-body", 0.9, A), ("footwear", 0.3, FAR)], [0, 1]),
    ("only kept boxes suppress (greedy)",
     [("footwear", 0.7, C), ("full-body", 0.8, B), ("upper-body", 0.9, A)], [0, 2]),
]


@pytest.mark.parametrize("name, items, kept", DUPLICATE_CASES, ids=[c[0] for c in DUPLICATE_CASES])
def test_duplicates(name: str, items: list, kept: list[int]) -> None:
    out = duplicates(_g(*items))
    assert out.data["id"] == kept  # kept in input order


# ------------------------------------------------------------------------------ hand_footwear

LOWER = ("lower-body", 0.8, [50, 100, 150, 300])  # vertical middle 200
HAND = ("footwear", 0.6, [20, 140, 40, 160])  # centre 150: above the middle
FOOT = ("footwear", 0.6, [60, 280, 90, 320])  # centre 300
AT_MIDDLE = ("footwear", 0.6, [60, 190, 90, 210])  # centre 200

HAND_CASES = [
    ("empty", [], []),
    ("no lower/full body: footwear kept anywhere", [HAND, ("upper-body", 0.9, [0, 0, 100, 100])], [0, 1]),
    ("hand dropped, foot kept", [LOWER, HAND, FOOT], [0, 2]),
    ("centre exactly at the middle is kept", [LOWER, AT_MIDDLE], [0, 1]),
    ("other types above the middle are kept", [("headwear", 0.5, [40, 0, 60, 20]), LOWER], [0, 1]),
    ("the best-scoring body box decides",
     [("lower-body", 0.5, [0, 0, 100, 100]), ("full-body", 0.9, [0, 100, 100, 300]), HAND], [0, 1]),
]


@pytest.mark.parametrize("name, items, kept", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_footwear(name: str, items: list, kept: list[int]) -> None:
    assert hand_footwear(_g(*items)).data["id"] == kept


# ------------------------------------------------------------------------------ sparse_mask


def _masks(fills: Sequence[int], size: int = 20) -> np.ndarray:
    """One mask per fill: the first ``fill`` pixels (row-major) of the box (0, 0, 10, 10)."""
    out = np.zeros((len(fills), size, size), bool)
    for i, n in enumerate(fills):
        box = np.zeros(100, bool)
        box[:n] = True
        out[i, :10, :10] = box.reshape(10, 10)
    return out


SPARSE_CASES = [
    ("25 % is enough", [25], [0]),
    ("24 % is not", [24], []),
    ("full and empty", [100, 0], [0]),
]


@pytest.mark.parametrize("name, fills, kept", SPARSE_CASES, ids=[c[0] for c in SPARSE_CASES])
def test_sparse_mask(name: str, fills: list[int], kept: list[int]) -> None:
    g = _g(*[("lower-body", 0.9, [0, 0, 10, 10])] * len(fills), mask=_masks(fills))
    out = sparse_mask(g)
    assert out.data["id"] == kept
    assert out.mask is not None and out.mask.shape == (len(kept), 20, 20)


def test_sparse_mask_counts_the_whole_box_area_even_outside_the_image() -> None:
    mask = np.zeros((1, 20, 20), bool)
    mask[0, :5, :5] = True  # 25 px of a 10×10 box that starts at (-5, -5)
    assert len(sparse_mask(_g(("bag", 0.5, [-5, -5, 5, 5]), mask=mask))) == 1
    mask[0, 0, 0] = False
    assert len(sparse_mask(_g(("bag", 0.5, [-5, -5, 5, 5]), mask=mask))) == 0


@pytest.mark.parametrize("g", [_g(("bag", 0.5, [0, 0, 1, 1])), Garments.empty()], ids=["no masks", "empty"])
def test_sparse_mask_without_masks_keeps_everything(g: Garments) -> None:
    assert sparse_mask(g) is g


# ------------------------------------------------------------------------------ apply_rules


def test_registry_names() -> None:
    assert set(RULES) == {"duplicates", "hand_footwear", "sparse_mask"}


@pytest.mark.parametrize("rules, kept, exception", [
    ((), [0, 1, 2, 3], None),
    (("duplicates",), [0, 2, 3], None),
    (("hand_footwear",), [0, 1, 3], None),
    (("duplicates", "hand_footwear"), [0, 3], None),
    (("hand_footwear", "duplicates"), [0, 3], None),
    (("duplicates", "typo"), None, "unknown post-processing rule 'typo'"),
])
def test_apply_rules(rules: tuple[str, ...], kept: list[int] | None, exception: str | None) -> None:
    g = _g(LOWER, ("full-body", 0.7, [50, 100, 150, 310]), HAND, FOOT)
    if exception:
        with pytest.raises(ValueError, match=exception):
            apply_rules(g, rules)
        return
    out = apply_rules(g, rules, size=(400, 300), nms_thresh=0.6)  # context the detector passes
    assert out.data["id"] == kept


def test_apply_rules_on_no_garments() -> None:
    assert len(apply_rules(Garments.empty(), list(RULES))) == 0
