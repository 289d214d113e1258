"""Captions from labels, the relevance rule, and its vectorised twin used in training."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fashionlens.search.captions import (
    CATEGORY_NOUNS,
    GarmentFacts,
    caption,
    category_prompts,
    matches,
    random_caption,
    subset,
)
from fashionlens.taxonomy import load_taxonomy
from fashionlens.train.alignment_data import FactCodes

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

SWEATER = GarmentFacts.from_labels(categories=["sweaters"], object_type="upper-body", source_label="Sweater",
                                   attributes={"colours": ["red", "white"], "pattern": "striped", "material": "wool",
                                               "fit": "loose"}, gender="women")
PANTS = GarmentFacts.from_labels(categories=["jeans", "trousers"], object_type="lower-body", source_label="Pants")
JEANS = GarmentFacts.from_labels(categories=["jeans"], object_type="lower-body", source_label="Jeans")
TEE = GarmentFacts.from_labels(categories=["t-shirts"], object_type="upper-body", source_label="Longsleeve",
                               attributes={"sleeve": "long"}, kids=True)
VEST = GarmentFacts.from_labels(categories=[], object_type="upper-body", source_label="Vest")


def test_every_taxonomy_category_has_a_noun() -> None:
    assert set(CATEGORY_NOUNS) == set(load_taxonomy().categories)
    for c in CATEGORY_NOUNS:
        assert category_prompts(c) and all(isinstance(p, str) and p for p in category_prompts(c))


@pytest.mark.parametrize(("facts", "kwargs", "expected"), [
    (SWEATER, {}, "a photo of a loose red and white striped wool sweater"),
    (SWEATER, {"colours": False, "pattern": False, "material": False, "fit": False}, "a photo of a sweater"),
    (SWEATER, {"who": True, "fit": False}, "a photo of a red and white striped wool sweater for women"),
    (PANTS, {}, "a photo of trousers"),
    (TEE, {}, "a photo of a long-sleeve top"),
    (VEST, {}, "a photo of a vest"),
])
def test_canonical_captions(facts: GarmentFacts, kwargs: dict, expected: str) -> None:
    assert caption(facts, **kwargs) == expected


def test_random_captions_state_what_they_keep() -> None:
    rng = random.Random(0)
    for _ in range(50):
        text, kept = random_caption(SWEATER, rng)
        assert text and text == " ".join(text.split())
        assert kept.categories == ("sweaters",)
        if kept.colours:
            assert "red" in text and "white" in text
        if kept.pattern:
            assert "striped" in text
        if kept.material:
            assert "wool" in text
        assert matches(kept, SWEATER)  # a caption always describes its own garment
    a = [random_caption(SWEATER, random.Random(3))[0] for _ in range(2)]
    assert a[0] == a[1]  # seeded


def test_matches_rules() -> None:
    assert matches(subset(JEANS), PANTS)  # jeans query, jeans-or-trousers photo: compatible
    assert matches(subset(PANTS), JEANS)
    assert not matches(subset(SWEATER), subset(SWEATER, colours=False))  # the item lacks the colours
    red = GarmentFacts(categories=("sweaters",), colours=("red",))
    assert matches(red, SWEATER)
    assert not matches(GarmentFacts(categories=("sweaters",), colours=("blue",)), SWEATER)
    assert matches(VEST, VEST) and not matches(VEST, GarmentFacts(object_type="upper-body", source_label="Top"))
    assert not matches(GarmentFacts(categories=("t-shirts",), kids=True), subset(TEE, who=False))
    assert matches(GarmentFacts(categories=("t-shirts",), kids=True), TEE)


def test_fact_codes_agree_with_matches() -> None:
    rng = random.Random(1)
    items = [SWEATER, PANTS, JEANS, TEE, VEST, subset(SWEATER, colours=False),
             GarmentFacts.from_labels(categories=["sweaters"], attributes={"colours": ["red"], "material": "cotton"})]
    queries = [random_caption(f, rng)[1] for f in items for _ in range(6)] + items
    got = FactCodes(queries).matches(FactCodes(items))
    want = np.array([[matches(q, it) for it in items] for q in queries])
    np.testing.assert_array_equal(got, want)
