"""``fashionlens evaluate calibration``: fit and measure the classifier's calibration on its validation split.

The validation split is the training recipe's own (``configs/classifier_lite0.yaml``: clothing + RISE +
CCP crops, group-aware 70/15/15 split with seed 0, prepared into ``runs/cache/classifier-224-s0`` by
``fashionlens train classifier`` — and by this command when the cache is missing). The test split is
never read.

For every head the method with the lowest negative log-likelihood on held-out validation halves: none
(``identity``), temperature scaling (single-label heads on ``log p``; multi-label heads on the log-odds),
or, for multi-label heads, per-class isotonic regression. Every number reported is *out of fold*: the validation garments are split
in two halves by group (seeded; a clothing sender, RISE item or CCP photo never straddles them), each half
is calibrated by a fit on the other, and the expected calibration error (ECE) before/after and the
precision/coverage at the target precision's threshold (chosen on the other half) are measured on the
pooled halves. The calibration that is saved (``--save``) is then fitted on the whole validation split.

Writes ``calibration.json`` (the report) and ``reliability_<field>.png`` per field to ``--out``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.calibration import (
    DEFAULT_PRECISION,
    Calibration,
    HeadCalibration,
    OperatingCurve,
    calibration_path,
    expected_calibration_error,
    temperature_multi,
    temperature_single,
)
from fashionlens.models.heads import HeadSpec
from fashionlens.paths import runs_path

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "configs/classifier_lite0.yaml"
_EPS = 1e-7


# ------------------------------------------------------------------------------ targets


@dataclass
class Outcomes:
    """A field's emitted-value scores and whether each was right (``item``: the garment of each score)."""

    score: np.ndarray
    correct: np.ndarray
    item: np.ndarray
    n_items: int


def category_mask(samples: Sequence[Any], values: Sequence[str]) -> np.ndarray:
    """``(N, C)`` bool: the categories each sample's label allows (its set, else its object type's)."""
    from fashionlens.train.samples import allowed_categories

    index = {v: i for i, v in enumerate(values)}
    out = np.zeros((len(samples), len(values)), bool)
    for i, s in enumerate(samples):
        for c in allowed_categories(s):
            out[i, index[c]] = True
    return out


def head_targets(samples: Sequence[Any], head: HeadSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, target)`` of the samples labelled for ``head``: the category head and multi-label heads give an
    ``(n, K)`` bool target (allowed categories / true values), single-label attributes an ``(n,)`` index."""
    if head.name == "category":
        mask = category_mask(samples, head.values)
        rows = np.flatnonzero(mask.any(1))
        return rows, mask[rows]
    if head.kind == "single":
        rows = np.array([i for i, s in enumerate(samples) if isinstance(s.attributes.get(head.name), str)], int)
        return rows, np.array([head.values.index(samples[i].attributes[head.name]) for i in rows], int)
    rows = np.array([i for i, s in enumerate(samples) if s.attributes.get(head.name)], int)
    target = np.zeros((len(rows), len(head.values)), bool)
    for k, i in enumerate(rows):
        for v in samples[i].attributes[head.name]:
            target[k, head.values.index(v)] = True
    return rows, target


# ------------------------------------------------------------------------------ fitting


def _nll_single(p: np.ndarray, target: np.ndarray) -> float:
    if target.ndim == 2:  # allowed set: -log of its total probability
        return float(-np.log(np.clip((p * target).sum(1), _EPS, None)).mean())
    return float(-np.log(np.clip(p[np.arange(len(p)), target], _EPS, None)).mean())


def _nll_multi(p: np.ndarray, target: np.ndarray) -> float:
    q = np.clip(p, _EPS, 1 - _EPS)
    return float(-(target * np.log(q) + (~target) * np.log(1 - q)).mean())


def fit_temperature(p: np.ndarray, target: np.ndarray, kind: str) -> float:
    """The temperature minimising the negative log-likelihood of ``target`` (bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    f = temperature_single if kind == "single" else temperature_multi
    nll = _nll_single if kind == "single" else _nll_multi
    res = minimize_scalar(lambda lt: nll(f(p, math.exp(lt)), target), bounds=(math.log(0.05), math.log(20.0)),
                          method="bounded", options={"xatol": 1e-4})
    return round(float(math.exp(res.x)), 5)


def fit_isotonic(p: np.ndarray, target: np.ndarray, head: HeadSpec) -> HeadCalibration:
    """Per-class isotonic regression of a multi-label head (a class never seen positive maps to ~0)."""
    from sklearn.isotonic import IsotonicRegression

    knots = []
    for k in range(p.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], target[:, k].astype(float))
        x, y = iso.X_thresholds_, iso.y_thresholds_
        y = np.clip(y, 0.001, 0.999)  # never a certain 0 or 1 from a few hundred garments
        knots.append((tuple(round(float(v), 6) for v in x), tuple(round(float(v), 6) for v in y)))
    return HeadCalibration(head.name, "multi", tuple(head.values), method="isotonic", knots=tuple(knots))


