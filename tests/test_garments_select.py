"""Garments.select: by boolean array or by indices, every field kept in step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fashionlens.result import Garments


def _three(with_mask: bool = True) -> Garments:
    mask = np.zeros((3, 4, 5), bool)
    for i in range(3):
        mask[i, i, i] = True
    return Garments(xyxy=[[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], object_type=["upper-body", "bag", "footwear"],
                    confidence=[0.9, 0.5, 0.1], mask=mask if with_mask else None,
                    data={"category": ["t-shirts", "bags", "boots"], "n": [0, 1, 2]})


@pytest.mark.parametrize("keep, expected, exception", [
    (np.array([True, False, True]), [0, 2], None),
    ([False, False, False], [], None),
    ([True, True, True], [0, 1, 2], None),
    ([2, 0], [2, 0], None),  # indices: in the given order
    ([1, 1], [1, 1], None),  # repeated
    (np.array([1]), [1], None),
    ([], [], None),
    (np.array([], dtype=np.int64), [], None),
    ([True, False], None, "expected 3 booleans, got 2"),
    (np.ones(4, bool), None, "expected 3 booleans, got 4"),
])
def test_select(keep: Any, expected: list[int] | None, exception: str | None) -> None:
    g = _three()
    if exception:
        with pytest.raises(ValueError, match=exception):
            g.select(keep)
        return
    out = g.select(keep)
    assert len(out) == len(expected)
    assert out.data["n"] == expected
    assert out.object_type == [g.object_type[i] for i in expected]
    assert out.data["category"] == [g.data["category"][i] for i in expected]
    np.testing.assert_array_equal(out.xyxy, g.xyxy[expected].reshape(-1, 4))
    np.testing.assert_array_equal(out.confidence, g.confidence[expected])
    assert out.mask is not None and out.mask.shape == (len(expected), 4, 5)
    np.testing.assert_array_equal(out.mask, g.mask[expected])
    assert out.xyxy.dtype == np.float64 and out.confidence.dtype == np.float64


def test_select_without_mask_and_on_empty() -> None:
    assert _three(with_mask=False).select([0]).mask is None
    empty = Garments.empty().select(np.zeros(0, bool))
    assert len(empty) == 0 and empty.mask is None


def test_select_returns_a_new_record() -> None:
    g = _three()
    out = g.select([0, 1, 2])
    out.data["n"][0] = 99
    out.xyxy[0, 0] = 5
    assert g.data["n"][0] == 0 and g.xyxy[0, 0] == 0


def test_select_out_of_range_index() -> None:
    with pytest.raises(IndexError):
        _three().select([3])
