"""Retrieval metrics against answers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fashionlens.evaluate.retrieval import (
    average_precision,
    mean_average_precision,
    mean_reciprocal_rank,
    precision_at_k,
    recall_at_k,
    relevance_in_rank_order,
    retrieval_summary,
)

# three queries, relevance in rank order
RANKED = np.array([
    [0, 1, 0, 1, 0],  # first hit at rank 2; AP = (1/2 + 2/4) / 2 = 0.5
    [1, 0, 0, 0, 0],  # rank 1; AP = 1
    [0, 0, 0, 0, 0],  # no relevant item: a miss, left out of mAP
], dtype=bool)


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 3), (2, 2 / 3), (5, 2 / 3)])
def test_recall_at_k(k: int, expected: float) -> None:
    assert recall_at_k(RANKED, k) == pytest.approx(expected)


def test_mrr_counts_misses_as_zero() -> None:
    assert mean_reciprocal_rank(RANKED) == pytest.approx((1 / 2 + 1 + 0) / 3)


@pytest.mark.parametrize(("row", "expected"), [
    ([0, 1, 0, 1, 0], 0.5),
    ([1, 0, 1], (1 + 2 / 3) / 2),
    ([1, 1, 1], 1.0),
    ([0, 0, 1], 1 / 3),
])
def test_average_precision(row: list[int], expected: float) -> None:
    assert average_precision(np.array(row)) == pytest.approx(expected)


def test_average_precision_without_relevant_is_nan() -> None:
    assert math.isnan(average_precision(np.zeros(4)))


def test_map_skips_queries_without_relevant_items() -> None:
    assert mean_average_precision(RANKED) == pytest.approx((0.5 + 1.0) / 2)


def test_precision_at_k_divides_by_k() -> None:
    assert precision_at_k(RANKED, 2) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert precision_at_k(RANKED, 10) == pytest.approx((2 / 10 + 1 / 10 + 0) / 3)


def test_rank_order_with_ties_and_exclusion() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.5], [0.2, 0.8, 0.3, 0.1]])
    relevant = np.array([[1, 0, 0, 1], [1, 1, 0, 0]], dtype=bool)
    ranked = relevance_in_rank_order(scores, relevant)
    # row 0 order: 0 (0.9), 2 (0.5, first of the tie), 3, 1
    np.testing.assert_array_equal(ranked[0], [True, False, True, False])
    # excluding the query's own item (1 in row 1): it counts neither as a hit nor as relevant
    ex = np.array([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    ranked = relevance_in_rank_order(scores, relevant, exclude=ex)
    np.testing.assert_array_equal(ranked[1], [False, True, False, False])  # order 2, 0, 3, then 1


def test_summary_keys_and_errors() -> None:
    s = retrieval_summary(RANKED, map_=True)
    assert s["queries"] == 3 and s["recall@1"] == pytest.approx(1 / 3) and s["map"] == pytest.approx(0.75)
    assert s["mean_relevant"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k: expected >= 1"):
        recall_at_k(RANKED, 0)
    with pytest.raises(ValueError, match="same"):
        relevance_in_rank_order(np.zeros((2, 3)), np.zeros((2, 2), bool))
    assert math.isnan(recall_at_k(np.zeros((0, 3), bool), 1))
