"""Retrieval metrics: Recall@K, MRR, precision@K, average precision.

Inputs are *relevance in rank order*: a ``(queries, ranked items)`` bool array whose row ``q`` says,
for the items sorted best-first for query ``q``, which ones are relevant
(:func:`relevance_in_rank_order` makes it from scores). Definitions:

* ``Recall@K`` — the fraction of queries with at least one relevant item in the top ``K`` (the
  "hit rate" used for CLIP-style text–image retrieval, where each query has one correct image);
* ``MRR`` — the mean over queries of ``1 / rank`` of the first relevant item (0 when none is ranked);
* ``precision@K`` — the mean fraction of relevant items among the top ``K``;
* ``AP`` — average precision over the whole ranking: the mean of precision@rank at the rank of every
  relevant item (``sum_k P@k · rel_k / n_relevant``); ``mAP`` averages it over the queries that have
  at least one relevant item. ``n_relevant`` counts the relevant items in the row, so rank all items.

Queries without any relevant item count as misses for Recall@K and MRR and are left out of mAP.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "mean_average_precision", "mean_reciprocal_rank", "precision_at_k",
           "recall_at_k", "relevance_in_rank_order", "retrieval_summary"]


def _as_2d(relevant: np.ndarray) -> np.ndarray:
    r = np.asarray(relevant, dtype=bool)
    if r.ndim == 1:
        r = r[None, :]
    if r.ndim != 2:
        raise ValueError(f"relevance: expected a (queries, items) array; got shape {r.shape}")
    return r


def relevance_in_rank_order(scores: np.ndarray, relevant: np.ndarray, *, exclude: np.ndarray | None = None
                            ) -> np.ndarray:
    """Sort each row of ``relevant`` by ``scores`` (higher first, ties keep item order).

    ``scores`` and ``relevant`` are ``(queries, items)``; ``exclude`` (same shape, bool) drops items
    from a query's ranking (e.g. the query image itself) — they are moved to the end and marked
    not relevant, so they count as neither hits nor relevant items.
    """
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(relevant, dtype=bool)
    if s.shape != r.shape or s.ndim != 2:
        raise ValueError(f"scores and relevant: expected the same (queries, items) shape; got {s.shape} and {r.shape}")
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool)
        if ex.shape != s.shape:
            raise ValueError(f"exclude: expected shape {s.shape}; got {ex.shape}")
        s = np.where(ex, -np.inf, s)
        r = r & ~ex
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(r, order, axis=1)


def recall_at_k(ranked: np.ndarray, k: int) -> float:
    """Fraction of queries with a relevant item among the first ``k``."""
    r = _as_2d(ranked)
    if k < 1:
        raise ValueError(f"k: expected >= 1; got {k}")
    if not len(r):
        return float("nan")
    return float(r[:, :k].any(axis=1).mean())


def precision_at_k(ranked: np.ndarray, k: int) -> float:
    """Mean fraction of relevant items among the first ``k`` (divided by ``k`` even when fewer items)."""
    r = _as_2d(ranked)
    if k < 1:
        raise ValueError(f"k: expected >= 1; got {k}")
    if not len(r):
        return float("nan")
    return float(r[:, :k].sum(axis=1).mean() / k)


def mean_reciprocal_rank(ranked: np.ndarray) -> float:
    """Mean of ``1 / rank`` of the first relevant item (0 for a query with none)."""
    r = _as_2d(ranked)
    if not len(r):
        return float("nan")
    has = r.any(axis=1)
    first = r.argmax(axis=1)
    return float(np.where(has, 1.0 / (first + 1), 0.0).mean())


def average_precision(ranked_row: np.ndarray) -> float:
    """AP of one ranking (NaN when it holds no relevant item)."""
    r = np.asarray(ranked_row, dtype=bool).reshape(-1)
    n_rel = int(r.sum())
    if n_rel == 0:
        return float("nan")
    hits = np.cumsum(r)
    ranks = np.arange(1, len(r) + 1)
    return float((hits[r] / ranks[r]).sum() / n_rel)


def mean_average_precision(ranked: np.ndarray) -> float:
    """Mean AP over the queries that have at least one relevant item (NaN if none has)."""
    r = _as_2d(ranked)
    aps = [average_precision(row) for row in r if row.any()]
    return float(np.mean(aps)) if aps else float("nan")


def retrieval_summary(ranked: np.ndarray, *, ks: tuple[int, ...] = (1, 5, 10), map_: bool = False) -> dict[str, float]:
    """``recall@K`` for each ``K``, ``mrr``, ``precision@10`` and (``map_``) ``map``, plus query counts."""
    r = _as_2d(ranked)
    out: dict[str, float] = {f"recall@{k}": recall_at_k(r, k) for k in ks}
    out["mrr"] = mean_reciprocal_rank(r)
    out["precision@10"] = precision_at_k(r, 10)
    if map_:
        out["map"] = mean_average_precision(r)
    out["queries"] = len(r)
    out["mean_relevant"] = float(r.sum(axis=1).mean()) if len(r) else float("nan")
    return out
