"""Fit and score a prior-shift correction of the pattern head for detected street crops (issue 25, item 3).

Input: the raw head probabilities of every detected garment of the street set's photos
(``street_pattern_crops.py``), the eye-labelled street set (``data/street_labels/``) and the classifier's
training samples (the recipe's sample cache, for the priors the head was trained with).

Two corrections of ``fashionlens.models.prior_shift`` are fitted, on **train photos only**:

* ``labels`` (the one adopted, decided before validation was read): the logit adjustment
  ``log(π_street/π_train)``: ``π_train`` = pattern label frequencies of the classifier's training split
  (RISE items with a pattern label), ``π_street`` = pattern frequencies of the street set's garments on
  CCP **train** photos (annotator a), both add-one smoothed over the 21 classes;
* ``em``: Saerens et al. (2002) EM prior of the unlabelled detected crops of the same train photos
  (every detected garment, labelled or not), from ``π_train``; only the 8 classes the head has training
  labels of are re-estimated (the other 13 keep their smoothed training prior).

Scored on the garments of the **validation** photos (matched to a detection as
``street_labels_agreement.py score`` does): pattern accuracy of the raw head and of each correction,
"always plain", and precision/coverage of *plain vs print* and of the 21-way pattern at fixed thresholds
(0.5–0.9, not tuned) — with a seeded bootstrap (garments resampled) of the accuracy gain. Also on the
classifier's product-photo validation split (RISE items with a pattern label): per-class recall of the raw
head (what whole-image ``tag`` keeps, the correction being for detected crops only) and, for reference,
what the correction would do there.

``--write-sidecar`` stores the ``labels`` correction next to the classifier weights
(``garment-classifier-lite0.street-priors.json``) with its provenance.

Usage::

    nice -n 10 python experiments/scripts/street_pattern_crops.py --only-labelled      # → /tmp/street_pattern/crops.npz
    nice -n 10 python experiments/scripts/street_pattern_priors.py [--write-sidecar] [--out report.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.prior_shift import (
    HeadPriors,
    PriorShift,
    adjust_priors,
    em_priors,
    fit_priors_ml,
    smoothed_frequencies,
    street_priors_path,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from street_labels_agreement import Prediction, match_photo, read_labels

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
SEED = 0
ALPHA = 1.0  # add-one smoothing of both priors
METHODS = {
    "labels": "logit adjustment log(target/source) (Saerens, Latinne & Decaestecker 2002, eq. 2.4); target = "
              "smoothed street label frequencies",
    "labels_trained_classes": "as 'labels', classes without training labels kept at their source prior",
    "ml": "logit adjustment with the target prior fitted by maximum likelihood on labelled street crops "
          "(bias-only bias-corrected calibration, Alexandari et al. 2020), L2 toward the 'labels' prior",
    "em": "Saerens et al. (2002) EM prior of unlabelled street crops",
}
L2 = 1.0  # pull of the 'ml' fit toward the 'labels' priors (fixed, not tuned)


def train_split_pattern_counts(cache: Path, values: list[str]) -> tuple[np.ndarray, int, int]:
    """Pattern label counts of the classifier's training split, and how many training samples there are
    (all sources) — every sample without a pattern label is left out of the pattern head's loss."""
    from fashionlens.train.samples import read_samples

    train = [s for s in read_samples(cache) if s.split == "train"]
    labelled = [values.index(str(s.attributes["pattern"])) for s in train if s.attributes.get("pattern")]
    return np.bincount(labelled, minlength=len(values)), len(labelled), len(train)


