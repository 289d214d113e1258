"""The pieces of ``fashionlens evaluate search --queries`` (issue 27): composed queries, judgements
(unjudged when a label is missing), nDCG, condensed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.evaluate.search_report import (
    _condensed,
    _ndcg,
    composed_queries,
    judge,
    judge_by_tagger_colours,
)
from fashionlens.search.captions import GarmentFacts
from fashionlens.search.query import parse_query

RISE_SWEATER = GarmentFacts(categories=("sweaters",), colours=("black", "white"), pattern="striped", material="wool")
RISE_JACKET = GarmentFacts(categories=("coats-jackets",), colours=("red",), material="polyester")
CLOTHING_DRESS = GarmentFacts(categories=("dresses",))
CLOTHING_PANTS = GarmentFacts(categories=("jeans", "trousers"))


def test_composed_queries_read_like_typed_ones_and_parse_back() -> None:
    q = composed_queries([RISE_SWEATER, RISE_JACKET, CLOTHING_DRESS, CLOTHING_PANTS], seed=0,
                         tagger_colours=[["black"], ["red"], ["green", "white"], ["blue"]])
    texts = {family: [t for t, _ in items] for family, items in q.items()}
    assert len(texts["category+colour"]) == 4  # black, white, black and white sweater; red jacket
    assert any(t.startswith("black and white ") for t in texts["category+colour"])
    assert len(texts["category+colour+pattern"]) == 3 and all("striped" in t for t in texts["category+colour+pattern"])
    assert len(texts["category+material"]) == 2
    assert len(texts["category"]) == 3  # the coarse "Pants" label (jeans or trousers) makes no query
    assert sorted(f.colours for _, f in q["category+tagger-colour"]) == [("green",), ("white",)]
    for items in q.values():
        for text, facts in items:  # the parser reads back every fact a query was composed from
            u = parse_query(text)
            assert set(facts.categories) <= set(u.categories), text
            assert set(u.colours) == set(facts.colours) and (facts.pattern is None or facts.pattern in u.patterns)
            assert facts.material is None or facts.material in u.materials
    again = composed_queries([RISE_SWEATER, RISE_JACKET, CLOTHING_DRESS, CLOTHING_PANTS], seed=0,
                             tagger_colours=[["black"], ["red"], ["green", "white"], ["blue"]])
    assert again == q
    assert len(composed_queries([RISE_SWEATER], max_per_family=1)["category+colour"]) == 1


def test_judge() -> None:
    black_sweater = GarmentFacts(categories=("sweaters",), colours=("black",))
    assert judge(black_sweater, RISE_SWEATER) is True  # has every colour asked for
    assert judge(GarmentFacts(categories=("sweaters",), colours=("red",)), RISE_SWEATER) is False
    assert judge(black_sweater, RISE_JACKET) is False  # other category: judged, not relevant
    red_dress = GarmentFacts(categories=("dresses",), colours=("red",))
    assert judge(red_dress, CLOTHING_DRESS) is None  # a dress without colour labels: unjudged
    assert judge(GarmentFacts(categories=("jeans",)), CLOTHING_PANTS) is True
    striped = GarmentFacts(categories=("coats-jackets",), colours=("red",), pattern="striped")
    assert judge(striped, RISE_JACKET) is None  # no pattern label
    assert judge_by_tagger_colours(red_dress, CLOTHING_DRESS, ["red", "white"])
    assert not judge_by_tagger_colours(red_dress, CLOTHING_DRESS, ["white"])


def test_condensed_ranking_and_ndcg() -> None:
    judged = np.array([True, False, True, True])
    relevant = np.array([False, False, True, True])
    row = _condensed([1, 0, 2, 3], judged, relevant, k=3)
    assert row.tolist() == [False, True, True]  # position 1 (unjudged) is left out
    assert _condensed([3], judged, relevant, k=3).tolist() == [True, False, False]
    assert _ndcg(np.array([True, True, False]), 2, k=3) == pytest.approx(1.0)
    ideal = 1 + 1 / np.log2(3)
    assert _ndcg(row, 2, k=3) == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / ideal)
    assert np.isnan(_ndcg(row, 0))