def fit_head(p: np.ndarray, target: np.ndarray, head: HeadSpec, method: str = "temperature") -> HeadCalibration:
    """One head's calibration by ``method`` (``identity``, ``temperature`` or, multi-label only, ``isotonic``)."""
    if method == "identity":
        return HeadCalibration(head.name, head.kind, tuple(head.values), method="identity")
    if method == "isotonic":
        return fit_isotonic(p, target, head)
    t = fit_temperature(p, target, head.kind)
    return HeadCalibration(head.name, head.kind, tuple(head.values), method="temperature", temperature=t)


def group_halves(samples: Sequence[Any], seed: int) -> np.ndarray:
    """0/1 per sample: two halves of the validation split by group (seeded, per source)."""
    groups = sorted({(s.source, s.group) for s in samples})
    random.Random(f"calibration/{seed}").shuffle(groups)
    half = {g: i % 2 for i, g in enumerate(groups)}
    return np.array([half[(s.source, s.group)] for s in samples], int)


def heldout_nll(p: np.ndarray, target: np.ndarray, halves: np.ndarray, head: HeadSpec) -> dict[str, float]:
    """Held-out negative log-likelihood of each calibration method for a head (fit on one half of validation,
    scored on the other, both ways): ``identity`` and ``temperature``, and ``isotonic`` for multi-label heads."""
    methods = ("identity", "temperature", "isotonic") if head.kind == "multi" else ("identity", "temperature")
    nll = _nll_multi if head.kind == "multi" else _nll_single
    out = {}
    for method in methods:
        total, n = 0.0, 0
        for h in (0, 1):
            fit, held = halves == 1 - h, halves == h
            cal = fit_head(p[fit], target[fit], head, method)
            total += nll(cal.apply(p[held]).astype(np.float64), target[held]) * held.sum()
            n += held.sum()
        out[method] = round(total / max(1, n), 5)
    return out


# ------------------------------------------------------------------------------ outcomes per field


def field_outcomes(name: str, probs: dict[str, np.ndarray], samples: Sequence[Any], heads: dict[str, HeadSpec],
                   *, type_of: Callable[[np.ndarray], np.ndarray] | None = None, top_only: bool = False) -> Outcomes:
    """The field's emitted scores and correctness: single-valued fields one per labelled garment (the arg-max);
    ``colours`` one per (garment, colour) pair, or the top colour only (``top_only``); ``category`` on exactly
    labelled garments; ``object_type`` from the category head's probabilities summed per type (``type_of``)."""
    from fashionlens.taxonomy import load_taxonomy

    if name == "object_type":
        assert type_of is not None
        tax = load_taxonomy()
        rows = np.array([i for i, s in enumerate(samples) if s.object_type], int)
        tp = type_of(probs["category"][rows])
        truth = np.array([tax.object_type_index(samples[i].object_type) for i in rows])
        return Outcomes(tp.max(1), tp.argmax(1) == truth, np.arange(len(rows)), len(rows))
    head = heads[name]
    if name == "category":
        rows = np.array([i for i, s in enumerate(samples) if len(s.categories) == 1], int)
        p = probs[name][rows]
        truth = np.array([head.values.index(samples[i].categories[0]) for i in rows])
        return Outcomes(p.max(1), p.argmax(1) == truth, np.arange(len(rows)), len(rows))
    rows, target = head_targets(samples, head)
    p = probs[name][rows]
    if head.kind == "single":
        return Outcomes(p.max(1), p.argmax(1) == target, np.arange(len(rows)), len(rows))
    if top_only:
        top = p.argmax(1)
        return Outcomes(p.max(1), target[np.arange(len(rows)), top], np.arange(len(rows)), len(rows))
    item = np.repeat(np.arange(len(rows)), p.shape[1])
    return Outcomes(p.reshape(-1), target.reshape(-1), item, len(rows))


