"""Train the garment pixel filter (``src/fashionlens/weights/garment-pixel-filter.npz``) on CCP train photos.

Input: ``garment_pixel_data.py --split train`` output (the shipped detector's masks on the 611 CCP
train photos, every pixel with CCP's label). Target: the pixel is skin, hair or background (CCP
``null``). Up to ``--per-garment`` pixels are drawn from each garment (seeded), features are
standardised, and a one-hidden-layer MLP (scikit-learn ``MLPClassifier``, ``relu``, adam, seeded)
is fitted; its weights are stored as NumPy arrays (no scikit-learn at run time). A quarter of the
train *photos* (seeded) is held out to report held-out train metrics and to set the
decision threshold: the lowest probability at which the held-out train photos' garment pixels are still
kept at ``--min-garment-kept`` (0.95; the rule, fixed before validation was read: lose at most 5 % of
the garment's own pixels). Validation numbers come from ``measure_garment_pixels.py`` (CCP val).

    .venv/bin/python experiments/scripts/train_garment_pixel_filter.py --data /tmp/gp_train.npz \\
        --out src/fashionlens/weights/garment-pixel-filter.npz
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

from fashionlens.models.pixel_filter import N_PIXEL_FEATURES, GarmentPixelFilter

NOT_GARMENT = (2, 3, 4)  # skin, hair, background in garment_pixel_data.GROUPS


def _sample(garment: np.ndarray, per_garment: int, rng: np.random.Generator) -> np.ndarray:
    order = np.argsort(garment, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(garment[order]) != 0])
    ends = np.r_[starts[1:], len(order)]
    picks = []
    for s, e in zip(starts, ends):
        idx = order[s:e]
        picks.append(idx if len(idx) <= per_garment else rng.choice(idx, per_garment, replace=False))
    return np.sort(np.concatenate(picks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-garment", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-garment-kept", type=float, default=0.95)
    ap.add_argument("--target", choices=("body-background", "not-own"), default="body-background",
                    help="what the filter drops: skin, hair and background (default), or also other garments' pixels")
    args = ap.parse_args()
    d = np.load(args.data)
    meta = json.loads(str(d["meta"]))
    if meta["split"] != "train":
        raise SystemExit(f"{args.data}: expected the CCP train split, got {meta['split']!r}")
    x_all, groups, garment = d["features"], d["groups"], d["garment"]
    if x_all.shape[1] != N_PIXEL_FEATURES:
        raise SystemExit(f"expected {N_PIXEL_FEATURES} features, got {x_all.shape[1]} (re-extract the data)")
    rng = np.random.default_rng(args.seed)
    photos = sorted({g["photo"] for g in meta["garments"]})
    held_photos = set(rng.choice(photos, len(photos) // 4, replace=False).tolist())
    held_garment = np.array([g["photo"] in held_photos for g in meta["garments"]])
    idx = _sample(garment, args.per_garment, rng)
    fit_idx, held_idx = idx[~held_garment[garment[idx]]], idx[held_garment[garment[idx]]]
    y = (np.isin(groups, NOT_GARMENT) if args.target == "body-background" else groups != 0).astype(int)
    mean, scale = x_all[fit_idx].mean(0), x_all[fit_idx].std(0) + 1e-6
    xs = (x_all - mean) / scale
    t0 = time.perf_counter()
    mlp = MLPClassifier(hidden_layer_sizes=(args.hidden,), activation="relu", alpha=1e-4, batch_size=512,
                        learning_rate_init=1e-3, max_iter=60, early_stopping=True, n_iter_no_change=5,
                        random_state=args.seed)
    mlp.fit(xs[fit_idx], y[fit_idx])
    fit_s = time.perf_counter() - t0
    logreg = LogisticRegression(max_iter=500).fit(xs[fit_idx], y[fit_idx])  # the baseline it must beat

    p_held = mlp.predict_proba(xs[held_idx])[:, 1]
    # the threshold: keep ≥ min_garment_kept of the held-out garment pixels (p below it)
    threshold = float(np.clip(np.quantile(p_held[y[held_idx] == 0], args.min_garment_kept), 0.01, 0.99))

    def report(p: np.ndarray, yy: np.ndarray, t: float = threshold) -> dict[str, float]:
        pred = p >= t
        kept = ~pred
        return {"auc": round(float(roc_auc_score(yy, p)), 4), "threshold": round(t, 4),
                "not_garment_removed": round(float(pred[yy == 1].mean()), 4),
                "garment_kept": round(float(kept[yy == 0].mean()), 4),
                "not_garment_share_before": round(float(yy.mean()), 4),
                "not_garment_share_after": round(float(yy[kept].mean()), 4)}

    held = {"mlp": report(p_held, y[held_idx]), "mlp_at_0.5": report(p_held, y[held_idx], 0.5),
            "logistic_regression": report(logreg.predict_proba(xs[held_idx])[:, 1], y[held_idx])}
    print(json.dumps(held, indent=1))
    (w1, w2), (b1, b2) = mlp.coefs_, mlp.intercepts_
    model = GarmentPixelFilter(
        mean=mean, scale=scale, w1=w1, b1=b1, w2=w2[:, 0], b2=b2, threshold=threshold, min_kept=0.3,
        meta={"trained_on": "CCP train split (project group split, seed 0), shipped detector v2.1 masks",
              "target": ("CCP skin, hair or null (background) vs any other class" if args.target == "body-background"
                         else "any CCP class but the garment's own (the class covering most of its mask)"),
              "photos": len(photos) - len(held_photos), "held_out_train_photos": len(held_photos),
              "pixels": len(fit_idx), "per_garment": args.per_garment, "hidden": args.hidden,
              "min_garment_kept": args.min_garment_kept, "seed": args.seed, "epochs": int(mlp.n_iter_), "fit_seconds": round(fit_s, 1),
              "sklearn": sklearn.__version__, "held_out_train_metrics": held,
              "base_rate_not_garment": round(float(y[fit_idx].mean()), 4)})
    model.save(args.out)
    # the stored model gives the fitted MLP's probabilities
    p_np = GarmentPixelFilter.load(args.out).predict_proba(x_all[held_idx[:2000]])
    np.testing.assert_allclose(p_np, mlp.predict_proba(xs[held_idx[:2000]])[:, 1], atol=1e-4)
    print(f"saved {args.out}: {len(fit_idx)} pixels, {mlp.n_iter_} epochs, {fit_s:.0f} s")


if __name__ == "__main__":
    main()