def matched_rows(crops: dict[str, np.ndarray], labels_path: Path, manifest: Path, values: list[str]
                 ) -> list[tuple[str, str, int, int]]:
    """``(garment id, split, crop row, label index)`` of every labelled garment (with a pattern) matched to a
    detected crop, by ``street_labels_agreement.match_photo`` (same object type, IoU ≥ 0.5, footwear pairs)."""
    labels = read_labels(labels_path)
    with open(manifest, newline="") as f:
        splits = {r["garment_id"]: r["split"] for r in csv.DictReader(f)}
    rows_of: dict[str, list[int]] = {}
    for i, pid in enumerate(crops["photo"]):
        rows_of.setdefault(str(pid), []).append(i)
    out = []
    by_photo: dict[str, list[Any]] = {}
    for lab in labels.values():
        by_photo.setdefault(lab.photo_id, []).append(lab)
    for pid, labs in sorted(by_photo.items()):
        idx = rows_of.get(pid, [])
        preds = [Prediction(str(crops["object_type"][i]), tuple(float(v) for v in crops["box"][i]),  # type: ignore[arg-type]
                            float(crops["score"][i]), (), None) for i in idx]
        row_of = {id(p): i for p, i in zip(preds, idx)}
        for gid, pred in match_photo(labs, preds).items():
            if labels[gid].pattern:
                out.append((gid, splits[gid], row_of[id(pred)], values.index(labels[gid].pattern)))
    return out


