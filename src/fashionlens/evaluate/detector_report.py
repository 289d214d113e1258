"""``fashionlens evaluate detector``: a trained detector on labelled photos, through the real inference path.

Each photo is decoded and run once through :class:`~fashionlens.detection.detector.GarmentDetector`'s network,
keeping every candidate scoring ≥ 0.05 (the COCO convention for AP). From those candidates:

* COCO box and mask AP/AR, per-class AP, the iMaterialist-2019 Kaggle metric and a PR-curve PNG
  (:func:`~fashionlens.evaluate.detection.evaluate_detections`) for each post-processing rule set
  asked for (``rule_sets``; the first is the reported one), over all six object types and over the
  four garment types (``*_garments4``: upper-body, lower-body, full-body, footwear);
* precision, recall and F1 at a sweep of score thresholds (a prediction is a true positive when it
  matches an unmatched ground-truth garment of the same object type with box IoU ≥ 0.5, highest
  score first) — the basis for the default threshold;
* with a Tagger whose ``type_fusion`` is set, the object types of the candidates kept by the rules
  are fused as ``fashionlens tag`` does (:class:`~fashionlens.detection.type_fusion.TypeFusion`: the
  classifier's type on the candidate's crop may replace the detector's), so AP and the rest measure
  the pipeline's types; with its ``cross_type`` rule set, one garment per region is then kept as ``tag``
  keeps it (:class:`~fashionlens.detection.cross_type.CrossTypeRule`);
* with a Tagger, end-to-end metrics at the operating threshold: predictions are matched to ground
  truth class-agnostically (IoU ≥ 0.5), each matched crop is classified, and the report gives the
  share of ground truth found, and among matches the share with the right object type and with
  a category among the ground truth's categories.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm.auto import tqdm

from fashionlens.detection.rules import apply_rules
from fashionlens.evaluate.detection import evaluate_detections, records_to_coco
from fashionlens.result import Garments
from fashionlens.imageio import DecodedImage, load_image
from fashionlens.io.records import ImageRecord, encode_mask
from fashionlens.models.fcos_seg import DetectionLimits

if TYPE_CHECKING:
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.pipeline import Tagger

log = logging.getLogger(__name__)

THRESHOLDS: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
#: category ids (object-type index + 1) of upper-body, lower-body, full-body and footwear: the four
#: garment types the issue's AP targets are stated over
GARMENT_TYPE_IDS: tuple[int, ...] = (1, 2, 3, 4)


def _predictions(image_id: int, g: Garments, class_names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for i in g:
        x0, y0, x1, y1 = (float(v) for v in g.xyxy[i])
        p = {"image_id": image_id, "category_id": class_names.index(g.object_type[i]),
             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(g.confidence[i])}
        if g.mask is not None:
            p["segmentation"] = encode_mask(g.mask[i])
        out.append(p)
    return out


def _gt_boxes(gt: dict[str, Any]) -> dict[int, list[tuple[np.ndarray, int]]]:
    by_image: dict[int, list[tuple[np.ndarray, int]]] = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]].append((np.array([x, y, x + w, y + h], np.float32), a["category_id"]))
    return by_image


def match(gt_boxes: list[tuple[np.ndarray, int]], preds: list[dict[str, Any]], *, same_class: bool = True,
          iou_thresh: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matches ``(prediction index, ground-truth index)``, highest score first."""
    if not gt_boxes or not preds:
        return []
    g = torch.tensor(np.stack([b for b, _ in gt_boxes]))
    p = torch.tensor([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                      for d in preds], dtype=torch.float32)
    iou = box_iou(p, g).numpy()
    used: set[int] = set()
    pairs = []
    for i in sorted(range(len(preds)), key=lambda k: -preds[k]["score"]):
        best, best_iou = -1, iou_thresh
        for j, (_, c) in enumerate(gt_boxes):
            if j in used or (same_class and c != preds[i]["category_id"]):
                continue
            if iou[i, j] >= best_iou:
                best, best_iou = j, iou[i, j]
        if best >= 0:
            used.add(best)
            pairs.append((i, best))
    return pairs


