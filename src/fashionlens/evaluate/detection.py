"""Detection metrics: COCO box/mask AP and AR (pycocotools), per-class AP, the iMaterialist-2019
Kaggle metric and a precision–recall plot.

Ground truth is a COCO instances dict (or file). :func:`records_to_coco` makes one from
:class:`~fashionlens.io.records.ImageRecord` s in the **object-type** label space the detectors
use (category id = object-type index + 1, as :func:`fashionlens.models.detector.detector_class_names`),
or in the taxonomy-category space of :func:`fashionlens.io.coco.write_coco`
(``label_space="category"``); image ids are the record index + 1. A garment without a label in
the chosen space, or without box and mask, is skipped and counted in ``info.skipped``.

Predictions are a COCO results list: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
plus ``"segmentation"`` (COCO RLE) for mask results; :func:`torchvision_to_coco_results` converts
torchvision detector outputs.

Metric conventions:

* AP/AR are pycocotools' ``stats`` (AP@[.5:.95], AP50, AP75, AP small/medium/large, AR@1/10/100,
  AR small/medium/large); a value pycocotools cannot define (``-1``: e.g. no small ground truth) is
  reported as ``None``; empty predictions give 0.0 for every defined value.
* mask (``segm``) metrics are computed only when every ground-truth annotation has a
  ``segmentation`` and every prediction has one; otherwise they are ``None`` with the reason.
* the Kaggle metric (iMaterialist (Fashion) 2019 at FGVC6): for each (image, class) pair present
  in the ground truth or the predictions, and each IoU threshold 0.50:0.05:0.95, predictions
  (score ≥ ``score_thresh``, highest score first) are matched one-to-one greedily to the unmatched
  ground truth of highest IoU ≥ threshold; the pair scores TP / (TP + FP + FN), averaged over the
  thresholds; the metric is the mean over pairs. IoU is mask IoU when both sides have masks,
  else box IoU.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fashionlens.io.coco import LabelSpace, _bytes_rle, records_to_coco  # noqa: F401 - re-exported
from fashionlens.io.records import encode_mask

log = logging.getLogger(__name__)

STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KAGGLE_IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, 10)


# ------------------------------------------------------------------------------ ground truth


def torchvision_to_coco_results(outputs: Sequence[dict[str, Any]], image_ids: Sequence[int], *,
                                mask_threshold: float = 0.5) -> list[dict[str, Any]]:
    """torchvision detector outputs (``boxes`` xyxy, ``labels``, ``scores``, optional ``masks``
    ``(N, 1, H, W)`` probabilities) → a COCO results list with RLE ``segmentation`` when masks exist."""
    if len(outputs) != len(image_ids):
        raise ValueError(f"expected one image id per output, got {len(image_ids)} ids for {len(outputs)} outputs")
    results: list[dict[str, Any]] = []
    for out, image_id in zip(outputs, image_ids):
        boxes = np.asarray(out["boxes"].detach().cpu() if hasattr(out["boxes"], "detach") else out["boxes"],
                           dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(out["labels"].cpu() if hasattr(out["labels"], "cpu") else out["labels"]).reshape(-1)
        scores = np.asarray(out["scores"].detach().cpu() if hasattr(out["scores"], "detach") else out["scores"]
                            ).reshape(-1)
        masks = out.get("masks")
        if masks is not None:
            masks = np.asarray(masks.detach().cpu() if hasattr(masks, "detach") else masks)
            masks = masks.reshape(masks.shape[0], *masks.shape[-2:]) >= mask_threshold
        for i in range(len(boxes)):
            x0, y0, x1, y1 = boxes[i]
            res = {"image_id": int(image_id), "category_id": int(labels[i]),
                   "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(scores[i])}
            if masks is not None:
                res["segmentation"] = encode_mask(masks[i])
            results.append(res)
    return results


# ------------------------------------------------------------------------------ COCO metrics


def _coco_from(gt: dict[str, Any] | str | Path) -> COCO:
    if isinstance(gt, (str, Path)):
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(gt))
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_predictions(coco: COCO, predictions: Sequence[dict[str, Any]]) -> None:
    image_ids, cat_ids = set(coco.getImgIds()), set(coco.getCatIds())
    for i, p in enumerate(predictions):
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in p]
        if missing:
            raise ValueError(f"prediction {i}: expected keys image_id, category_id, bbox, score; missing {missing}")
        if p["image_id"] not in image_ids:
            raise ValueError(f"prediction {i}: image_id {p['image_id']} is not in the ground truth")
        if p["category_id"] not in cat_ids:
            raise ValueError(f"prediction {i}: category_id {p['category_id']} is not one of {sorted(cat_ids)}")


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    return {n: (None if v < 0 else float(v)) for n, v in zip(STAT_NAMES, values)}


def _run_cocoeval(coco_gt: COCO, predictions: list[dict[str, Any]], iou_type: str,
                  category_ids: Sequence[int] | None = None) -> tuple[dict[str, Any], COCOeval | None]:
    names = {c["id"]: c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())}
    if not predictions:
        # pycocotools cannot load an empty result list: every defined value is 0
        zero = _stats([0.0] * len(STAT_NAMES))
        return {"stats": zero, "per_class_AP": {n: 0.0 for c, n in names.items() if coco_gt.getAnnIds(catIds=[c])
                                                 and (category_ids is None or c in category_ids)},
                "predictions": 0}, None
    preds = copy.deepcopy(predictions)
    if iou_type == "bbox":
        for p in preds:  # loadRes would otherwise derive boxes from segmentations for 'segm' only
            p.pop("segmentation", None)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_dt = coco_gt.loadRes(preds)
        ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        if category_ids is not None:
            ev.params.catIds = sorted(category_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.debug("pycocotools %s:\n%s", iou_type, buf.getvalue())
    precision = ev.eval["precision"]  # [T, R, K, A, M]; area 'all' = 0, maxDets 100 = last
    per_class: dict[str, float | None] = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[names[cat_id]] = float(p[p > -1].mean()) if (p > -1).any() else None
    return {"stats": _stats(ev.stats), "per_class_AP": per_class, "predictions": len(preds)}, ev


def evaluate_detections(gt: dict[str, Any] | str | Path, predictions: Sequence[dict[str, Any]], *,
                        kaggle_score_thresh: float = 0.5, pr_curve_png: str | Path | None = None,
                        category_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """COCO box (and mask) metrics, per-class AP, the Kaggle metric and optionally a PR-curve PNG.

    ``category_ids`` restricts the COCO metrics to those classes (e.g. the four garment object types).
    """
    coco_gt = _coco_from(gt)
    predictions = list(predictions)
    _check_predictions(coco_gt, predictions)
    result: dict[str, Any] = {"images": len(coco_gt.getImgIds()), "annotations": len(coco_gt.getAnnIds())}
    result["bbox"], box_eval = _run_cocoeval(coco_gt, predictions, "bbox", category_ids)
    gt_has_masks = all("segmentation" in a for a in coco_gt.dataset.get("annotations", []))
    dt_has_masks = all("segmentation" in p for p in predictions)
    if not gt_has_masks:
        result["segm"] = None
        result["segm_reason"] = "some ground-truth annotations have no segmentation"
    elif not dt_has_masks:
        result["segm"] = None
        result["segm_reason"] = "some predictions have no segmentation"
    else:
        result["segm"], _ = _run_cocoeval(coco_gt, predictions, "segm", category_ids)
    result["kaggle"] = kaggle_imaterialist_score(coco_gt.dataset, predictions, score_thresh=kaggle_score_thresh)
    if pr_curve_png is not None:
        plot_pr_curves(box_eval, pr_curve_png)
        result["pr_curve_png"] = str(pr_curve_png)
    return result


def format_per_class_table(result: dict[str, Any]) -> str:
    """A plain-text table: one row per class, box AP and mask AP columns."""
    box = result["bbox"]["per_class_AP"]
    segm = (result.get("segm") or {}).get("per_class_AP", {})
    width = max([len("class"), *map(len, box)])
    lines = [f"{'class':<{width}}  box AP  mask AP"]
    fmt = lambda v: "     -" if v is None else f"{v:6.3f}"
    for name, ap in box.items():
        lines.append(f"{name:<{width}}  {fmt(ap)}  {fmt(segm.get(name)) if segm else '     -'}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ Kaggle metric


def _geometry(item: dict[str, Any], use_masks: bool) -> Any:
    if use_masks:
        return _bytes_rle(item["segmentation"])
    return [float(v) for v in item["bbox"]]


def _pair_score(gts: list[dict[str, Any]], dts: list[dict[str, Any]], use_masks: bool) -> float:
    if not gts or not dts:
        return 0.0
    dts = sorted(dts, key=lambda d: -float(d.get("score", 1.0)))
    g = [_geometry(a, use_masks) for a in gts]
    d = [_geometry(p, use_masks) for p in dts]
    ious = np.asarray(mask_utils.iou(d, g, [0] * len(g)), dtype=np.float64).reshape(len(d), len(g))
    scores = []
    for t in KAGGLE_IOU_THRESHOLDS:
        matched = np.zeros(len(g), bool)
        tp = 0
        for i in range(len(d)):
            cand = np.where(~matched & (ious[i] >= t - 1e-12))[0]
            if len(cand):
                matched[cand[np.argmax(ious[i, cand])]] = True
                tp += 1
        fp, fn = len(d) - tp, len(g) - tp
        scores.append(tp / (tp + fp + fn))
    return float(np.mean(scores))


def kaggle_imaterialist_score(gt: dict[str, Any], predictions: Sequence[dict[str, Any]], *,
                              score_thresh: float = 0.5) -> dict[str, Any]:
    """The iMaterialist-2019 metric (definition in the module docstring) and the number of pairs."""
    preds = [p for p in predictions if float(p.get("score", 1.0)) >= score_thresh]
    gt_anns = [a for a in gt.get("annotations", []) if not a.get("iscrowd", 0)]
    use_masks = all("segmentation" in a for a in gt_anns) and all("segmentation" in p for p in preds)
    pairs: dict[tuple[int, int], tuple[list, list]] = {}
    for a in gt_anns:
        pairs.setdefault((int(a["image_id"]), int(a["category_id"])), ([], []))[0].append(a)
    for p in preds:
        pairs.setdefault((int(p["image_id"]), int(p["category_id"])), ([], []))[1].append(p)
    if not pairs:
        return {"score": None, "pairs": 0, "iou": "mask" if use_masks else "box", "score_thresh": score_thresh}
    values = [_pair_score(g, d, use_masks) for g, d in pairs.values()]
    return {"score": float(np.mean(values)), "pairs": len(values), "iou": "mask" if use_masks else "box",
            "score_thresh": score_thresh}


# ------------------------------------------------------------------------------ plot


def plot_pr_curves(ev: COCOeval | None, path: str | Path) -> Path:
    """Box precision–recall curves (area all, 100 detections): all classes at IoU 0.50 and 0.75, and
    each class at IoU 0.50. Writes a PNG (matplotlib Agg) and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    if ev is None:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center")
    else:
        rec = ev.params.recThrs
        prec = ev.eval["precision"]
        for t_index, iou, style in ((0, 0.50, "-"), (5, 0.75, "--")):
            p = prec[t_index, :, :, 0, -1]
            p = np.where(p > -1, p, np.nan)
            if np.isfinite(p).any():
                ax.plot(rec, np.nanmean(p, axis=1), style, color="black", linewidth=2, label=f"all classes, IoU {iou:.2f}")
        names = {c["id"]: c["name"] for c in ev.cocoGt.loadCats(ev.params.catIds)}
        for k, cat_id in enumerate(ev.params.catIds):
            p = prec[0, :, k, 0, -1]
            if (p > -1).any():
                ax.plot(rec, np.where(p > -1, p, np.nan), linewidth=1, label=f"{names[cat_id]} (IoU 0.50)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("box precision–recall")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
