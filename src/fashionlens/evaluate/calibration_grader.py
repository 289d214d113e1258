"""``fashionlens evaluate calibration --model grader``: calibrate the grading heads on their validation split.

The split is the grader recipe's own (``configs/grader_rise_subset.yaml``: the shared RISE subset,
:func:`fashionlens.io.splits.group_split` with the seed and fractions stored in the weights, 70/15/15,
seed 0). The items' photos are embedded by the classifier the heads were trained on (the embedding
cache of ``fashionlens train grader``), fused, and run through the heads. Per head, the method with the
lowest held-out negative log-likelihood — none (``identity``) or temperature scaling of the softmax,
``softmax(log p / T)`` — fitted on one half of validation (halves by item, seeded) and scored on the other,
both ways. Every "after" number is out of fold, as for the classifier (:mod:`fashionlens.evaluate.calibration`);
the calibration saved (``--save``, ``<weights stem>.calibration.json``) is fitted on the whole validation split,
with one operating table per head (precision/coverage of the decoded grade per calibrated-score threshold).

``test=True`` also measures the saved calibration once on the test split (ECE, precision and coverage at the
target precision's validation threshold) — for the model card; nothing is fitted on test.
"""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.evaluate.calibration import (
    Outcomes,
    fit_temperature,
    reliability_diagram,
)
from fashionlens.models.calibration import (
    DEFAULT_PRECISION,
    Calibration,
    HeadCalibration,
    OperatingCurve,
    calibration_path,
    expected_calibration_error,
)
from fashionlens.paths import runs_path

__all__ = ["grader_split", "run_grader_calibration"]

DEFAULT_GRADER_DATA = "../shared/datasets/rise"
_EPS = 1e-7


def grader_split(weights: Path, data: str | Path, split: str, *, embedding_cache: str | Path | None,
                 threads: int | None = 1, progress: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                          list[Any], Any]:
    """``(uncalibrated probabilities per head, truth per head (index, -1 = unlabelled), items, model)`` of the
    ``split`` items of ``data`` (the split stored with the weights), as :func:`fashionlens.evaluate.grading.evaluate_grader`
    computes them."""
    from fashionlens.evaluate.grading import grader_split_items
    from fashionlens.models.grader import fuse_views, load_grader
    from fashionlens.train.grader_data import embed_items, encode_targets

    model = load_grader(weights)
    meta = model.meta
    chosen, _ = grader_split_items(data, meta, split)
    emb, present = embed_items(chosen, classifier=None, cache=embedding_cache, threads=threads, progress=progress,
                               expect=meta.classifier)
    fused = fuse_views(emb, present, fusion=meta.fusion)
    keep = present["front"] | present["back"]
    chosen = [it for it, k in zip(chosen, keep) if k]
    probs = {k: np.asarray(v, np.float64) for k, v in model.predict_proba(fused[keep]).items()}
    truth, _unknown = encode_targets(chosen, meta.heads)
    return probs, {k: np.asarray(v, int) for k, v in truth.items()}, chosen, model


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], _EPS, None)).mean())


def _fit(head: Any, p: np.ndarray, y: np.ndarray, method: str) -> HeadCalibration:
    values = tuple(head.values)
    if method == "identity":
        return HeadCalibration(head.name, "single", values, method="identity")  # type: ignore[arg-type]
    return HeadCalibration(head.name, "single", values, method="temperature",  # type: ignore[arg-type]
                           temperature=fit_temperature(p, y, "single"))


def _outcomes(head: Any, p: np.ndarray, y: np.ndarray) -> Outcomes:
    from fashionlens.models.grader import decode_indices

    j = decode_indices(head, p)
    return Outcomes(p[np.arange(len(y)), j], j == y, np.arange(len(y)), len(y))


