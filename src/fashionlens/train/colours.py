"""Fit the pixel colour model (``fashionlens train colours --config configs/colours_pixels.yaml``).

1. **Garments**: every RISE photo with colour labels, split like the rest of the project
   (:func:`fashionlens.io.splits.group_split`, seed 0 — the classifier's split, so its colour head
   never saw the validation and test items). Each photo's colour pixels come from
   :func:`fashionlens.colours.naming.whole_image_pixels` — the same function ``tag`` uses — and only photos
   where a plain backdrop gave the garment's own pixels are used (elsewhere ``tag`` uses the head alone).
2. **Model**: one logistic regression per colour on :func:`fashionlens.models.pixel_colours.colour_features`
   (balanced class weights). The regularisation ``C`` and the decision threshold are chosen together
   by grouped k-fold cross-validation **on the training split only** (macro-F1 over colours present).
   The head weight of the combination is fixed by the config, not tuned.
3. **Evaluation** (:func:`fashionlens.evaluate.colours.evaluate_colours`): ``tag``'s colours with and
   without the pixel model on the validation and test photos, stored in the weights' meta.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from tqdm import tqdm

from fashionlens.models.pixel_colours import N_FEATURES, PixelColourModel, colour_features
from fashionlens.colours.naming import whole_image_pixels
from fashionlens.evaluate.classification import multi_label_predictions
from fashionlens.evaluate.colours import (
    colour_macro_f1,
    colour_targets,
    labelled_colour_records,
)
from fashionlens.imageio import load_image
from fashionlens.io.datasets import ImageRecord
from fashionlens.paths import default_data_root, runs_path

log = logging.getLogger(__name__)


@dataclass
class ColourTrainConfig:
    """Options of ``fashionlens train colours`` (YAML keys = field names)."""

    data_root: str = field(default_factory=default_data_root)
    out_dir: str = field(default_factory=lambda: runs_path("colours-pixels"))
    classifier: str | None = None  # its colour head's vocabulary and, for evaluation, its probabilities
    c_grid: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0])
    threshold_grid: list[float] = field(default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)])
    folds: int = 5
    head_weight: float = 0.5
    min_positives: int = 2  # colours with fewer training positives get a constant (never chosen) output
    threads: int = 1
    name: str = "garment-colours-pixels"
    version: str = "1"

    def __post_init__(self) -> None:
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"c_grid: expected positive regularisation strengths, got {self.c_grid}")
        if not self.threshold_grid or not all(0 < t < 1 for t in self.threshold_grid):
            raise ValueError(f"threshold_grid: expected thresholds in (0, 1), got {self.threshold_grid}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if not 0 <= self.head_weight <= 1:
            raise ValueError(f"head_weight must be in [0, 1], got {self.head_weight}")


def pixel_features(records: Sequence[ImageRecord], *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, N_FEATURES), masked (n,) bool)``: rows of unmasked photos are zeros."""
    feats = np.zeros((len(records), N_FEATURES))
    masked = np.zeros(len(records), bool)
    for i, r in enumerate(tqdm(records, desc="colour pixels", unit="photo", disable=not progress)):
        pixels = whole_image_pixels(load_image(r.path).rgb)
        if pixels.masked and len(pixels.pixels):
            feats[i], masked[i] = colour_features(pixels.pixels), True
    return feats, masked


def _fit(x: np.ndarray, y: np.ndarray, c: float, min_positives: int) -> tuple[np.ndarray, np.ndarray]:
    coef, intercept = np.zeros((y.shape[1], x.shape[1])), np.full(y.shape[1], -30.0)
    for k in range(y.shape[1]):
        if y[:, k].sum() < min_positives or y[:, k].all():
            continue
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y[:, k])
        coef[k], intercept[k] = m.coef_[0], m.intercept_[0]
    return coef, intercept


def _proba(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ coef.T + intercept)))


def fit_pixel_colour_model(x: np.ndarray, y: np.ndarray, groups: Sequence[str], values: Sequence[str],
                           config: ColourTrainConfig) -> tuple[PixelColourModel, dict[str, Any]]:
    """Choose ``C`` and the threshold by grouped cross-validation on ``(x, y)``, then refit on all of it."""
    if len(x) != len(y) or len(x) != len(groups):
        raise ValueError(f"expected as many feature rows, label rows and groups; got {len(x)}, {len(y)}, {len(groups)}")
    if len(set(groups)) < config.folds:
        raise ValueError(f"need at least {config.folds} groups for {config.folds}-fold cross-validation, "
                         f"got {len(set(groups))}")
    table = []
    for c in config.c_grid:
        oof = np.zeros(y.shape)
        for tr, te in GroupKFold(config.folds).split(x, groups=list(groups)):
            oof[te] = _proba(x[te], *_fit(x[tr], y[tr], c, config.min_positives))
        for t in config.threshold_grid:
            table.append({"C": c, "threshold": t, "cv_macro_f1": colour_macro_f1(y, multi_label_predictions(oof, t))})
    best = max(table, key=lambda r: r["cv_macro_f1"])
    coef, intercept = _fit(x, y, best["C"], config.min_positives)
    model = PixelColourModel(values=tuple(values), coef=coef, intercept=intercept, threshold=best["threshold"],
                             head_weight=config.head_weight)
    return model, {"chosen": best, "grid": table}


def train_colours(config: ColourTrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Fit on the training split, evaluate ``tag``'s colours on validation and test, save the weights."""
    from fashionlens.evaluate.colours import evaluate_colours
    from fashionlens.runtime.backends import create_backend

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    values = create_backend(config.classifier, threads=config.threads).meta.head("colours").values
    splits = labelled_colour_records(config.data_root)
    train = splits["train"]
    x, masked = pixel_features(train, progress=progress)
    y = colour_targets(train, values)
    groups = [r.group for r in train]
    keep = np.flatnonzero(masked)
    log.info("%d of %d training photos have a plain backdrop", len(keep), len(train))
    model, selection = fit_pixel_colour_model(x[keep], y[keep], [groups[i] for i in keep], values, config)
    metrics: dict[str, Any] = {"selection": {**selection["chosen"], "photos": len(keep),
                                             "photos_without_backdrop": int(len(train) - len(keep))}}
    for split in ("val", "test"):
        metrics[split] = evaluate_colours(splits[split], model, classifier=config.classifier,
                                          threads=config.threads, progress=progress)
    model.metrics = metrics
    model.training = {"config": dataclasses.asdict(config), "photos": {k: len(v) for k, v in splits.items()}}
    path = out / f"{config.name}.npz"
    model.save(path)
    (out / "selection.json").write_text(json.dumps(selection, indent=2))
    return {"model": str(path), **metrics}