# ------------------------------------------------------------------------------ pictures


def reliability_diagram(before: Outcomes, after: Outcomes, path: str | Path, *, title: str, bins: int = 15) -> Path:
    """Two panels (uncalibrated, calibrated): accuracy per confidence bin against the diagonal, with the ECE
    and the number of values per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), dpi=110, sharey=True)
    edges = np.linspace(0, 1, bins + 1)
    for ax, o, label in ((axes[0], before, "uncalibrated"), (axes[1], after, "calibrated (out of fold)")):
        which = np.minimum((o.score * bins).astype(int), bins - 1)
        acc = np.array([o.correct[which == b].mean() if (which == b).any() else np.nan for b in range(bins)])
        conf = np.array([o.score[which == b].mean() if (which == b).any() else np.nan for b in range(bins)])
        count = np.bincount(which, minlength=bins)
        ax.bar(edges[:-1], np.nan_to_num(acc), width=1 / bins, align="edge", color="#4C72B0", edgecolor="white",
               alpha=0.85, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
        ax.plot(edges[:-1] + 0.5 / bins, conf, "_", color="#C44E52", ms=11, mew=2,
                label="mean confidence in the bin")
        for b in range(bins):
            if count[b]:
                ax.text(edges[b] + 0.5 / bins, 0.02, str(count[b]), ha="center", va="bottom", fontsize=6,
                        rotation=90, color="white" if np.nan_to_num(acc[b]) > 0.15 else "black")
        ece = expected_calibration_error(o.score, o.correct, bins=bins)
        ax.set_title(f"{label}: ECE {ece:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (score of the emitted value)")
    axes[0].set_ylabel("accuracy (share right)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ the run


def validation_samples(recipe: str | Path = DEFAULT_RECIPE, data_root: str | None = None) -> tuple[list[Any], Any]:
    """The recipe's validation samples (preparing the recipe's sample cache when missing) and the config."""
    return split_samples(recipe, "val", data_root)


def split_samples(recipe: str | Path = DEFAULT_RECIPE, split: str = "val", data_root: str | None = None
                  ) -> tuple[list[Any], Any]:
    """The recipe's samples of ``split`` (``val`` or ``test``; preparing the recipe's sample cache when missing)
    and the config."""
    if split not in ("val", "test"):
        raise ValueError(f"split: expected val or test, got {split!r}")
    from fashionlens.train.config import load_config

    overrides = {"data_root": data_root} if data_root else None
    config = load_config(recipe, overrides)
    cache = Path(config.cache_dir)
    if not (cache / "samples.jsonl").is_file():
        from fashionlens.train.classifier import ensure_cache

        log.info("preparing the recipe's sample cache in %s", cache)
        ensure_cache(config)
    from fashionlens.train.samples import read_samples

    cache_meta = json.loads((cache / "cache.json").read_text("utf-8"))
    if cache_meta["seed"] != config.seed or list(cache_meta["fractions"]) != list(config.split_fractions):
        raise ValueError(f"{cache} was prepared with seed {cache_meta['seed']} and fractions {cache_meta['fractions']},"
                         f" the recipe {recipe} asks for {config.seed} and {list(config.split_fractions)}")
    samples = [s for s in read_samples(cache) if s.split == split and s.source in config.sources]
    if not samples:
        raise ValueError(f"no {split} samples in {cache}")
    return samples, config


def predict_cached(backend: Any, cache_dir: str | Path, samples: Sequence[Any], *, batch_size: int = 64,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """Uncalibrated head probabilities of the cached sample images (backend outputs, as in ``tag``)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from fashionlens.pipeline import preprocess

    meta = backend.meta
    out: dict[str, list[np.ndarray]] = {h.name: [] for h in meta.heads}
    for start in tqdm(range(0, len(samples), batch_size), desc="predict validation", disable=not progress):
        batch = []
        for s in samples[start:start + batch_size]:
            with Image.open(Path(cache_dir) / s.file) as im:
                batch.append(preprocess(np.asarray(im.convert("RGB")), meta))
        for k, v in backend.run(np.stack(batch)).items():
            if k in out:
                out[k].append(np.asarray(v, np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def _predictions(be: Any, weights_path: Path, cache_dir: str | Path, samples: Sequence[Any], out: Path,
                 batch_size: int, progress: bool) -> dict[str, np.ndarray]:
    """:func:`predict_cached`, kept in ``out/predictions.npz`` and reused while the weights file (name, size,
    time), the backend and the samples are the same."""
    import hashlib

    model_file = weights_path.with_suffix(".onnx") if be.name == "onnx" else weights_path
    st = model_file.stat()
    key = hashlib.sha256(json.dumps([str(model_file.resolve()), st.st_size, st.st_mtime_ns, be.name,
                                     [s.file for s in samples]]).encode()).hexdigest()
    cached = out / "predictions.npz"
    if cached.is_file():
        with np.load(cached) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    raw = predict_cached(be, cache_dir, samples, batch_size=batch_size, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cached, key=np.array(key), **raw)
    return raw


def _fit_all(probs: dict[str, np.ndarray], samples: Sequence[Any], heads: Sequence[HeadSpec],
             methods: dict[str, str]) -> dict[str, HeadCalibration]:
    out = {}
    for h in heads:
        rows, target = head_targets(samples, h)
        if len(rows) < 20:
            log.warning("head %s: only %d labelled validation garments; left uncalibrated", h.name, len(rows))
            out[h.name] = HeadCalibration(h.name, h.kind, tuple(h.values), method="identity")
            continue
        out[h.name] = fit_head(probs[h.name][rows], target, h, methods.get(h.name, "temperature"))
    return out


def _apply(cal: dict[str, HeadCalibration], probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: cal[k].apply(v).astype(np.float64) if k in cal else v for k, v in probs.items()}


def _select(o: Outcomes, mask_items: np.ndarray) -> Outcomes:
    keep = mask_items[o.item]
    remap = np.cumsum(mask_items) - 1
    return Outcomes(o.score[keep], o.correct[keep], remap[o.item[keep]], int(mask_items.sum()))


def run_calibration(weights: str | Path | None = None, *, recipe: str | Path = DEFAULT_RECIPE,
                    data_root: str | None = None, backend: str = "auto", out_dir: str | Path | None = None,
                    precision: float = DEFAULT_PRECISION, seed: int = 0, save: bool = False,
                    save_to: str | Path | None = None, batch_size: int = 64, progress: bool = True,
                    argv: Sequence[str] | None = None, precomputed: Mapping[str, np.ndarray] | None = None,
                    precomputed_files: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit and measure the calibration of a classifier on its recipe's validation split; see the module doc.

    ``save``: write the calibration fitted on the whole validation split next to the weights
    (:func:`~fashionlens.models.calibration.calibration_path`), or to ``save_to``. ``precomputed``: the heads'
    probabilities on the validation samples whose files are ``precomputed_files`` (in that order), when the
    caller already has them (``train classifier --corrections``); used only when those files are exactly the
    recipe's validation samples, otherwise the network runs over them as usual."""
    from fashionlens.models.registry import default_weights_path
    from fashionlens.runtime.backends import create_backend
    from fashionlens.taxonomy import load_taxonomy

    out_dir = runs_path("calibration") if out_dir is None else out_dir
    weights_path = Path(weights) if weights else default_weights_path()
    be = create_backend(weights_path, backend=backend)  # type: ignore[arg-type]
    meta = be.meta
    samples, config = validation_samples(recipe, data_root)
    if precomputed is not None and list(precomputed_files or ()) == [s.file for s in samples]:
        raw = {k: np.asarray(v, np.float64) for k, v in precomputed.items()}
    else:
        if precomputed is not None:
            log.warning("precomputed predictions are for other samples than the recipe's validation split; "
                        "predicting them again")
        raw = _predictions(be, weights_path, config.cache_dir, samples, Path(out_dir), batch_size, progress)
    heads = {h.name: h for h in meta.heads}
    tax = load_taxonomy()
    type_index = np.array([tax.object_type_index(tax.object_type_of(c)) for c in heads["category"].values])

    def type_of(cat: np.ndarray) -> np.ndarray:
        out = np.zeros((len(cat), len(tax.object_types)))
        for j, t in enumerate(type_index):
            out[:, t] += cat[:, j]
        return out

    halves = group_halves(samples, seed)
    # per head: identity, temperature (or isotonic, multi-label heads), by held-out NLL
    methods: dict[str, str] = {}
    method_nll: dict[str, dict[str, float]] = {}
    for h in meta.heads:
        rows, target = head_targets(samples, h)
        if len(rows) >= 20:
            method_nll[h.name] = heldout_nll(raw[h.name][rows], target, halves[rows], h)
            methods[h.name] = min(method_nll[h.name], key=method_nll[h.name].get)  # type: ignore[arg-type]
    # out-of-fold calibrated probabilities
    oof = {k: np.zeros_like(v) for k, v in raw.items()}
    for half in (0, 1):
        fit = [s for s, m in zip(samples, halves) if m != half]
        cal = _fit_all({k: v[halves != half] for k, v in raw.items()}, fit, meta.heads, methods)
        applied = _apply(cal, {k: v[halves == half] for k, v in raw.items()})
        for k, column in oof.items():
            column[halves == half] = applied[k]

    fields = [h.name for h in meta.heads] + ["object_type"]
    report: dict[str, Any] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures = []
    final = _fit_all(raw, samples, meta.heads, methods)
    full = _apply(final, raw)
    operating: dict[str, OperatingCurve] = {}
    for name in fields:
        variants = [(name, False)] + ([(f"{name}_top", True)] if name in heads and heads[name].kind == "multi" else [])
        for label, top in variants:
            before = field_outcomes(name, raw, samples, heads, type_of=type_of, top_only=top)
            after = field_outcomes(name, oof, samples, heads, type_of=type_of, top_only=top)
            if before.n_items == 0:
                continue
            multi = name in heads and heads[name].kind == "multi" and not top
            row: dict[str, Any] = {
                "n": before.n_items,
                "ece_before": round(expected_calibration_error(before.score, before.correct), 4),
                "ece_after": round(expected_calibration_error(after.score, after.correct), 4),
                "accuracy": round(float(before.correct.mean()), 4) if not multi else None,
            }
            if not top:
                # operating point out of fold: threshold chosen on one half, measured on the other
                item_half = _item_halves(name, samples, heads, halves)
                emitted, right, covered = 0, 0, 0
                for half in (0, 1):
                    other = _select(after, item_half != half)
                    this = _select(after, item_half == half)
                    curve = OperatingCurve.from_scores(other.score, other.correct,
                                                       emitted_of=other.item if multi else None,
                                                       n_items=other.n_items)
                    t = curve.threshold_for(precision)
                    keep = this.score >= t
                    emitted += int(keep.sum())
                    right += int(this.correct[keep].sum())
                    covered += len(np.unique(this.item[keep]))
                row[f"precision_at_{precision:g}"] = round(right / emitted, 4) if emitted else None
                row[f"coverage_at_{precision:g}"] = round(covered / max(1, after.n_items), 4)
                fo = field_outcomes(name, full, samples, heads, type_of=type_of)
                operating[name] = OperatingCurve.from_scores(fo.score, fo.correct,
                                                             emitted_of=fo.item if multi else None,
                                                             n_items=fo.n_items)
                row["threshold"] = operating[name].threshold_for(precision)
            if name in final and not top:
                hc = final[name]
                row["method"] = hc.method
                if hc.method == "temperature":
                    row["temperature"] = hc.temperature
                if name in method_nll:
                    row["heldout_nll"] = method_nll[name]
            report[label] = row
            pictures.append(str(reliability_diagram(before, after, out / f"reliability_{label}.png",
                                                    title=f"{label} — validation, {before.n_items} garments"
                                                          + (f", {len(before.score)} (garment, value) pairs"
                                                             if multi else ""))))
    command = "fashionlens evaluate calibration " + " ".join(shlex.quote(a) for a in (argv or []))
    provenance = {
        "split": "val", "recipe": str(recipe), "seed": config.seed, "split_fractions": list(config.split_fractions),
        "sources": list(config.sources), "n": len(samples), "cache": str(config.cache_dir),
        "weights": {"name": meta.name, "version": meta.version, "file": weights_path.name},
        "backend": be.name, "command": command.strip(), "halves_seed": seed,
        "ece": "15 equal-width bins, out of fold (two halves of validation by group)",
    }
    calibration = Calibration(heads=final, operating=operating, provenance=provenance,
                              metrics={k: {m: v for m, v in r.items() if m != "heldout_nll"}
                                       for k, r in report.items()})
    summary = {"model": {"name": meta.name, "version": meta.version, "backend": be.name}, "split": "val",
               "n": len(samples), "precision_target": precision, "fields": report, "pictures": pictures}
    if save or save_to:
        target = Path(save_to) if save_to else calibration_path(weights_path)
        summary["saved"] = str(calibration.save(target))
    (out / "calibration.json").write_text(json.dumps(summary, indent=2), "utf-8")
    summary["outputs"] = [str(out / "calibration.json")] + pictures
    return summary


def _item_halves(name: str, samples: Sequence[Any], heads: dict[str, HeadSpec], halves: np.ndarray) -> np.ndarray:
    """The half of each garment :func:`field_outcomes` counts for ``name``, in its order."""
    if name == "object_type":
        rows = np.array([i for i, s in enumerate(samples) if s.object_type], int)
    elif name == "category":
        rows = np.array([i for i, s in enumerate(samples) if len(s.categories) == 1], int)
    else:
        rows, _ = head_targets(samples, heads[name])
    return halves[rows]


def main_argv() -> list[str]:
    """The command line after ``fashionlens evaluate calibration`` (for the provenance)."""
    argv = sys.argv[1:]
    return argv[argv.index("calibration") + 1:] if "calibration" in argv else argv


# ------------------------------------------------------------------------------ the detector

#: the detector's calibration: one multi-label "head" of one value, ``garment`` (is this a real garment of
#: the detected type?), and one operating curve, ``detection``
DETECTOR_HEAD = HeadSpec("garment", "multi", ("garment",))
DETECTION_FIELD = "detection"


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` IoU of ``xyxy`` boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_detections(scores: np.ndarray, boxes: np.ndarray, types: Sequence[str], gt_boxes: np.ndarray,
                     gt_types: Sequence[str], *, iou_thresh: float = 0.5) -> np.ndarray:
    """Greedy one-to-one matching, highest score first, same object type, IoU ≥ ``iou_thresh``: whether
    each detection found a ground-truth garment. (Greedy by score: a detection's outcome does not depend on
    lower-scored ones, so one matching at a low threshold serves every higher threshold.)"""
    matched = np.zeros(len(scores), bool)
    if not len(scores) or not len(gt_boxes):
        return matched
    iou = _iou(np.asarray(boxes, np.float64), np.asarray(gt_boxes, np.float64))
    used: set[int] = set()
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        best, best_iou = -1, iou_thresh
        for j in range(len(gt_boxes)):
            if j not in used and gt_types[j] == types[i] and iou[i, j] >= best_iou:
                best, best_iou = j, iou[i, j]
        if best >= 0:
            used.add(best)
            matched[i] = True
    return matched


def detection_curve(scores: np.ndarray, matched: np.ndarray, n_gt: int, points: int = 200) -> OperatingCurve:
    """Precision (share of kept detections that match a garment) and coverage (recall: share of the
    ground-truth garments found) of keeping detections whose calibrated score ≥ each threshold."""
    scores = np.asarray(scores, np.float64)
    grid = np.unique(np.concatenate([[0.0], np.quantile(scores, np.linspace(0, 1, points + 1),
                                                        method="inverted_cdf")]))
    prec, cov = [], []
    for t in grid:
        keep = scores >= t
        prec.append(round(float(matched[keep].mean()) if keep.any() else 1.0, 4))
        cov.append(round(float(matched[keep].sum()) / max(1, n_gt), 4))
    return OperatingCurve(tuple(round(float(t), 6) for t in grid), tuple(prec), tuple(cov), int(n_gt))


def _matched_detections(detector: Any, records: Sequence[Any], desc: str, progress: bool
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(score, matched, photo index, garments per photo)`` of every detection on ``records`` (see
    :func:`match_detections`)."""
    from tqdm.auto import tqdm

    from fashionlens.imageio import load_image

    scores, matched, photo = [], [], []
    n_gt = np.zeros(len(records), int)
    for k, rec in enumerate(tqdm(records, desc=desc, disable=not progress)):
        found = detector.detect(load_image(rec.path))
        gts = [g for g in rec.garments if g.bbox_xyxy is not None and g.object_type]
        n_gt[k] = len(gts)
        m = match_detections(found.confidence, found.xyxy, found.object_type,
                             np.array([g.bbox_xyxy for g in gts], np.float64).reshape(-1, 4),
                             [g.object_type for g in gts])
        scores.append(np.asarray(found.confidence, np.float64))
        matched.append(m)
        photo.append(np.full(len(m), k))
    return np.concatenate(scores), np.concatenate(matched), np.concatenate(photo), n_gt


def detector_test_operating_points(weights: str | Path | None = None, *, dataset: str = "ccp",
                                   data_root: str | None = None, seed: int = 0, backend: str = "auto",
                                   precision: float = DEFAULT_PRECISION, min_score: float = 0.05,
                                   progress: bool = True) -> dict[str, Any]:
    """The detector's saved calibration and operating points (chosen on validation) measured once on the test
    photos of ``dataset``: ECE of the raw and calibrated scores, precision and recall at the stored score
    threshold (the default) and at the calibrated threshold of ``precision``. Nothing is fitted on test."""
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.detection.settings import DetectSettings
    from fashionlens.evaluate.detector_report import load_evaluation_records
    from fashionlens.paths import default_data_root

    root = data_root or default_data_root()
    records = [r for r in load_evaluation_records(dataset=dataset, data_root=root, split="test", seed=seed)
               if any(g.bbox_xyxy is not None and g.object_type for g in r.garments)]
    detector = GarmentDetector(weights, settings=DetectSettings(score_thresh=min_score), backend=backend)
    cal = Calibration.for_weights(detector.path)
    if cal is None or DETECTOR_HEAD.name not in cal.heads:
        raise ValueError(f"{detector.path} has no calibration sidecar; run `fashionlens evaluate calibration "
                         "--model detector --save`")
    s, y, _ph, n_gt = _matched_detections(detector, records, "detect test", progress)
    c = cal.heads[DETECTOR_HEAD.name].apply(s[:, None])[:, 0].astype(np.float64)
    total = max(1, int(n_gt.sum()))
    stored = float((detector.meta.extra.get("defaults") or {}).get("score_thresh", 0.3))

    def at(keep: np.ndarray) -> dict[str, float | None]:
        return {"precision": round(float(y[keep].mean()), 4) if keep.any() else None,
                "recall": round(float(y[keep].sum()) / total, 4), "detections": int(keep.sum())}

    t = cal.operating[DETECTION_FIELD].threshold_for(precision) if DETECTION_FIELD in cal.operating else math.inf
    return {"split": "test", "dataset": dataset, "photos": len(records), "garments": int(n_gt.sum()),
            "detections": len(s), "min_score": min_score,
            "ece_before": round(expected_calibration_error(s, y), 4),
            "ece_after": round(expected_calibration_error(c, y), 4),
            "stored_score_thresh": stored, "at_stored_score_thresh": at(s >= stored),
            f"threshold_at_{precision:g}": t, f"at_{precision:g}": at(c >= t)}


def run_detector_calibration(weights: str | Path | None = None, *, dataset: str = "ccp", data_root: str | None = None,
                             seed: int = 0, backend: str = "auto", out_dir: str | Path | None = None,
                             precision: float = DEFAULT_PRECISION, min_score: float = 0.05, save: bool = False,
                             save_to: str | Path | None = None, progress: bool = True,
                             argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Calibrate the detector's garment scores on the validation photos of ``dataset`` (the detector's own
    group split, seed ``seed``): every detection down to ``min_score`` is matched to the ground truth (same
    object type, box IoU ≥ 0.5), isotonic regression maps its score to the chance that it is a real garment,
    and the operating table gives precision and recall per calibrated-score threshold. Numbers out of fold
    (two halves of the photos), as for the classifier; ``save`` stores the fit on all validation photos next to
    the detector's weights."""
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.detection.settings import DetectSettings
    from fashionlens.evaluate.detector_report import load_evaluation_records
    from fashionlens.paths import default_data_root

    out_dir = runs_path("calibration") if out_dir is None else out_dir
    root = data_root or default_data_root()
    records = [r for r in load_evaluation_records(dataset=dataset, data_root=root, split="val", seed=seed)
               if any(g.bbox_xyxy is not None and g.object_type for g in r.garments)]
    if not records:
        raise ValueError(f"no labelled validation photos of {dataset} under {root}")
    detector = GarmentDetector(weights, settings=DetectSettings(score_thresh=min_score), backend=backend)
    s, y, ph, n_gt = _matched_detections(detector, records, "detect validation", progress)
    halves = np.array([i % 2 for i in range(len(records))])
    random.Random(f"calibration/{seed}").shuffle(halves)
    det_half = halves[ph]
    oof = np.zeros_like(s)
    emitted = right = 0
    for half in (0, 1):
        fit, held = det_half != half, det_half == half
        cal = fit_isotonic(s[fit, None], y[fit, None], DETECTOR_HEAD)
        oof[held] = cal.apply(s[held, None])[:, 0]
        t = detection_curve(cal.apply(s[fit, None])[:, 0], y[fit], int(n_gt[halves != half].sum())
                            ).threshold_for(precision)
        keep = held & (oof >= t)
        emitted += int(keep.sum())
        right += int(y[keep].sum())
    found_gt = right  # a matched detection found one garment
    final = fit_isotonic(s[:, None], y[:, None], DETECTOR_HEAD)
    curve = detection_curve(final.apply(s[:, None])[:, 0], y, int(n_gt.sum()))
    stored = float((detector.meta.extra.get("defaults") or {}).get("score_thresh", 0.3))
    at_default = s >= stored
    row = {
        "photos": len(records), "garments": int(n_gt.sum()), "detections": len(s), "min_score": min_score,
        "ece_before": round(expected_calibration_error(s, y), 4), "ece_after": round(expected_calibration_error(oof, y), 4),
        f"precision_at_{precision:g}": round(right / emitted, 4) if emitted else None,
        f"recall_at_{precision:g}": round(found_gt / max(1, int(n_gt.sum())), 4),
        "threshold": curve.threshold_for(precision),
        "stored_score_thresh": stored,
        "at_stored_score_thresh": {"precision": round(float(y[at_default].mean()), 4) if at_default.any() else None,
                                   "recall": round(float(y[at_default].sum()) / max(1, int(n_gt.sum())), 4)},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    picture = reliability_diagram(Outcomes(s, y, ph, len(records)), Outcomes(oof, y, ph, len(records)),
                                  out / "reliability_detector.png",
                                  title=f"detector garment score — {dataset} validation, {len(records)} photos, "
                                        f"{len(s)} detections ≥ {min_score}")
    provenance = {"split": "val", "dataset": dataset, "seed": seed, "photos": len(records), "n": len(s),
                  "garments": int(n_gt.sum()), "match": "same object type, box IoU >= 0.5, greedy by score",
                  "min_score": min_score, "weights": {"name": detector.meta.name, "version": detector.meta.version,
                                                      "file": Path(detector.path).name},
                  "backend": detector.backend, "halves_seed": seed,
                  "command": ("fashionlens evaluate calibration " + " ".join(shlex.quote(a) for a in (argv or []))).strip()}
    calibration = Calibration(heads={DETECTOR_HEAD.name: final}, operating={DETECTION_FIELD: curve},
                              provenance=provenance, metrics={DETECTION_FIELD: row})
    summary: dict[str, Any] = {"model": detector.model_info, "split": "val", "precision_target": precision,
                               "detector": row, "pictures": [str(picture)]}
    if save or save_to:
        target = Path(save_to) if save_to else calibration_path(detector.path)
        summary["saved"] = str(calibration.save(target))
    (out / "calibration_detector.json").write_text(json.dumps(summary, indent=2), "utf-8")
    return summary