def run_grader_calibration(weights: str | Path | None = None, *, data: str | Path = DEFAULT_GRADER_DATA,
                           out_dir: str | Path | None = None, precision: float = DEFAULT_PRECISION, seed: int = 0,
                           save: bool = False, save_to: str | Path | None = None, test: bool = False,
                           embedding_cache: str | Path | None = None, threads: int | None = 1,
                           progress: bool = True, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit and measure the grading heads' calibration on their validation split; see the module doc."""
    from fashionlens.models.registry import DEFAULT_GRADER, default_weights_path

    weights_path = Path(weights) if weights else default_weights_path(DEFAULT_GRADER)
    cache = runs_path("cache", "grader") if embedding_cache is None else embedding_cache
    out = Path(runs_path("calibration") if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw, truth, items, model = grader_split(weights_path, data, "val", embedding_cache=cache, threads=threads,
                                            progress=progress)
    ids = sorted({str(it.item_id) for it in items})
    random.Random(f"calibration/{seed}").shuffle(ids)
    half_of = {i: k % 2 for k, i in enumerate(ids)}
    halves = np.array([half_of[str(it.item_id)] for it in items], int)
    final: dict[str, HeadCalibration] = {}
    operating: dict[str, OperatingCurve] = {}
    report: dict[str, Any] = {}
    pictures: list[str] = []
    for head in model.meta.heads:
        rows = np.flatnonzero(truth[head.name] >= 0)
        p, y, h = raw[head.name][rows], truth[head.name][rows], halves[rows]
        if len(rows) < 20:
            final[head.name] = _fit(head, p, y, "identity")
            continue
        nll = {}
        for method in ("identity", "temperature"):
            total = 0.0
            for half in (0, 1):
                cal = _fit(head, p[h != half], y[h != half], method)
                total += _nll(cal.apply(p[h == half]).astype(np.float64), y[h == half]) * int((h == half).sum())
            nll[method] = round(total / len(rows), 5)
        method = min(nll, key=nll.get)  # type: ignore[arg-type]
        oof = np.zeros_like(p)
        emitted = right = covered = 0
        for half in (0, 1):
            cal = _fit(head, p[h != half], y[h != half], method)
            oof[h == half] = cal.apply(p[h == half])
            fit_o = _outcomes(head, cal.apply(p[h != half]).astype(np.float64), y[h != half])
            t = OperatingCurve.from_scores(fit_o.score, fit_o.correct).threshold_for(precision)
            held = _outcomes(head, oof[h == half], y[h == half])
            keep = held.score >= t
            emitted += int(keep.sum())
            right += int(held.correct[keep].sum())
            covered += int(keep.sum())
        final[head.name] = _fit(head, p, y, method)
        full = _outcomes(head, final[head.name].apply(p).astype(np.float64), y)
        operating[head.name] = OperatingCurve.from_scores(full.score, full.correct)
        before, after = _outcomes(head, p, y), _outcomes(head, oof, y)
        row: dict[str, Any] = {
            "n": len(rows), "accuracy": round(float(before.correct.mean()), 4),
            "ece_before": round(expected_calibration_error(before.score, before.correct), 4),
            "ece_after": round(expected_calibration_error(after.score, after.correct), 4),
            "method": method, "heldout_nll": nll,
            f"precision_at_{precision:g}": round(right / emitted, 4) if emitted else None,
            f"coverage_at_{precision:g}": round(covered / len(rows), 4),
            "threshold": operating[head.name].threshold_for(precision),
        }
        if method == "temperature":
            row["temperature"] = final[head.name].temperature
        report[head.name] = row
        pictures.append(str(reliability_diagram(before, after, out / f"reliability_grader_{head.name}.png",
                                                title=f"grading head {head.name} — RISE validation, {len(rows)} items")))
    command = ("fashionlens evaluate calibration " + " ".join(shlex.quote(a) for a in (argv or []))).strip()
    meta = model.meta
    provenance = {"split": "val", "data": str(data), "split_seed": meta.extra.get("split", {}).get("seed", 0),
                  "split_fractions": meta.extra.get("split", {}).get("fractions"), "n": len(items),
                  "weights": {"name": meta.name, "version": meta.version, "file": weights_path.name},
                  "halves_seed": seed, "command": command,
                  "ece": "15 equal-width bins, out of fold (two halves of validation by item)"}
    calibration = Calibration(heads=final, operating=operating, provenance=provenance,
                              metrics={k: {m: v for m, v in r.items() if m != "heldout_nll"} for k, r in report.items()})
    summary: dict[str, Any] = {"model": {"name": meta.name, "version": meta.version}, "split": "val",
                               "n": len(items), "precision_target": precision, "heads": report, "pictures": pictures}
    if save or save_to:
        target = Path(save_to) if save_to else calibration_path(weights_path)
        summary["saved"] = str(calibration.save(target))
    if test:
        summary["test"] = _measure_on_test(weights_path, data, calibration, precision, cache, threads, progress)
    (out / "calibration_grader.json").write_text(json.dumps(summary, indent=2), "utf-8")
    return summary


def _measure_on_test(weights: Path, data: str | Path, calibration: Calibration, precision: float,
                     cache: str | Path | None, threads: int | None, progress: bool) -> dict[str, Any]:
    """The calibration and operating points (chosen on validation) measured once on the test split."""
    raw, truth, _items, model = grader_split(weights, data, "test", embedding_cache=cache, threads=threads,
                                             progress=progress)
    thresholds = calibration.thresholds(precision)
    out = {}
    for head in model.meta.heads:
        rows = np.flatnonzero(truth[head.name] >= 0)
        p, y = raw[head.name][rows], truth[head.name][rows]
        before = _outcomes(head, p, y)
        after = _outcomes(head, calibration.heads[head.name].apply(p).astype(np.float64), y)
        t = thresholds.get(head.name, float("inf"))
        keep = after.score >= t
        out[head.name] = {"n": len(rows), "accuracy": round(float(after.correct.mean()), 4), "threshold": t,
                          "ece_before": round(expected_calibration_error(before.score, before.correct), 4),
                          "ece_after": round(expected_calibration_error(after.score, after.correct), 4),
                          "precision": round(float(after.correct[keep].mean()), 4) if keep.any() else None,
                          "coverage": round(float(keep.mean()), 4)}
    return out
