"""The review queue's order: most uncertain first, with a diversity term (greedy maximal marginal relevance).

Uncertainty of one field (its scores ``p1 ≥ p2`` from the value/candidates):

* ``least_confidence``: ``1 - p1``;
* ``margin``: ``1 - (p1 - p2)`` (``p2`` = 0 when the model named no second candidate).

An entry's uncertainty aggregates its fields that need review: ``mean`` (default: a garment with several
unsure fields gains more from one review) or ``max`` (the field a reviewer is most needed for). A field the
model is unsure of without any score (v2 ``"colours": []`` with ``colours_uncertain``, which nearly every
street garment has) says nothing about *how* unsure, so it is left out of the aggregate; an entry whose
unsure fields all lack scores counts as 1 (nothing is known).

Ordering (:func:`rank`): greedy MMR — repeatedly take the entry maximising
``(1 - λ)·uncertainty - λ·max_similarity(entry, already taken)``, where the similarity of two entries is
the cosine of their garment embeddings when both have one, else ``0.5·[same sender/folder] +
0.5·[same (object type, category)]``; with embeddings the larger of the two is used. So one sender's
200 near-identical photos give one early entry, and the rest wait behind every other sender's equally
unsure ones. ``λ = 0`` is plain uncertainty order. Ties keep input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fashionlens.review.fields import FieldState

__all__ = ["Aggregate", "Measure", "RankItem", "entry_uncertainty", "field_uncertainty", "rank"]

Measure = Literal["least_confidence", "margin"]
MEASURES: tuple[str, ...] = ("least_confidence", "margin")
Aggregate = Literal["mean", "max"]
AGGREGATES: tuple[str, ...] = ("mean", "max")


def field_uncertainty(f: FieldState, measure: Measure = "least_confidence") -> float:
    """How unsure the model is of one field, in [0, 1] (see the module docstring)."""
    scores = sorted((c.score for c in f.candidates if c.score is not None), reverse=True)
    if not scores and f.score is not None:
        scores = [f.score]
    if not scores:
        return 1.0 if f.uncertain else 0.0
    if f.multi:  # colours: the least sure colour listed decides
        p1 = min(scores)
        return float(min(1.0, max(0.0, 1.0 - p1)))
    p1 = scores[0]
    if measure == "least_confidence":
        return float(min(1.0, max(0.0, 1.0 - p1)))
    if measure == "margin":
        p2 = scores[1] if len(scores) > 1 else 0.0
        return float(min(1.0, max(0.0, 1.0 - (p1 - p2))))
    raise ValueError(f"uncertainty measure: expected one of {MEASURES}; got {measure!r}")


def _has_score(f: FieldState) -> bool:
    return f.score is not None or any(c.score is not None for c in f.candidates)


def entry_uncertainty(fields: Sequence[FieldState], measure: Measure = "least_confidence",
                      aggregate: Aggregate = "mean") -> float:
    """The uncertainty of a garment/item: ``aggregate`` over its scored fields that need review (module
    docstring); 1 when only score-less fields need review, 0 when none does."""
    review = [f for f in fields if f.needs_review]
    if not review:
        return 0.0
    values = [field_uncertainty(f, measure) for f in review if _has_score(f)]
    if not values:
        return 1.0
    if aggregate == "mean":
        return float(sum(values) / len(values))
    if aggregate == "max":
        return float(max(values))
    raise ValueError(f"aggregate: expected one of {AGGREGATES}; got {aggregate!r}")


@dataclass(frozen=True)
class RankItem:
    """What :func:`rank` needs of one entry."""

    uncertainty: float
    group: str | None
    kind_key: tuple[str | None, str | None]   # (object type, category)
    embedding: np.ndarray | None = None       # L2-normalised


def rank(items: Sequence[RankItem], *, diversity: float = 0.5) -> list[int]:
    """Indices of ``items`` in review order (greedy MMR, module docstring); ``diversity`` is λ in [0, 1]."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity: expected a number in [0, 1]; got {diversity!r}")
    n = len(items)
    if n == 0:
        return []
    u = np.array([it.uncertainty for it in items], np.float64)
    gcodes = _codes([it.group for it in items])
    kcodes = _codes([None if it.kind_key == (None, None) else it.kind_key for it in items])
    dims = {it.embedding.shape[0] for it in items if it.embedding is not None}
    dim = dims.pop() if len(dims) == 1 else None  # mixed dimensions: embeddings are not comparable
    emb = np.zeros((n, dim or 1), np.float32)
    has_emb = np.zeros(n, bool)
    if dim is not None:
        for i, it in enumerate(items):
            if it.embedding is not None:
                emb[i], has_emb[i] = it.embedding, True
    max_sim = np.zeros(n, np.float64)
    taken = np.zeros(n, bool)
    order: list[int] = []
    for _ in range(n):
        gain = (1.0 - diversity) * u - diversity * max_sim
        gain[taken] = -np.inf
        pick = int(np.argmax(gain))  # first of equal gains: input order
        order.append(pick)
        taken[pick] = True
        same_group = (gcodes == gcodes[pick]) & (gcodes >= 0)
        same_kind = (kcodes == kcodes[pick]) & (kcodes >= 0)
        sim = 0.5 * same_group + 0.5 * same_kind
        if has_emb[pick]:
            cos = np.where(has_emb, emb @ emb[pick], 0.0)
            sim = np.maximum(sim, np.clip(cos, 0.0, 1.0))
        np.maximum(max_sim, sim, out=max_sim)
    return order


def _codes(keys: Sequence[object]) -> np.ndarray:
    """An integer code per key (equal keys, equal codes); -1 for None (never similar to anything)."""
    table: dict[object, int] = {}
    return np.array([-1 if k is None else table.setdefault(k, len(table)) for k in keys], np.int64)
