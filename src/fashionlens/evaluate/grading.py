"""Metrics of the grading heads, each next to the majority-class baseline.

Per head: accuracy, macro-F1 (over the classes present in the truth) and, for ordinal heads
(condition, pilling), quadratic-weighted Cohen's kappa; a confusion matrix; and the same numbers
for always answering the training set's majority class. ``evaluate_grader`` runs trained heads on
a split of a data set (release layout or the shared subset) and writes ``metrics.json`` and one
confusion-matrix PNG per head.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from fashionlens.models.grader import GraderHeadSpec, GraderMeta, decode_indices
from fashionlens.paths import runs_path

log = logging.getLogger(__name__)

__all__ = ["evaluate_grader", "grading_metrics", "head_metrics", "write_confusion_pngs"]


def _clean(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _scores(y_true: np.ndarray, y_pred: np.ndarray, k: int, ordinal: bool) -> dict[str, float | None]:
    present = sorted(set(y_true.tolist()))
    out: dict[str, float | None] = {
        "accuracy": _clean(float((y_true == y_pred).mean())),
        "macro_f1": _clean(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))),
    }
    if ordinal:
        if len(set(y_true.tolist()) | set(y_pred.tolist())) < 2:
            out["qwk"] = None  # undefined when truth and prediction are one and the same class
        else:
            out["qwk"] = _clean(float(cohen_kappa_score(y_true, y_pred, labels=list(range(k)), weights="quadratic")))
    return out


def head_metrics(y_true: np.ndarray, y_pred: np.ndarray, spec: GraderHeadSpec, *, majority: int) -> dict[str, Any]:
    """Metrics of one head on the labelled items (``y_true`` ≥ 0; -1 = unlabelled, ignored).

    ``majority`` is the index of the training set's most frequent class: the baseline answer.
    """
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{spec.name}: y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    if not 0 <= majority < len(spec.values):
        raise ValueError(f"{spec.name}: majority index must be in [0, {len(spec.values)}), got {majority}")
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    ordinal = spec.kind == "ordinal"
    k = len(spec.values)
    if len(y_true) == 0:
        empty: dict[str, Any] = {"accuracy": None, "macro_f1": None} | ({"qwk": None} if ordinal else {})
        return {"n": 0, "kind": spec.kind, **empty, "baseline": {"class": spec.values[majority], **empty},
                "confusion": [[0] * k for _ in range(k)], "values": list(spec.values)}
    base = _scores(y_true, np.full_like(y_true, majority), k, ordinal)
    return {"n": len(y_true), "kind": spec.kind, **_scores(y_true, y_pred, k, ordinal),
            "baseline": {"class": spec.values[majority], **base},
            "confusion": confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist(),
            "values": list(spec.values)}


def grading_metrics(truth: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray], meta: GraderMeta, *,
                    majority: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """``{head: head_metrics}`` for every head of ``meta`` (truth: class indices, -1 = unlabelled)."""
    out = {}
    for spec in meta.heads:
        pred = decode_indices(spec, probs[spec.name])
        out[spec.name] = head_metrics(truth[spec.name], pred, spec, majority=int(majority[spec.name]))
    return out


def write_confusion_pngs(metrics: Mapping[str, Mapping[str, Any]], out_dir: str | Path, *, prefix: str = "") -> list[Path]:
    """One row-normalised confusion-matrix PNG per head with labelled items."""
    from fashionlens.evaluate.report import plot_confusion

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for head, m in metrics.items():
        if not m.get("n"):
            continue
        title = f"{prefix}{head}: acc {m['accuracy']:.3f} (majority {m['baseline']['accuracy']:.3f}), n={m['n']}"
        paths.append(plot_confusion(np.asarray(m["confusion"]), [str(v) for v in m["values"]],
                                    out_dir / f"confusion_{head}.png", title=title))
    return paths


def grader_split_items(data: str | Path, meta: Any, split: str) -> tuple[list[Any], Any]:
    """``(items, read summary)``: the ``split`` items of the RISE release at ``data`` with a front or back photo,
    split with the seed and fractions stored in the grading heads' ``meta``."""
    from fashionlens.io.rise_release import read_items
    from fashionlens.io.splits import group_split

    items, summary = read_items(data)
    cfg = meta.extra.get("split", {"seed": 0, "fractions": [0.7, 0.15, 0.15]})
    chosen = [it for it in group_split(items, fractions=tuple(cfg["fractions"]), seed=int(cfg["seed"]))[split]
              if "front" in it.views or "back" in it.views]
    if not chosen:
        raise ValueError(f"{data}: the {split} split has no items with a front or back photo")
    return chosen, summary


def evaluate_grader(weights: str | Path | None, data: str | Path, *, split: str = "test",
                    out_dir: str | Path = runs_path("eval-grader"), classifier: str | Path | None = None,
                    embedding_cache: str | Path | None = runs_path("cache", "grader"), threads: int | None = 1,
                    progress: bool = False) -> dict[str, Any]:
    """Trained heads on one split of ``data`` (split seed and fractions as stored with the weights).

    Writes ``metrics.json`` and ``confusion_<head>.png`` to ``out_dir`` and returns the metrics.
    """
    from fashionlens.io.splits import SPLIT_NAMES
    from fashionlens.models.grader import fuse_views, load_grader
    from fashionlens.models.registry import DEFAULT_GRADER, default_weights_path
    from fashionlens.train.grader_data import embed_items, encode_targets

    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {list(SPLIT_NAMES)}, got {split!r}")
    weights = Path(weights) if weights else default_weights_path(DEFAULT_GRADER)
    model = load_grader(weights)
    meta = model.meta
    chosen, summary = grader_split_items(data, meta, split)
    emb, present = embed_items(chosen, classifier=classifier, cache=embedding_cache, threads=threads,
                               progress=progress, expect=meta.classifier)
    fused = fuse_views(emb, present, fusion=meta.fusion)
    keep = present["front"] | present["back"]
    chosen = [it for it, k in zip(chosen, keep) if k]
    probs = model.predict_proba(fused[keep])
    truth, unknown = encode_targets(chosen, meta.heads)
    metrics = grading_metrics(truth, probs, meta, majority=meta.extra.get("majority", {}))
    result = {"weights": str(weights), "data": str(data), "split": split, "items": len(chosen),
              "heads": metrics, "labels_outside_vocabulary": unknown, "read": summary.to_dict()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_confusion_pngs(metrics, out, prefix=f"{split} ")
    log.info("grader metrics written to %s", out)
    return result
