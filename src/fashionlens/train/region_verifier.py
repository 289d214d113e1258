"""Fitting the damage region verifier (:class:`fashionlens.grading.region_verifier.RegionVerifier`)
on a validation set of synthetic damage plus the same photos clean; see that module for the method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fashionlens.evaluate.damage import DamageEvaluation, evaluate_damage_maps
from fashionlens.grading.region_verifier import (
    FEATURES,
    REAL_REGION_SHARE,
    RegionVerifier,
    candidate_regions,
)


@dataclass(frozen=True)
class VerifierFit:
    verifier: RegionVerifier
    validation: DamageEvaluation  # cross-fitted: each photo's candidates scored by a fold that did not see it
    candidates: int
    real: int


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise ValueError("region verifier: expected both real damage and false alarms among the candidates, got "
                         f"{'only real damage' if len(y) and y[0] else 'no real damage'} ({len(y)} candidates)")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def fit_region_verifier(damaged_probs: Sequence[np.ndarray], damaged_images: Sequence[np.ndarray],
                        targets: Sequence[np.ndarray], regions: Sequence[Sequence[Any]],
                        clean_probs: Sequence[np.ndarray], clean_images: Sequence[np.ndarray],
                        garments: Sequence[np.ndarray] | None, *, candidate_threshold: float = 0.3,
                        max_false_rate: float = 0.05, regularisation: float = 1.0, seed: int = 0) -> VerifierFit:
    """Fit a :class:`RegionVerifier` on synthetic damage (``damaged_*``, ``targets``, ``regions``) and
    the same photos clean (``clean_*``; ``garments[i]`` is photo ``i``'s garment in both). Photo ``i``
    of both lists falls in the same cross-fitting fold."""
    n = len(damaged_probs)
    if not (len(damaged_images) == len(targets) == len(regions) == n == len(clean_probs) == len(clean_images)):
        raise ValueError("fit_region_verifier: expected the damaged and clean lists to hold the same photos, got "
                         f"{n}, {len(damaged_images)}, {len(targets)}, {len(regions)}, {len(clean_probs)}, "
                         f"{len(clean_images)}")
    if n < 2:
        raise ValueError(f"fit_region_verifier: expected at least 2 photos (two folds), got {n}")

    def garment(i: int) -> np.ndarray | None:
        return None if garments is None else np.asarray(garments[i], bool)

    damaged = [candidate_regions(np.asarray(p, np.float32), im, garment(i), threshold=candidate_threshold)
               for i, (p, im) in enumerate(zip(damaged_probs, damaged_images))]
    clean = [candidate_regions(np.asarray(p, np.float32), im, garment(i), threshold=candidate_threshold)
             for i, (p, im) in enumerate(zip(clean_probs, clean_images))]
    xs, ys, photo = [], [], []
    for i, cand in enumerate(damaged):
        painted = targets[i] > 0
        for j in range(len(cand)):
            xs.append(cand.features[j])
            ys.append(float(painted[cand.labels == j + 1].mean() >= REAL_REGION_SHARE))
            photo.append(i)
    n_damaged_rows = len(ys)
    for i, cand in enumerate(clean):
        xs.extend(cand.features)
        ys.extend([0.0] * len(cand))
        photo.extend([i] * len(cand))
    x = np.array(xs, np.float32).reshape(-1, len(FEATURES))
    y = np.array(ys) > 0.5
    photo_arr = np.array(photo, int)
    fold = np.random.default_rng(seed).permutation(n) % 2
    crossfit = np.zeros(len(y))
    for k in (0, 1):
        train, held = fold[photo_arr] != k, fold[photo_arr] == k
        if not held.any():
            continue
        mean, scale, coef, intercept = _fit_logistic(x[train], y[train], regularisation)
        crossfit[held] = 1.0 / (1.0 + np.exp(-(((x[held] - mean) / scale) @ coef + intercept)))
    scores_d = np.split(crossfit[:n_damaged_rows], np.cumsum([len(c) for c in damaged])[:-1])
    scores_c = np.split(crossfit[n_damaged_rows:], np.cumsum([len(c) for c in clean])[:-1])

    def evaluate(tau: float) -> DamageEvaluation:
        return evaluate_damage_maps((c.damage_map(s >= tau) for c, s in zip(damaged, scores_d)), targets, regions,
                                    (c.damage_map(s >= tau) for c, s in zip(clean, scores_c)),
                                    threshold=candidate_threshold, verifier_threshold=float(tau))

    best: DamageEvaluation | None = None
    for tau in np.unique(np.round(np.quantile(crossfit, np.linspace(0.5, 0.999, 120)), 4)) if len(crossfit) else []:
        flagged = sum(bool((s >= tau).any()) for s in scores_c) / n
        if flagged > max_false_rate:
            continue
        r = evaluate(float(tau))
        if best is None or r.score > best.score:
            best = r
    if best is None:  # nothing passes the budget: accept nothing
        best = evaluate(1.0 + 1e-6)
    mean, scale, coef, intercept = _fit_logistic(x, y, regularisation)
    verifier = RegionVerifier(candidate_threshold=float(candidate_threshold),
                              accept_threshold=float(best.verifier_threshold),  # type: ignore[arg-type]
                              mean=tuple(float(v) for v in mean), scale=tuple(float(v) for v in scale),
                              coef=tuple(float(v) for v in coef), intercept=intercept)
    return VerifierFit(verifier, best, candidates=len(y), real=int(y.sum()))
