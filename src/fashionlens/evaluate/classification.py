"""Classifier evaluation: predictions over cached samples and per-head metrics.

Single-label heads: accuracy, macro-F1 and per-class precision/recall over samples with a label.
Multi-label heads (colours): exact match, Hamming accuracy and macro-F1 at the stored threshold.
The category head is also scored as object-type accuracy (summing category probabilities per
object type), as "set accuracy" (the prediction lies in a coarse label's allowed set), and in the
clothing data set's own 10 common classes (see :func:`source_label_probs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fashionlens.models.heads import HeadSpec
from fashionlens.taxonomy import load_mapping, load_taxonomy
from fashionlens.train.samples import Sample, allowed_categories

CLOTHING_COMMON10: tuple[str, ...] = ("Dress", "Hat", "Longsleeve", "Outwear", "Pants", "Shirt", "Shoes", "Shorts",
                                      "Skirt", "T-Shirt")


@torch.no_grad()
def predict_probs(model: torch.nn.Module, dataset, heads: Sequence[HeadSpec], *, batch_size: int = 64,
                  device: str = "cpu", workers: int = 0, progress: bool = False) -> dict[str, np.ndarray]:
    """Probabilities per head (softmax for single-label heads, sigmoid for multi-label heads)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out: dict[str, list[np.ndarray]] = {h.name: [] for h in heads}
    for x, _ in tqdm(loader, desc="predict", disable=not progress, leave=False):
        logits = model(x.to(device))
        for h, lg in zip(heads, logits):
            p = lg.float().softmax(-1) if h.kind == "single" else lg.float().sigmoid()
            out[h.name].append(p.cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros((0, 0)) for k, v in out.items()}


def object_type_probs(category_probs: np.ndarray) -> np.ndarray:
    """``(N, C)`` category probabilities → ``(N, T)`` object-type probabilities."""
    tax = load_taxonomy()
    out = np.zeros((category_probs.shape[0], len(tax.object_types)), dtype=np.float64)
    for ci, c in enumerate(tax.categories):
        out[:, tax.object_type_index(tax.category_object_type[c])] += category_probs[:, ci]
    return out


def source_label_probs(probs: dict[str, np.ndarray], source: str, labels: Sequence[str]) -> np.ndarray:
    """Probabilities of a source's own labels, from taxonomy predictions.

    P(label) = Σ over the label's categories of p(category), times p(attribute = value) for each
    attribute that tells this label apart from another label sharing a category (the clothing
    set's ``T-Shirt`` and ``Longsleeve`` are both ``t-shirts``, told apart by ``sleeve``).
    """
    tax = load_taxonomy()
    mapping = load_mapping(source)
    mapped = [mapping.resolve(lb) for lb in labels]
    out = np.zeros((probs["category"].shape[0], len(labels)))
    for i, m in enumerate(mapped):
        cats = m.categories or (tax.categories_of(m.object_type) if m.object_type else ())
        p = sum(probs["category"][:, tax.category_index(c)] for c in cats)
        distinguishing: set[str] = set()
        for j, other in enumerate(mapped):
            if j == i or not set(other.categories) & set(cats):
                continue
            distinguishing |= {attr for attr, value in m.attributes.items()
                               if other.attributes.get(attr) not in (None, value) and attr in probs}
        for attr in sorted(distinguishing):
            p = p * probs[attr][:, tax.attribute(attr).values.index(m.attributes[attr])]
        out[:, i] = p
    return out


def _single_metrics(y_true: np.ndarray, y_pred: np.ndarray, values: Sequence[str]) -> dict[str, Any]:
    if len(y_true) == 0:
        return {"n": 0, "accuracy": float("nan"), "macro_f1": float("nan"), "per_class": {}}
    present = sorted(set(y_true.tolist()))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f.mean()) if len(present) else float("nan"),
        "per_class": {values[c]: {"precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
                      for c, pi, ri, fi, si in zip(present, p, r, f, s)},
    }


def _multi_metrics(y_true: np.ndarray, y_pred: np.ndarray, values: Sequence[str]) -> dict[str, Any]:
    present = np.flatnonzero(y_true.sum(0) > 0)
    f = f1_score(y_true[:, present], y_pred[:, present], average=None, zero_division=0) if len(present) else []
    return {
        "n": len(y_true),
        "exact_match": float((y_true == y_pred).all(1).mean()) if len(y_true) else float("nan"),
        "hamming_accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(np.mean(f)) if len(present) else float("nan"),
        "per_class_f1": {values[c]: float(fi) for c, fi in zip(present, f)},
    }


def best_threshold(probs: np.ndarray, y_true: np.ndarray, grid: Sequence[float] = tuple(np.arange(0.1, 0.75, 0.05))
                   ) -> float:
    """The multi-label decision threshold with the best macro-F1 (tune on validation only)."""
    best, best_f = 0.5, -1.0
    present = np.flatnonzero(y_true.sum(0) > 0)
    for t in grid:
        f = f1_score(y_true[:, present], probs[:, present] >= t, average="macro", zero_division=0)
        if f > best_f:
            best, best_f = float(t), f
    return best