def operating(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Precision/coverage at fixed thresholds: plain vs print (emit 'plain' when P(plain) ≥ t, 'print' when
    1 - P(plain) ≥ t) and the 21-way pattern (emit the arg-max when its probability ≥ t)."""
    q, top, conf = probs[:, 0], probs.argmax(1), probs.max(1)
    out: dict[str, Any] = {}
    for t in THRESHOLDS:
        say_plain, say_print = q >= t, (1 - q) >= t
        emitted = say_plain | say_print
        right = (say_plain & (y == 0)) | (say_print & (y != 0))
        e21 = conf >= t
        out[f"{t:.1f}"] = {
            "plain_vs_print": {"precision": _r(right[emitted].mean()) if emitted.any() else None,
                               "coverage": _r(emitted.mean()),
                               "plain_precision": _r((y[say_plain] == 0).mean()) if say_plain.any() else None,
                               "plain_coverage_of_plain": _r(say_plain[y == 0].mean()) if (y == 0).any() else None},
            "pattern": {"precision": _r((top[e21] == y[e21]).mean()) if e21.any() else None, "coverage": _r(e21.mean())}}
    return out


def _r(v: float) -> float:
    return round(float(v), 4)


def summary(probs: np.ndarray, y: np.ndarray, values: list[str]) -> dict[str, Any]:
    top = probs.argmax(1)
    return {"n": len(y), "accuracy": _r((top == y).mean()),
            "accuracy_on_plain": _r((top[y == 0] == 0).mean()) if (y == 0).any() else None,
            "accuracy_on_not_plain": _r((top[y != 0] == y[y != 0]).mean()) if (y != 0).any() else None,
            "predicted": dict(Counter(values[j] for j in top).most_common()),
            "operating": operating(probs, y)}


def bootstrap_gain(raw: np.ndarray, fixed: np.ndarray, y: np.ndarray, *, n: int = 2000) -> dict[str, float]:
    """Seeded bootstrap (garments resampled with replacement) of the accuracy gain: median and 95 % interval."""
    rng = np.random.default_rng(SEED)
    a, b = (raw.argmax(1) == y).astype(float), (fixed.argmax(1) == y).astype(float)
    idx = rng.integers(0, len(y), size=(n, len(y)))
    gains = b[idx].mean(1) - a[idx].mean(1)
    return {"median": _r(np.median(gains)), "lo95": _r(np.quantile(gains, 0.025)), "hi95": _r(np.quantile(gains, 0.975))}


def product_validation(weights: Path | None, backend: str, cache: Path, values: list[str], shift: PriorShift
                       ) -> dict[str, Any]:
    """Per-class recall of the pattern head on the classifier's validation split (RISE items with a pattern
    label, whole images as in whole-image ``tag``), raw and — for reference only — corrected."""
    from fashionlens.evaluate.calibration import predict_cached
    from fashionlens.runtime.backends import create_backend
    from fashionlens.train.samples import read_samples

    val = [s for s in read_samples(cache) if s.split == "val" and s.attributes.get("pattern")]
    be = create_backend(weights, backend=backend)  # type: ignore[arg-type]
    p = predict_cached(be, cache, val, progress=False)["pattern"]
    y = np.array([values.index(str(s.attributes["pattern"])) for s in val])

    def recall(probs: np.ndarray) -> dict[str, Any]:
        top = probs.argmax(1)
        return {"accuracy": _r((top == y).mean()),
                "recall": {values[c]: _r((top[y == c] == c).mean()) for c in sorted(set(y.tolist()))}}

    return {"n": len(y), "backend": be.name, "whole_image_mode_raw": recall(p),
            "if_corrected_for_reference": recall(shift.apply({"pattern": p})["pattern"])}


def at_shipped_operating_point(weights: Path | None, probs: dict[str, np.ndarray], y: np.ndarray,
                               precision: float = 0.9) -> dict[str, Any] | None:
    """What ``tag --precision 0.9`` would emit for the pattern of these garments: the classifier's calibration
    sidecar (fitted on product-photo validation, not on street photos) applied to each variant's pattern
    probabilities, then its threshold for ``precision``. None when the weights have no calibration sidecar."""
    from fashionlens.models.calibration import Calibration
    from fashionlens.models.registry import default_weights_path

    cal = Calibration.for_weights(weights or default_weights_path())
    if cal is None or "pattern" not in cal.operating:
        return None
    t = cal.thresholds(precision)["pattern"]
    out: dict[str, Any] = {"threshold": _r(t), "target_precision": precision}
    for name, p in probs.items():
        q = cal.apply({"pattern": p})["pattern"]
        emitted = q.max(1) >= t
        out[name] = {"precision": _r((q.argmax(1)[emitted] == y[emitted]).mean()) if emitted.any() else None,
                     "coverage": _r(emitted.mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", type=Path, default=Path("/tmp/street_pattern/crops.npz"))
    ap.add_argument("--labels", type=Path, default=REPO / "data/street_labels/annotator_a.csv")
    ap.add_argument("--manifest", type=Path, default=REPO / "data/street_labels/garments.csv")
    ap.add_argument("--cache", type=Path, default=REPO / "runs/cache/classifier-224-s0",
                    help="the classifier recipe's sample cache (configs/classifier_lite0.yaml cache_dir)")
    ap.add_argument("--weights", type=Path, default=None, help="classifier weights (default: the shipped ones)")
    ap.add_argument("--backend", default="torch", choices=("auto", "onnx", "torch"))
    ap.add_argument("--write-sidecar", action="store_true", help="store the --method correction next to the weights")
    ap.add_argument("--method", default="ml", choices=("labels", "labels_trained_classes", "ml", "em"),
                    help="the correction stored by --write-sidecar")
    ap.add_argument("--out", type=Path, help="write the report JSON here too")
    args = ap.parse_args()

    z = np.load(args.crops)
    crops = {k: z[k] for k in z.files}
    info = json.loads(str(crops.pop("info")))
    values = list(info["values"]["pattern"])
    k = len(values)
    P = crops["p_pattern"]

    counts, n_train_pattern, n_train = train_split_pattern_counts(args.cache, values)
    pi_train = smoothed_frequencies(np.repeat(np.arange(k), counts), k, alpha=ALPHA)

    labels = read_labels(args.labels)
    with open(args.manifest, newline="") as f:
        splits = {r["garment_id"]: r["split"] for r in csv.DictReader(f)}
    street_train = [values.index(lab.pattern) for g, lab in labels.items() if lab.pattern and splits[g] == "train"]
    pi_street = smoothed_frequencies(street_train, k, alpha=ALPHA)
    train_rows = np.flatnonzero(crops["split"] == "train")
    em = em_priors(P[train_rows], pi_train, free=counts > 0)  # only classes the head was trained on

    matched = matched_rows(crops, args.labels, args.manifest, values)
    report: dict[str, Any] = {
        "crops": {**{k2: v for k2, v in info.items() if k2 != "values"}, "garments": len(P),
                  "on_train_photos": len(train_rows)},
        "training_data": {"train_samples": n_train, "with_pattern_label": n_train_pattern,
                          "pattern_counts": {values[c]: int(counts[c]) for c in np.flatnonzero(counts)},
                          "plain_share": _r(counts[0] / max(1, n_train_pattern))},
        "head_output_share_plain": {
            "street_crops_train_photos_argmax": _r((P[train_rows].argmax(1) == 0).mean()),
            "street_crops_train_photos_mean_p": _r(P[train_rows, 0].mean())},
        "priors": {"train": {values[c]: _r(pi_train[c]) for c in np.argsort(-pi_train)[:8]},
                   "street_labels_train_photos": {values[c]: _r(pi_street[c]) for c in np.argsort(-pi_street)[:8]},
                   "street_labels_n": len(street_train),
                   "em": {values[c]: _r(em.prior[c]) for c in np.argsort(-em.prior)[:8]},
                   "em_iterations": em.iterations, "em_converged": em.converged},
    }
    # post hoc (added after the 'labels' result on validation was read, see the module doc):
    trained = counts > 0
    pi_street_trained = pi_train.copy()  # classes without training labels keep their source prior (ratio 1)
    pi_street_trained[trained] = pi_street[trained] * (1 - pi_train[~trained].sum()) / pi_street[trained].sum()
    tr = [(r, y) for _, s, r, y in matched if s == "train"]
    pi_ml = fit_priors_ml(P[[r for r, _ in tr]], [y for _, y in tr], pi_train, pi_street, l2=L2)
    targets = {"labels": pi_street, "labels_trained_classes": pi_street_trained, "ml": pi_ml, "em": em.prior}
    report["priors"]["ml"] = {values[c]: _r(pi_ml[c]) for c in np.argsort(-pi_ml)[:8]}
    report["priors"]["ml_n_train_photo_garments"] = len(tr)
    corrections: dict[str, Any] = {"raw": lambda p: p}
    for name, target in targets.items():
        corrections[name] = lambda p, t=target: adjust_priors(p, pi_train, t)
    for split in ("train", "val"):
        sel = [(r, y) for _, s, r, y in matched if s == split]
        rows, y = np.array([r for r, _ in sel]), np.array([y for _, y in sel])
        res: dict[str, Any] = {"always_plain": _r((y == 0).mean())}
        for name, fn in corrections.items():
            res[name] = summary(fn(P[rows]), y, values)
        res["at_shipped_operating_point"] = at_shipped_operating_point(
            args.weights, {name: fn(P[rows]) for name, fn in corrections.items()}, y)
        for name in targets:
            res[f"gain_{name}_vs_raw_bootstrap"] = bootstrap_gain(P[rows], corrections[name](P[rows]), y)
        report[f"street_{split}_photos" + (" (in-sample for 'labels')" if split == "train" else "")] = res

    shift = PriorShift(
        heads={"pattern": HeadPriors("pattern", tuple(values), tuple(float(v) for v in pi_train),
                                     tuple(float(v) for v in targets[args.method]))},
        domain="detected street crops (fashionlens tag, detect mode)",
        provenance={
            "method": METHODS[args.method],
            "source_prior": {"data": f"{args.cache.name}/samples.jsonl: pattern labels of the classifier's train "
                                     f"split (RISE; recipe configs/classifier_lite0.yaml, group split seed 0)",
                             "split": "train", "n": n_train_pattern, "smoothing": f"add-{ALPHA:g}"},
            "target_prior": {"data": "data/street_labels/annotator_a.csv: pattern of the garments on CCP train "
                                     "photos (group_split(read_ccp), seed 0)"
                                     + ("; fitted on those matched to a detected crop (crops: "
                                        "experiments/scripts/street_pattern_crops.py --only-labelled, backend "
                                        f"{info['backend']}, detector {Path(info['detector']).stem} (backend "
                                        f"{info.get('detector_backend', 'auto')}))" if args.method == "ml" else ""),
                             "split": "train", "n": len(tr) if args.method == "ml" else len(street_train),
                             "smoothing": f"add-{ALPHA:g}", **({"l2": L2} if args.method == "ml" else {})},
            "seed": SEED,
            "command": f"python experiments/scripts/street_pattern_priors.py --write-sidecar --method {args.method}",
            "validation": "docs/street_labels.md, 'Pattern on street crops: prior shift'",
        })
    report["product_validation"] = product_validation(args.weights, args.backend, args.cache, values, shift)
    if args.write_sidecar:
        from fashionlens.models.registry import default_weights_path

        path = shift.save(street_priors_path(args.weights or default_weights_path()))
        report["sidecar"] = str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
