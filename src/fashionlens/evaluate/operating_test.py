"""Precision and coverage per field on the *test* split at the shipped operating point (the model cards' numbers).

The operating points (thresholds) and the calibration were chosen on validation
(:mod:`fashionlens.evaluate.calibration`) and are read from the weights' calibration sidecar; here they are
only *measured* on the recipe's test split, once — nothing is fitted or tuned on it.

Per field: the emitted value is the calibrated arg-max (as ``tag`` emits it on a product photo); it is
emitted when its calibrated score reaches the field's threshold for the target precision. ``precision``:
the share of emitted values that are right; ``coverage``: the share of labelled test garments for which
a value is emitted; ``ece``: expected calibration error (15 bins) of the emitted value's score, before and
after calibration. ``footwear_type`` is the category of garments whose true object type is footwear (the
category threshold applies); ``colours_top`` is the largest-score colour (the colour threshold applies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.evaluate.calibration import (
    DEFAULT_RECIPE,
    Outcomes,
    field_outcomes,
    split_samples,
)
from fashionlens.models.calibration import (
    DEFAULT_PRECISION,
    Calibration,
    expected_calibration_error,
)

__all__ = ["field_operating_point", "run_test_operating_points"]


def field_operating_point(outcomes: Outcomes, threshold: float) -> dict[str, Any]:
    """``{"n", "emitted", "precision", "coverage"}`` of emitting the values of ``outcomes`` whose score ≥ ``threshold``
    (coverage: share of the ``n_items`` garments with at least one value emitted)."""
    keep = outcomes.score >= threshold
    emitted = int(keep.sum())
    return {"n": int(outcomes.n_items), "emitted": emitted,
            "precision": round(float(outcomes.correct[keep].mean()), 4) if emitted else None,
            "coverage": round(len(np.unique(outcomes.item[keep])) / max(1, outcomes.n_items), 4)}


def _footwear(outcomes_rows: np.ndarray, samples: list[Any], probs: np.ndarray, values: tuple[str, ...]) -> Outcomes:
    rows = np.array([i for i in outcomes_rows if samples[i].object_type == "footwear"], int)
    p = probs[rows]
    truth = np.array([values.index(samples[i].categories[0]) for i in rows])
    return Outcomes(p.max(1), p.argmax(1) == truth, np.arange(len(rows)), len(rows))


def run_test_operating_points(weights: str | Path | None = None, *, calibration: str | Path | None = None,
                              recipe: str | Path = DEFAULT_RECIPE,
                              data_root: str | None = None, backend: str = "onnx",
                              precision: float = DEFAULT_PRECISION, out: str | Path | None = None,
                              batch_size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Measure the shipped classifier's calibration and operating points on its recipe's test split; see the
    module doc. ``calibration``: the calibration file (default: the weights' sidecar). ``out``: also write the
    report there as JSON."""
    from fashionlens.evaluate.calibration import predict_cached
    from fashionlens.models.registry import default_weights_path
    from fashionlens.runtime.backends import create_backend
    from fashionlens.taxonomy import load_taxonomy

    weights_path = Path(weights) if weights else default_weights_path()
    loaded = Calibration.load(calibration) if calibration else Calibration.for_weights(weights_path)
    if loaded is None:
        raise ValueError(f"{weights_path} has no calibration sidecar; run `fashionlens evaluate calibration --save`")
    be = create_backend(weights_path, backend=backend)  # type: ignore[arg-type]
    samples, config = split_samples(recipe, "test", data_root)
    raw = predict_cached(be, config.cache_dir, samples, batch_size=batch_size, progress=progress)
    cal = {k: np.asarray(v, np.float64) for k, v in loaded.apply(raw).items()}
    heads = {h.name: h for h in be.meta.heads}
    tax = load_taxonomy()
    type_index = np.array([tax.object_type_index(tax.object_type_of(c)) for c in heads["category"].values])

    def type_of(cat: np.ndarray) -> np.ndarray:
        t = np.zeros((len(cat), len(tax.object_types)))
        for j, k in enumerate(type_index):
            t[:, k] += cat[:, j]
        return t

    thresholds = loaded.thresholds(precision)
    report: dict[str, Any] = {}
    fields = [(h.name, h.name, False) for h in be.meta.heads] + [("object_type", "object_type", False),
                                                                 ("colours_top", "colours", True)]
    for label, name, top in fields:
        before = field_outcomes(name, raw, samples, heads, type_of=type_of, top_only=top)
        after = field_outcomes(name, cal, samples, heads, type_of=type_of, top_only=top)
        if after.n_items == 0:
            continue
        t = thresholds.get(name, float("inf"))
        multi = name in heads and heads[name].kind == "multi" and not top
        row = {"threshold": _json_threshold(t), **field_operating_point(after, t),
               "ece_before": round(expected_calibration_error(before.score, before.correct), 4),
               "ece_after": round(expected_calibration_error(after.score, after.correct), 4),
               "accuracy": None if multi else round(float(after.correct.mean()), 4)}
        report[label] = row
    single = np.array([i for i, s in enumerate(samples) if len(s.categories) == 1], int)
    fw = _footwear(single, samples, cal["category"], tuple(heads["category"].values))
    if fw.n_items:
        t = thresholds.get("category", float("inf"))
        report["footwear_type"] = {"threshold": _json_threshold(t), **field_operating_point(fw, t),
                                   "ece_after": round(expected_calibration_error(fw.score, fw.correct), 4),
                                   "accuracy": round(float(fw.correct.mean()), 4)}
    summary = {"model": {"name": be.meta.name, "version": be.meta.version, "backend": be.name},
               "calibration": loaded.provenance.get("command"), "split": "test", "recipe": str(recipe),
               "n": len(samples), "precision_target": precision, "fields": report}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(summary, indent=2), "utf-8")
    return summary


def _json_threshold(t: float) -> float | None:
    """A threshold as JSON: None where the field never reached the target precision (no value is emitted)."""
    return t if np.isfinite(t) else None