def multi_label_predictions(p: np.ndarray, threshold: float) -> np.ndarray:
    """Labels above ``threshold``; the top label always counts (a garment has at least one colour)."""
    pred = p >= threshold
    pred[np.arange(len(p)), p.argmax(1)] = True
    return pred


def classifier_metrics(probs: dict[str, np.ndarray], samples: Sequence[Sample], heads: Sequence[HeadSpec], *,
                       thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """All metrics for one evaluation split (see module docstring)."""
    tax = load_taxonomy()
    thresholds = thresholds or {}
    metrics: dict[str, Any] = {"n_samples": len(samples)}
    cat_head = next(h for h in heads if h.name == "category")
    cp = probs["category"]
    pred_cat = cp.argmax(1)
    exact = [i for i, s in enumerate(samples) if len(s.categories) == 1]
    y = np.array([cat_head.values.index(samples[i].categories[0]) for i in exact], dtype=int)
    metrics["category"] = _single_metrics(y, pred_cat[exact], cat_head.values)
    allowed = [(i, allowed_categories(s)) for i, s in enumerate(samples)]
    allowed = [(i, a) for i, a in allowed if a]
    metrics["category"]["set_accuracy"] = (float(np.mean([cat_head.values[pred_cat[i]] in a for i, a in allowed]))
                                           if allowed else float("nan"))
    metrics["category"]["n_set"] = len(allowed)
    ot = object_type_probs(cp).argmax(1)
    with_type = [i for i, s in enumerate(samples) if s.object_type]
    ot_true = np.array([tax.object_type_index(samples[i].object_type) for i in with_type], dtype=int)
    metrics["object_type"] = _single_metrics(ot_true, ot[with_type], tax.object_types)
    for src in sorted({s.source for s in samples}):
        idx = [i for i in with_type if samples[i].source == src]
        metrics["object_type"][f"accuracy_{src}"] = float((ot[idx] == np.array(
            [tax.object_type_index(samples[i].object_type) for i in idx])).mean()) if idx else float("nan")
    # RISE type accuracy: RISE items with an exact category
    rise = [i for i in exact if samples[i].source == "rise"]
    if rise:
        yr = np.array([cat_head.values.index(samples[i].categories[0]) for i in rise])
        metrics["rise_type"] = {"n": len(rise), "accuracy": float((pred_cat[rise] == yr).mean())}
    # clothing data set, 10 common classes
    c10 = [i for i, s in enumerate(samples) if s.source == "clothing" and s.source_label in CLOTHING_COMMON10]
    if c10:
        sub = {k: v[c10] for k, v in probs.items()}
        lp = source_label_probs(sub, "clothing", CLOTHING_COMMON10)
        yt = np.array([CLOTHING_COMMON10.index(samples[i].source_label) for i in c10])
        pred10 = lp.argmax(1)
        # open set: the arg-max over all 25 categories must itself fall in the true label's categories
        top_cat = pred_cat[c10]
        mapping = load_mapping("clothing")
        open_ok = np.array([
            cat_head.values[top_cat[k]] in mapping.resolve(CLOTHING_COMMON10[yt[k]]).categories
            and (pred10[k] == yt[k]) for k in range(len(c10))])
        metrics["clothing10"] = {
            "n": len(c10), "accuracy": float((pred10 == yt).mean()), "accuracy_open": float(open_ok.mean()),
            "labels": list(CLOTHING_COMMON10),
            "confusion": confusion_matrix(yt, pred10, labels=list(range(10))).tolist(),
        }
    for h in heads:
        if h.name == "category" or h.name not in probs:
            continue
        p = probs[h.name]
        if h.kind == "single":
            idx = [i for i, s in enumerate(samples) if isinstance(s.attributes.get(h.name), str)]
            if not idx:
                continue
            yt = np.array([h.values.index(samples[i].attributes[h.name]) for i in idx])
            metrics[h.name] = _single_metrics(yt, p[idx].argmax(1), h.values)
        else:
            idx = [i for i, s in enumerate(samples) if s.attributes.get(h.name)]
            if not idx:
                continue
            yt = np.zeros((len(idx), h.num_outputs), dtype=bool)
            for k, i in enumerate(idx):
                for v in samples[i].attributes[h.name]:
                    yt[k, h.values.index(v)] = True
            t = thresholds.get(h.name, 0.5)
            metrics[h.name] = _multi_metrics(yt, multi_label_predictions(p[idx], t), h.values)
            metrics[h.name]["threshold"] = t
    metrics["score"] = metrics["category"]["set_accuracy"]
    return metrics


def multi_label_truth(samples: Sequence[Sample], head: HeadSpec) -> tuple[list[int], np.ndarray]:
    idx = [i for i, s in enumerate(samples) if s.attributes.get(head.name)]
    yt = np.zeros((len(idx), head.num_outputs), dtype=bool)
    for k, i in enumerate(idx):
        for v in samples[i].attributes[head.name]:
            yt[k, head.values.index(v)] = True
    return idx, yt