def precision_recall(gt: dict[str, Any], predictions: list[dict[str, Any]], thresholds: Sequence[float] = THRESHOLDS
                     ) -> list[dict[str, float]]:
    """P/R/F1 per score threshold (same-type matching at box IoU ≥ 0.5)."""
    gt_by = _gt_boxes(gt)
    n_gt = sum(len(v) for v in gt_by.values())
    pred_by: dict[int, list[dict[str, Any]]] = {k: [] for k in gt_by}
    for p in predictions:
        pred_by.setdefault(p["image_id"], []).append(p)
    rows = []
    for t in thresholds:
        tp = fp = 0
        for image_id, preds in pred_by.items():
            kept = [p for p in preds if p["score"] >= t]
            m = len(match(gt_by.get(image_id, []), kept))
            tp += m
            fp += len(kept) - m
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / n_gt if n_gt else 0.0
        rows.append({"score_thresh": t, "precision": round(prec, 4), "recall": round(rec, 4),
                     "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0})
    return rows


def evaluate_detector(detector: GarmentDetector, records: Sequence[ImageRecord], *, out_dir: str | Path,
                      rule_sets: Sequence[Sequence[str]] = ((),), tagger: Tagger | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Run the evaluation of the module docstring; writes ``detector_eval.json``,
    ``predictions.coco.json`` (first rule set, all candidates) and ``pr_curve.png`` under ``out_dir``."""
    from fashionlens.pipeline import crop_garment

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gt = records_to_coco(records)
    names = detector.class_names
    preds: dict[tuple[str, ...], list[dict[str, Any]]] = {tuple(r): [] for r in rule_sets}
    e2e = {"gt": 0, "matched": 0, "type_correct": 0, "category_correct": 0, "category_labelled": 0}
    gt_by = _gt_boxes(gt)
    all_candidates = DetectionLimits(0.05, detector.nms_thresh, 100)  # per call: the detector stays as it is
    for k, record in enumerate(tqdm(records, desc="evaluate detector", unit="img", disable=not progress)):
        image_id = k + 1
        image = load_image(record.path)
        candidates = detector.candidates(image.rgb, all_candidates)
        first = None
        for rules in preds:  # rules, then object types fused as tag does
            kept = apply_rules(candidates, rules, size=image.rgb.shape[:2], nms_thresh=detector.nms_thresh)
            if tagger is not None and tagger.type_fusion is not None:
                kept = fused_object_types(tagger, image, kept)
            if tagger is not None and tagger.cross_type is not None:  # one garment per region, as tag does
                kept = kept.select(tagger.cross_type.keep(kept.xyxy, kept.object_type, kept.confidence,
                                                          min_score=detector.score_thresh))
            preds[rules] += _predictions(image_id, kept, names)
            first = kept if first is None else first
        if tagger is None or first is None:
            continue
        chosen = first.select(first.confidence >= detector.score_thresh)
        p_list = _predictions(image_id, chosen, names)
        gts = gt_by[image_id]
        e2e["gt"] += len(gts)
        pairs = match(gts, p_list, same_class=False)
        if not pairs:
            continue
        crops = [crop_garment(image, chosen.xyxy[i] / image.scale, None, margin=tagger.crop_margin)[0]
                 for i, _ in pairs]
        probs = tagger.predict(crops)
        cat_values = tagger.meta.head("category").values
        gt_anns = [a for a in gt["annotations"] if a["image_id"] == image_id]
        for n, (i, j) in enumerate(pairs):
            e2e["matched"] += 1
            e2e["type_correct"] += int(p_list[i]["category_id"] == gts[j][1])
            wanted = set(gt_anns[j].get("fashionlens_categories") or [])
            if wanted:
                t = tagger.taxonomy.object_type_index(chosen.object_type[i])
                in_type = np.where(tagger._cat_type_index == t, probs["category"][n], -1.0)
                e2e["category_labelled"] += 1
                e2e["category_correct"] += int(cat_values[int(in_type.argmax())] in wanted)
    results: dict[str, Any] = {"images": len(records), "annotations": len(gt["annotations"]),
                               "score_thresh": detector.score_thresh, "object_types": _type_source(tagger),
                               "rule_sets": {}}
    for n, (rules, p) in enumerate(preds.items()):
        ev = evaluate_detections(gt, p, pr_curve_png=out / "pr_curve.png" if n == 0 else None)
        garments4 = evaluate_detections(gt, p, category_ids=GARMENT_TYPE_IDS)
        key = "+".join(rules) or "none"
        results["rule_sets"][key] = {
            "bbox": (ev.get("bbox") or {}).get("stats"), "segm": (ev.get("segm") or {}).get("stats"),
            "bbox_garments4": (garments4.get("bbox") or {}).get("stats"),
            "segm_garments4": (garments4.get("segm") or {}).get("stats"),
            "per_class_AP": (ev.get("bbox") or {}).get("per_class_AP"), "kaggle": (ev.get("kaggle") or {}).get("score"),
            "pr_sweep": precision_recall(gt, p),
        }
        if n == 0:
            (out / "predictions.coco.json").write_text(json.dumps(p))
    if tagger is not None:
        results["end_to_end"] = {
            **e2e,
            "found": round(e2e["matched"] / e2e["gt"], 4) if e2e["gt"] else None,
            "type_accuracy": round(e2e["type_correct"] / e2e["matched"], 4) if e2e["matched"] else None,
            "category_accuracy": (round(e2e["category_correct"] / e2e["category_labelled"], 4)
                                  if e2e["category_labelled"] else None),
        }
    (out / "detector_eval.json").write_text(json.dumps(results, indent=2))
    return results


def _type_source(tagger: Tagger | None) -> str:
    if tagger is None or tagger.type_fusion is None:
        return "detector"
    return f"detector, overridden by the classifier ({tagger.type_fusion})"


def fused_object_types(tagger: Tagger, image: DecodedImage, garments: Garments) -> Garments:
    """``garments`` with the pipeline's object types: each crop is classified and
    :meth:`~fashionlens.pipeline.Tagger.fuse_object_type` decides."""
    from fashionlens.pipeline import box_share, crop_garment

    if not len(garments):
        return garments
    # candidates are in the decoded pixels, crop_garment takes full-resolution boxes
    crops = [crop_garment(image, garments.xyxy[i] / image.scale, None, margin=tagger.crop_margin)[0] for i in garments]
    categories = tagger.fusion_category(tagger.predict(crops))
    h, w = image.rgb.shape[:2]  # candidates are in the decoded pixels
    types = [tagger.fuse_object_type(t, p, box_share(xyxy, w, h))
             for t, p, xyxy in zip(garments.object_type, categories, garments.xyxy)]
    return Garments(xyxy=garments.xyxy, object_type=types, confidence=garments.confidence, mask=garments.mask,
                    data=garments.data)


def top_detection_accuracy(detector: GarmentDetector, records: Sequence[ImageRecord], *,
                           tagger: Tagger | None = None, progress: bool = True) -> dict[str, Any]:
    """Single-garment product photos: does the top-scoring detection's object type match the label?

    Every record needs exactly one garment with an ``object_type`` (others are skipped and counted).
    A photo with no detection at all (score ≥ 0.05) counts as wrong and is counted in ``no_detection``.
    With a ``tagger``, the top detection's type is fused with the classifier's as ``tag`` does
    (:func:`fused_object_types`). Reported overall and per source.
    """
    low = DetectionLimits(0.05, detector.nms_thresh, detector.settings.max_detections)
    per_source: dict[str, dict[str, int]] = {}
    skipped = 0
    for record in tqdm(records, desc="top detection", unit="img", disable=not progress):
        labelled = [g for g in record.garments if g.object_type is not None]
        if len(labelled) != 1:
            skipped += 1
            continue
        image = load_image(record.path, min_side=512)
        found = detector.candidates(image.rgb, low)
        s = per_source.setdefault(record.source, {"photos": 0, "correct": 0, "no_detection": 0})
        s["photos"] += 1
        if not len(found):
            s["no_detection"] += 1
            continue
        found = found.select([int(found.confidence.argmax())])
        if tagger is not None and tagger.type_fusion is not None:
            found = fused_object_types(tagger, image, found)
        top = found.object_type[0]
        s["correct"] += int(top == labelled[0].object_type)
    total = {k: sum(s[k] for s in per_source.values()) for k in ("photos", "correct", "no_detection")}
    acc = {src: round(s["correct"] / s["photos"], 4) for src, s in per_source.items() if s["photos"]}
    return {"object_types": _type_source(tagger),
            "accuracy": round(total["correct"] / total["photos"], 4) if total["photos"] else None,
            "per_source_accuracy": acc, "counts": per_source, "skipped": skipped, **total}


def load_evaluation_records(*, coco: str | None = None, images: str | None = None, mapping: str | None = None,
                            dataset: str = "ccp", data_root: str | Path = "../shared/datasets", split: str = "val",
                            seed: int = 0, limit: int | None = None) -> list[ImageRecord]:
    """Labelled photos to evaluate on: a COCO file (``coco`` + ``images``, labels through ``mapping``), else
    the ``split`` (group split with ``seed``, as in training) of the comma-separated data sets ``dataset``;
    the first ``limit`` of them when given."""
    if coco:
        from fashionlens.io.coco import read_coco

        records = read_coco(coco, images, mapping=mapping)
    else:
        from fashionlens.io.datasets import read_dataset
        from fashionlens.io.splits import group_split

        records = []
        for name in dataset.split(","):
            records += group_split(read_dataset(name, data_root), seed=seed)[split]
    if limit:
        records = records[:limit]
    return records


def save_operating_point(detector: GarmentDetector, result: dict[str, Any], rules: Sequence[str], *,
                         measured_on: str) -> dict[str, Any]:
    """Choose the F1-best score threshold of the first rule set's PR sweep in ``result`` (from
    :func:`evaluate_detector`) and store it, with the detector's NMS IoU, ``rules`` and ``measured_on``,
    as the run-time defaults in the detector's weights. Returns the stored defaults."""
    from fashionlens.models.detector_weights import set_detector_defaults

    first = next(iter(result["rule_sets"].values()))
    best = max(first["pr_sweep"], key=lambda row: row["f1"])
    defaults = {"score_thresh": best["score_thresh"], "nms_thresh": detector.nms_thresh,
                "rules": list(rules), "f1": best["f1"], "measured_on": measured_on}
    set_detector_defaults(detector.path, defaults)
    return defaults


def run_detector_evaluation(*, out_dir: str | Path, weights: str | None = None, classifier: str | None = None,
                            coco: str | None = None, images: str | None = None, mapping: str | None = None,
                            dataset: str = "ccp", data_root: str | Path = "../shared/datasets", split: str = "val",
                            seed: int = 0, limit: int | None = None, classify: bool = True,
                            type_fusion: bool = True, score_thresh: float | None = None,
                            nms_thresh: float | None = None, rule_sets: Sequence[Sequence[str]] = ((),),
                            task: str = "coco", save_defaults: bool = False, progress: bool = True,
                            on_message: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``fashionlens evaluate detector``: the photos of :func:`load_evaluation_records` through the detector
    (``weights``, default: shipped) and, when ``classify``, a Tagger (``classifier``) whose classifier-fused
    object types are used when ``type_fusion``.

    ``task="top1"``: :func:`top_detection_accuracy`, written to ``top_detection.json`` and returned.
    ``task="coco"``: :func:`evaluate_detector` with ``rule_sets``; ``save_defaults`` stores the operating
    point in the weights (:func:`save_operating_point`; the stored defaults are reported to ``on_message``,
    else logged). Returns the summary the command prints (the first rule set's AP, end-to-end metrics, ``out``).
    """
    from fashionlens.detection.detector import DetectSettings, GarmentDetector
    from fashionlens.pipeline import TaggerConfig

    records = load_evaluation_records(coco=coco, images=images, mapping=mapping, dataset=dataset,
                                      data_root=data_root, split=split, seed=seed, limit=limit)
    settings = DetectSettings(score_thresh=score_thresh, nms_thresh=nms_thresh)
    tagger = None
    if classify:  # the tagger as `tag` builds it; its detector is the one evaluated
        tagger = TaggerConfig(weights=None if classifier is None else str(classifier),
                              detector=None if weights is None else str(weights), detect_settings=settings,
                              type_fusion=type_fusion).build()
    detector = tagger.detector if tagger is not None else GarmentDetector(weights, settings=settings)
    if task == "top1":
        top1 = top_detection_accuracy(detector, records, tagger=tagger, progress=progress)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "top_detection.json").write_text(json.dumps(top1, indent=2))
        return top1
    result = evaluate_detector(detector, records, out_dir=out_dir, rule_sets=rule_sets, tagger=tagger,
                               progress=progress)
    first = next(iter(result["rule_sets"].values()))
    if save_defaults:
        measured_on = f"{coco or dataset} {split} (seed {seed}), {len(records)} photos"
        defaults = save_operating_point(detector, result, rule_sets[0], measured_on=measured_on)
        (on_message or log.info)(f"stored defaults {defaults} in {detector.path}")
    return {"images": result["images"], "box": first["bbox"], "mask": first["segm"],
            "box_garments4": first["bbox_garments4"], "mask_garments4": first["segm_garments4"],
            "end_to_end": result.get("end_to_end"), "out": out_dir}
