"""The garment a photo query searches by default (:func:`choose_garment`) and the captions people read
under search results (:func:`describe`, :func:`describe_garments`) — issue 27."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from fashionlens.result import Garments, Label, TagResult
from fashionlens.search.captions import describe, describe_garments
from fashionlens.search.catalogue import AUTO_GARMENT_MIN_SCORE, choose_garment
from fashionlens.search.index import SearchHit


def _result(*garments: tuple[str, float, tuple[float, float, float, float]]) -> TagResult:
    """A detect-mode result of ``(object type, score, (x0, y0, x1, y1))`` garments."""
    g = Garments(xyxy=np.array([box for *_, box in garments], float).reshape(-1, 4),
                 object_type=[t for t, *_ in garments], confidence=[s for _, s, _ in garments])
    return TagResult(path="outfit.jpg", width=400, height=600, model={}, mode="detect", garments=g)


SHOES = ("footwear", 0.98, (100, 520, 300, 590))        # area 14,000: the surest, but small
JACKET = ("upper-body", 0.90, (60, 40, 340, 300))       # area 72,800: the largest
JEANS = ("lower-body", 0.80, (110, 300, 290, 520))      # area 39,600
FAINT_COAT = ("full-body", 0.30, (0, 0, 400, 600))      # the whole photo, but under the minimum score


@pytest.mark.parametrize(("garments", "expected"), [
    ((SHOES, JACKET, JEANS), 1),                                  # the largest confident garment, not garment 0
    ((JEANS, SHOES), 0),                                          # area × score: 31,680 > 13,720
    ((SHOES, JACKET, FAINT_COAT), 1),                             # a big doubtful box is passed over ...
    ((("full-body", 0.30, (0, 0, 100, 100)), ("bag", 0.20, (0, 0, 300, 300))), 1),  # ... unless none is sure
    ((("upper-body", 0.60, (0, 0, 100, 100)), ("upper-body", 0.90, (0, 0, 100, 100))), 1),  # same box: surer
    ((("upper-body", 0.50, (0, 0, 90, 100)), ("upper-body", 0.90, (0, 0, 50, 100))), 1),   # area × score wins
    ((("upper-body", 0.80, (0, 0, 100, 90)), ("upper-body", 0.90, (0, 0, 80, 100))), 1),   # 7,200 = 7,200: surer
    ((("upper-body", 0.80, (0, 0, 10, 10)), ("upper-body", 0.80, (5, 5, 15, 15))), 0),     # all equal: first
    ((JEANS,), 0),
    ((("upper-body", 0.70, (0, 0, 0, 0)), ("lower-body", 0.60, (0, 0, 0, 0))), 0),         # empty boxes: surer
])
def test_choose_garment(garments: tuple, expected: int) -> None:
    assert choose_garment(_result(*garments)) == expected


def test_choose_garment_tie_goes_to_the_higher_score() -> None:
    # 0.8 × 9,000 = 7,200 = 0.9 × 8,000: the tie goes to the surer garment whatever the order
    a, b = ("upper-body", 0.80, (0, 0, 100, 90)), ("upper-body", 0.90, (0, 0, 80, 100))
    assert choose_garment(_result(a, b)) == 1 and choose_garment(_result(b, a)) == 0


def test_choose_garment_minimum_score_is_a_parameter() -> None:
    assert AUTO_GARMENT_MIN_SCORE == 0.5
    photo = _result(SHOES, FAINT_COAT)
    assert choose_garment(photo) == 0 and choose_garment(photo, min_score=0.2) == 1


def test_choose_garment_needs_a_garment() -> None:
    empty = TagResult(path="x.jpg", width=10, height=10, model={}, mode="detect", garments=Garments.empty())
    with pytest.raises(ValueError, match="no garments"):
        choose_garment(empty)


DRESS = {"category": "dresses", "object_type": "full-body",
         "attributes": {"colours": ["green"], "fit": "long", "garment": 0, "material": "polyester",
                        "neckline": "collared", "pattern": "geometric", "score": 0.7116, "sleeve": "long"}}


@pytest.mark.parametrize(("meta", "expected"), [
    # the raw list "dresses, full-body, green, long, polyester, collared, geometric, 0.7116, long"
    (DRESS, "full-length green long-sleeved polyester dress with a collar, geometric print"),
    ({**DRESS, "attributes": {**DRESS["attributes"], "fit": "regular"}},
     "green long-sleeved polyester dress with a collar, geometric print"),
    ({"category": "jeans", "object_type": "lower-body",
      "attributes": {"colours": ["blue"], "pattern": "plain", "material": "cotton", "fit": "loose"}},
     "loose plain blue cotton jeans"),
    ({"category": "sweaters", "attributes": {"colours": ["red", "white"], "pattern": "striped", "material": "wool"}},
     "red and white wool sweater, striped"),
    ({"category": "t-shirts", "attributes": {"colours": ["black", "white", "grey"], "sleeve": "short",
                                             "neckline": "v-neck"}},
     "black, white and grey short-sleeved t-shirt with a V-neck"),
    ({"category": "sweaters", "attributes": {"colours": ["multicolour"], "pattern": "colourblock",
                                             "fit": "oversize"}}, "oversized multicoloured sweater, colour-block"),
    ({"category": "trainers", "object_type": "footwear", "attributes": {"colours": ["white"], "material": "leather"}},
     "white leather trainers"),
    ({"category": "coats-jackets", "attributes": {"colours": ["black"], "material": "down", "fit": "long"}},
     "long black down jacket"),
    ({"category": "tanks", "attributes": {"sleeve": "sleeveless", "fit": "cropped"}}, "cropped sleeveless tank top"),
    ({"category": None, "object_type": "footwear", "attributes": {"colours": ["brown"]}}, "brown shoes"),
    ({"category": "capes", "attributes": {}}, "capes"),                       # not in the taxonomy: its id in words
    ({"category": None, "object_type": None, "attributes": None}, "garment"),
    ({"attributes": {"colours": ["red", "red"], "score": 0.93, "garment": 3}}, "red garment"),
])
def test_describe(meta: dict[str, Any], expected: str) -> None:
    text = describe(meta)
    assert text == expected
    words = text.replace(",", " ").replace("-", " ").split()
    assert len(words) == len(set(words)), text  # no word twice ...
    assert not re.search(r"\d", text), text  # ... and no score or garment number


@pytest.mark.parametrize(("meta", "expected"), [
    (DRESS, "green dress"),
    ({"category": "jeans", "attributes": {"colours": ["blue", "black"], "fit": "loose"}}, "blue and black jeans"),
    ({"object_type": "bag"}, "bag"),
])
def test_describe_short(meta: dict[str, Any], expected: str) -> None:
    assert describe(meta, short=True) == expected


def test_describe_takes_hits_and_labels() -> None:
    hit = SearchHit(rank=1, id=7, score=0.71, path="a.jpg", xyxy=None, category="dresses", object_type="full-body",
                    attributes=DRESS["attributes"])
    assert describe(hit) == describe(hit.to_dict()) == describe(DRESS)
    labelled = {"category": Label("dresses", 0.9), "object_type": "full-body",
                "attributes": {k: [Label(x, 0.8) for x in v] if isinstance(v, list) else Label(v, 0.8)
                               for k, v in DRESS["attributes"].items() if isinstance(v, (str, list))}}
    assert describe(labelled) == describe(DRESS)


def test_describe_garments_lists_every_garment() -> None:
    result = _result(SHOES, JACKET)
    result.garments.category = [Label("trainers", 0.9), Label("coats-jackets", 0.8)]
    result.garments.attributes = [{"colours": [Label("white", 0.9)]},
                                  {"colours": [Label("black", 0.9)], "material": Label("wool", 0.7)}]
    listed = describe_garments(result)
    assert [(g["index"], g["object_type"], g["category"], g["name"]) for g in listed] == [
        (0, "footwear", "trainers", "white trainers"), (1, "upper-body", "coats-jackets", "black jacket")]
    assert listed[1]["caption"] == "black wool jacket" and listed[1]["score"] == 0.9
    assert listed[1]["bbox"] == [60.0, 40.0, 280.0, 260.0]  # [x, y, w, h]
