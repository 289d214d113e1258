"""Retrain only the classifier's pattern head with weak "plain" labels and score it (issue 25, item 3).

Experiment only: the shipped weights, sidecars and goldens are not touched; everything is written under
``runs/pattern-plain/`` (``report.json``). Test splits are never read.

Why the head prefers prints: of the recipe's training samples only RISE items carry a pattern label (295 of
6,195; 30 % plain), the RISE items whose ``pattern`` field is empty (689 in train) have no label and the
multi-task loss masks them, and clothing/CCP samples have no pattern at all. This script:

1. loads the shipped classifier and the cached pooled features of its frozen backbone
   (``runs/cache/classifier-224-s0/pooled-<weights hash>-{train,val}.pt``, checked against the sample list);
2. builds the pattern training sets of the variants (module constant ``VARIANTS``):
   ``A`` the recipe's labels; ``B`` + RISE train items with an empty pattern field as ``plain`` at weight 0.3;
   ``B1`` the same at weight 1.0; ``C`` B + the eye-labelled street set's garments on CCP **train** photos
   (annotator a, crops of the labelled boxes with the tagger's margin);
3. fine-tunes a copy of the shipped pattern head (linear, on the pooled features, dropout as in training)
   with the ``fit_heads`` recipe (AdamW lr 1e-3, weight decay 1e-4, label smoothing 0.1, 12 epochs over all
   training samples in batches of 256, cosine schedule, seed 0), the pattern loss weighted per sample;
4. scores each head (and the shipped one) on product validation (RISE val items with a pattern label:
   accuracy, coverage at precision ≥ 0.90 with the threshold over the max probability chosen there, and the
   share of RISE val items with an empty field answered plain) and on the street set's validation-photo
   garments matched to a detected crop of ``/tmp/street_pattern/crops.npz`` (``street_pattern_crops.py``;
   the crops are re-cut from the stored boxes and run through the shipped backbone; the shipped head on
   those features must reproduce the stored probabilities): best-guess accuracy, always-plain, AUC of
   P(plain) for plain vs print, precision/coverage at the product-val 0.90 threshold and at fixed ones.

Usage: ``nice -n 10 .venv/bin/python experiments/scripts/pattern_plain_heads.py``
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from fashionlens.imageio import load_image
from fashionlens.models.classifier import load_classifier
from fashionlens.models.registry import default_weights_path
from fashionlens.pipeline import crop_garment, preprocess
from fashionlens.train.feature_cache import load_pooled_features, weights_digest
from fashionlens.train.samples import SampleDataset, read_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from street_labels_agreement import read_labels
from street_pattern_priors import matched_rows

REPO = Path(__file__).resolve().parents[2]
SEED = 0
EPOCHS, LR, WEIGHT_DECAY, BATCH, SMOOTHING = 12, 1e-3, 1e-4, 256, 0.1  # fit_heads / HeadRecipe defaults
TAGGER_MARGIN = 0.1
FIXED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
VARIANTS: dict[str, dict[str, Any]] = {
    "A": {"weak_plain": 0.0, "street_train": False},
    "B": {"weak_plain": 0.3, "street_train": False},
    "B1": {"weak_plain": 1.0, "street_train": False},
    "C": {"weak_plain": 0.3, "street_train": True},
}


def _r(v: float) -> float:
    return round(float(v), 4)


def rise_raw_patterns(rise_root: Path) -> dict[str, str | None]:
    """RISE item id → its raw ``pattern`` field (None when empty)."""
    out: dict[str, str | None] = {}
    with (rise_root / "garments.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                p = row.get("pattern")
                out[str(row["id"])] = str(p).strip() if p not in (None, "") and str(p).strip() else None
    return out


def split_features(model: Any, cache: Path, digest: str, split: str, samples: list) -> torch.Tensor:
    ds = SampleDataset(cache, samples, model.meta.heads, mean=model.meta.mean, std=model.meta.std,
                       size=model.meta.input_size)
    feats = load_pooled_features(ds, cache / f"pooled-{digest}-{split}.pt", weights_key=digest)
    if feats is None:
        raise FileNotFoundError(f"expected cached pooled features {cache}/pooled-{digest}-{split}.pt for these "
                                "samples and weights (run the corrections recipe once to write them)")
    return feats.float()


@torch.inference_mode()
def crop_features(model: Any, jobs: list[tuple[str, tuple[float, float, float, float]]], photos: Path
                  ) -> torch.Tensor:
    """Pooled features of ``(photo id, xyxy box)`` crops cut as ``fashionlens tag`` cuts detected garments."""
    model.eval()
    out, cache = [], {}
    for pid, xyxy in jobs:
        if pid not in cache:
            cache.clear()
            cache[pid] = load_image(photos / f"{pid}.jpg")
        crop, _ = crop_garment(cache[pid], xyxy, None, margin=TAGGER_MARGIN, pixel_filter=None)
        out.append(preprocess(crop, model.meta))
    feats = []
    for s in range(0, len(out), 32):
        feats.append(model.backbone(torch.from_numpy(np.stack(out[s:s + 32]))).float())
    return torch.cat(feats)


def train_pattern_head(model: Any, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.nn.Linear:
    """A copy of the shipped pattern head fine-tuned on ``x`` (all training rows; ``y`` -1 = no label) with
    per-row weights ``w`` on the (smoothed) cross-entropy, normalised by the weight of the labelled rows."""
    head = copy.deepcopy(model.heads["pattern"]).train()
    dropout = torch.nn.Dropout(model.dropout.p)
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    optim = torch.optim.AdamW(head.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = EPOCHS * max(1, math.ceil(len(x) / BATCH))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    sw = w * (y >= 0).float()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            denom = sw[idx].sum()
            if denom <= 0:
                continue
            per = F.cross_entropy(head(dropout(x[idx])), y[idx].clamp(min=0), reduction="none",
                                  label_smoothing=SMOOTHING)
            loss = (per * sw[idx]).sum() / denom
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
    return head.eval()


def coverage_at(conf: np.ndarray, correct: np.ndarray, precision: float = 0.9) -> tuple[float, float, float]:
    """``(threshold, precision, coverage)`` at the lowest max-probability threshold whose precision of the
    emitted answers reaches ``precision`` (the most coverage); ``(inf, nan, 0)`` when none does."""
    for t in np.sort(np.unique(conf)):
        emitted = conf >= t
        if emitted.any() and correct[emitted].mean() >= precision:
            return float(t), float(correct[emitted].mean()), float(emitted.mean())
    return math.inf, math.nan, 0.0


def at_threshold(probs: np.ndarray, y: np.ndarray, t: float) -> dict[str, Any]:
    emitted = probs.max(1) >= t
    right = probs.argmax(1) == y
    return {"precision": _r(right[emitted].mean()) if emitted.any() else None, "coverage": _r(emitted.mean())}


def score(probs_val: np.ndarray, y_val: np.ndarray, probs_empty: np.ndarray, probs_street: np.ndarray,
          y_street: np.ndarray, values: list[str]) -> dict[str, Any]:
    conf, correct = probs_val.max(1), probs_val.argmax(1) == y_val
    t, p, c = coverage_at(conf, correct)
    top_s = probs_street.argmax(1)
    plain = (y_street == 0).astype(int)
    return {
        "product_val": {"n": len(y_val), "accuracy": _r(correct.mean()), "correct": int(correct.sum()),
                        "at_precision_0.90": {"threshold": _r(t), "precision": _r(p), "coverage": _r(c)},
                        "auc_p_plain": _r(roc_auc_score((y_val == 0).astype(int), probs_val[:, 0])),
                        "rise_empty_answered_plain": _r((probs_empty.argmax(1) == 0).mean()),
                        "n_rise_empty": len(probs_empty)},
        "street_val": {"n": len(y_street), "accuracy": _r((top_s == y_street).mean()),
                       "always_plain": _r((y_street == 0).mean()),
                       "auc_p_plain": _r(roc_auc_score(plain, probs_street[:, 0])) if 0 < plain.sum() < len(plain) else None,
                       "plain_recall": _r((top_s[y_street == 0] == 0).mean()),
                       "print_recall_as_not_plain": _r((top_s[y_street != 0] != 0).mean()),
                       "predicted": dict(Counter(values[j] for j in top_s).most_common()),
                       "at_product_val_0.90_threshold": at_threshold(probs_street, y_street, t),
                       "fixed": {f"{ft:.1f}": at_threshold(probs_street, y_street, ft) for ft in FIXED_THRESHOLDS}},
    }


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000) -> dict[str, float]:
    """Seeded bootstrap of mean(b) - mean(a) over paired rows: median and 95 % interval."""
    rng = np.random.default_rng(SEED)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    g = b[idx].mean(1) - a[idx].mean(1)
    return {"median": _r(np.median(g)), "lo95": _r(np.quantile(g, 0.025)), "hi95": _r(np.quantile(g, 0.975))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=REPO / "runs/cache/classifier-224-s0")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets")
    ap.add_argument("--crops", type=Path, default=Path("/tmp/street_pattern/crops.npz"))
    ap.add_argument("--labels", type=Path, default=REPO / "data/street_labels/annotator_a.csv")
    ap.add_argument("--manifest", type=Path, default=REPO / "data/street_labels/garments.csv")
    ap.add_argument("--out", type=Path, default=REPO / "runs/pattern-plain")
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    weights = default_weights_path()
    model = load_classifier(weights).eval()
    digest = weights_digest(weights)
    values = list(next(h for h in model.meta.heads if h.name == "pattern").values)
    samples = read_samples(args.cache)
    train = [s for s in samples if s.split == "train"]
    val = [s for s in samples if s.split == "val"]
    x_train = split_features(model, args.cache, digest, "train", train)
    x_val = split_features(model, args.cache, digest, "val", val)
    raw = rise_raw_patterns(args.data / "rise")

    def rise_empty(s: Any) -> bool:
        return s.source == "rise" and not s.attributes.get("pattern") and raw[Path(s.origin).stem] is None

    y_train = torch.tensor([values.index(s.attributes["pattern"]) if s.attributes.get("pattern") else -1
                            for s in train])
    empty_train = torch.tensor([rise_empty(s) for s in train])
    val_lab = [i for i, s in enumerate(val) if s.attributes.get("pattern")]
    y_val = np.array([values.index(val[i].attributes["pattern"]) for i in val_lab])
    val_empty = [i for i, s in enumerate(val) if rise_empty(s)]

    # street crops: validation photos (detected, matched) and train photos (labelled boxes, variant C)
    z = np.load(args.crops)
    crops = {k: z[k] for k in z.files}
    info = json.loads(str(crops.pop("info")))
    if list(info["values"]["pattern"]) != values:
        raise ValueError(f"{args.crops}: made with other pattern values than the shipped weights")
    matched = [(g, r, y) for g, s, r, y in matched_rows(crops, args.labels, args.manifest, values) if s == "val"]
    photos = args.data / "ccp" / "photos"
    jobs = []
    for _, r, _ in matched:
        x, yb, w, h = (float(v) for v in crops["box"][r])
        jobs.append((str(crops["photo"][r]), (x, yb, x + w, yb + h)))
    x_street = crop_features(model, jobs, photos)
    y_street = np.array([y for _, _, y in matched])
    with torch.inference_mode():
        shipped_street = model.heads["pattern"](x_street).softmax(-1).numpy()
    reproduce = float(np.abs(shipped_street - crops["p_pattern"][[r for _, r, _ in matched]]).max())
    labels = read_labels(args.labels)
    with open(args.manifest, newline="") as f:
        split_of = {r["garment_id"]: r["split"] for r in csv.DictReader(f)}
    st = [lab for g, lab in sorted(labels.items()) if split_of[g] == "train" and lab.pattern]
    x_st = crop_features(model, [(lab.photo_id, (lab.box[0], lab.box[1], lab.box[0] + lab.box[2],
                                                 lab.box[1] + lab.box[3])) for lab in st], photos)
    y_st = torch.tensor([values.index(lab.pattern) for lab in st])
    t_feat = time.perf_counter() - t0

    report: dict[str, Any] = {
        "weights": weights.name, "weights_sha1_12": digest, "crops": {k: v for k, v in info.items() if k != "values"},
        "shipped_head_reproduces_crops_max_abs_diff": _r(reproduce),
        "training_data": {
            "train_samples": len(train),
            "by_source": dict(Counter(s.source for s in train)),
            "pattern_labelled_by_source": dict(Counter(s.source for s in train if s.attributes.get("pattern"))),
            "pattern_counts": dict(Counter(values[int(v)] for v in y_train if v >= 0).most_common()),
            "rise_empty_pattern_train": int(empty_train.sum()),
            "rise_unmapped_pattern_train": int(sum(1 for s in train if s.source == "rise"
                                                   and not s.attributes.get("pattern") and not rise_empty(s))),
            "street_train_photo_garments": dict(Counter(lab.pattern for lab in st).most_common())},
        "recipe": {"epochs": EPOCHS, "lr": LR, "weight_decay": WEIGHT_DECAY, "batch": BATCH,
                   "label_smoothing": SMOOTHING, "seed": SEED, "init": "shipped pattern head"},
        "variants": {}}
    x_val_lab, x_val_empty = x_val[val_lab], x_val[val_empty]

    def probs(head: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            return tuple(head(v).softmax(-1).numpy() for v in (x_val_lab, x_val_empty, x_street))  # type: ignore[return-value]

    out_probs: dict[str, np.ndarray] = {}
    pv, pe, ps = probs(model.heads["pattern"])
    report["variants"]["shipped"] = score(pv, y_val, pe, ps, y_street, values)
    out_probs["shipped"] = ps
    for name, spec in VARIANTS.items():
        t1 = time.perf_counter()
        y = y_train.clone()
        w = torch.ones(len(train))
        if spec["weak_plain"] > 0:
            y[empty_train] = 0
            w[empty_train] = spec["weak_plain"]
        x = x_train
        if spec["street_train"]:
            x, y, w = torch.cat([x, x_st]), torch.cat([y, y_st]), torch.cat([w, torch.ones(len(y_st))])
        head = train_pattern_head(model, x, y, w)
        pv, pe, ps = probs(head)
        res = score(pv, y_val, pe, ps, y_street, values)
        res["spec"] = spec
        res["labelled_rows"] = int((y >= 0).sum())
        res["seconds"] = round(time.perf_counter() - t1, 1)
        report["variants"][name] = res
        out_probs[name] = ps
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(head.state_dict(), args.out / f"pattern_head_{name}.pt")
    # post hoc diagnostic (added after the variants were read; not part of the decision rule): is there any
    # linear plain-vs-print signal in the backbone's pooled features of street crops? A logistic regression
    # (standardised, class-balanced, sklearn defaults) trained on the street set's train-photo crops only.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    probe.fit(x_st.numpy(), (y_st == 0).numpy().astype(int))
    report["post_hoc_street_probe"] = {
        "train": "street train-photo crops (annotator a, labelled boxes)", "n_train": len(y_st),
        "street_val_auc_p_plain": _r(roc_auc_score((y_street == 0).astype(int), probe.predict_proba(x_street.numpy())[:, 1]))}
    acc = {k: (v.argmax(1) == y_street).astype(float) for k, v in out_probs.items()}
    report["street_val_accuracy_gain_bootstrap"] = {f"{k}_vs_A": bootstrap(acc["A"], acc[k]) for k in ("B", "B1", "C")}
    report["seconds"] = {"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "street_val_probs.npz", y=y_street, garments=np.array([g for g, _, _ in matched]),
                        **out_probs)
    text = json.dumps(report, indent=1)
    (args.out / "report.json").write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
