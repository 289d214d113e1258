"""Tests for fashionlens.result.Garments: construction validation and the constructors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fashionlens.result import Garments
from fashionlens.taxonomy import load_taxonomy

TAX = load_taxonomy()


def test_empty() -> None:
    g = Garments.empty()
    assert len(g) == 0 and list(g) == []
    assert g.xyxy.shape == (0, 4) and g.xyxy.dtype == np.float64  # exact JSON round trips
    assert g.confidence.shape == (0,) and g.object_type == [] and g.mask is None and g.data == {}


def test_whole_image() -> None:
    g = Garments.whole_image(640, 480, "upper-body", 0.75)
    assert len(g) == 1 and list(g) == [0]
    np.testing.assert_array_equal(g.xyxy, [[0, 0, 640, 480]])
    assert g.object_type == ["upper-body"]
    assert g.confidence.dtype == np.float64 and g.confidence[0] == pytest.approx(0.75)
    assert g.mask is None


def test_whole_image_rejects_an_unknown_object_type() -> None:
    with pytest.raises(ValueError, match="unknown object type"):
        Garments.whole_image(10, 10, "trousers", 0.5)


@pytest.mark.parametrize("object_type", TAX.object_types)
def test_every_taxonomy_object_type_is_accepted(object_type: str) -> None:
    assert Garments.whole_image(4, 3, object_type, 1.0).object_type == [object_type]


def test_valid_garments_with_mask_and_data() -> None:
    mask = np.zeros((2, 30, 40), bool)
    mask[0, :10, :10] = mask[1, 10:, 20:] = True
    g = Garments(xyxy=[[0, 0, 10, 10], [20, 10, 40, 30]], object_type=["bag", "footwear"],
                 confidence=[0.9, 0.0], mask=mask, data={"category": ["bags", "boots"]})
    assert len(g) == 2 and g.xyxy.shape == (2, 4) and g.xyxy.dtype == np.float64
    assert g.confidence.tolist() == pytest.approx([0.9, 0.0])
    # a flat list of 4 numbers is one box; zero-size boxes are allowed
    assert len(Garments(xyxy=[5, 5, 5, 5], object_type=["headwear"], confidence=1.0)) == 1


def _kw(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"xyxy": [[0, 0, 10, 10], [5, 5, 20, 30]], "object_type": ["bag", "headwear"],
                          "confidence": [0.5, 0.6]}
    kw.update(over)
    return kw


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "fewer object types than boxes": (_kw(object_type=["bag"]), "object types and confidences"),
    "more object types than boxes": (_kw(object_type=["bag", "bag", "bag"]), "object types and confidences"),
    "fewer confidences than boxes": (_kw(confidence=[0.5]), "object types and confidences"),
    "no boxes but a type": (_kw(xyxy=np.zeros((0, 4)), confidence=[]), "object types and confidences"),
    "x_max < x_min": (_kw(xyxy=[[10, 0, 5, 10], [0, 0, 1, 1]]), "x_max >= x_min"),
    "y_max < y_min": (_kw(xyxy=[[0, 0, 10, 10], [0, 30, 1, 20]]), "y_max >= y_min"),
    "box of 5 numbers": (_kw(xyxy=[[0, 0, 10, 10, 1]]), "reshape"),
    "unknown object type": (_kw(object_type=["bag", "shoes"]), "unknown object type 'shoes'"),
    "mask without the N axis": (_kw(mask=np.zeros((30, 40), bool)), "mask must be"),
    "mask for too few garments": (_kw(mask=np.zeros((1, 30, 40), bool)), "mask must be"),
    "data with too few values": (_kw(data={"category": ["bags"]}), "data\\['category'\\]"),
    "confidence above 1": (_kw(confidence=[0.5, 1.5]), "confidence must be in"),
    "negative confidence": (_kw(confidence=[-0.1, 0.5]), "confidence must be in"),
    "NaN confidence": (_kw(confidence=[np.nan, 0.5]), "confidence must be in"),
    "NaN box": (_kw(xyxy=[[np.nan, 0, 10, 10], [0, 0, 1, 1]]), "finite"),
    "infinite box": (_kw(xyxy=[[0, 0, np.inf, 10], [0, 0, 1, 1]]), "finite"),
}


@pytest.mark.parametrize("kw, message", INVALID.values(), ids=list(INVALID))
def test_invalid_garments_raise_value_error(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Garments(**kw)
