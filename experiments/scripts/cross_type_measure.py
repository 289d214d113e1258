"""Measure cross-type duplicate rules on a cache written by ``cross_type_cache.py`` (issue 25, item 3).

For each rule variant: COCO box/mask AP over the six object types and the four garment types on all
candidates (≥ 0.05, final object types after type fusion, raw detector scores as ``evaluate detector``), and,
on the tag output (raw score ≥ the stored threshold, top 20), the pairs of garments of different final object
types with box IoU > 0.7 (and mask IoU > 0.7), per photo, plus footwear boxes spanning two shoes.

    .venv/bin/python experiments/scripts/cross_type_measure.py runs/cross_type/val.pkl --split val
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from fashionlens.detection.cross_type import CrossTypeRule, cross_type_pairs, footwear_pair_boxes
from fashionlens.evaluate.detection import evaluate_detections, records_to_coco
from fashionlens.evaluate.detector_report import GARMENT_TYPE_IDS, load_evaluation_records
from fashionlens.runtime.detector_postprocess import box_iou

Rule = Callable[[dict[str, Any], list[str], np.ndarray], np.ndarray]


def _rle(m: dict[str, Any]) -> dict[str, Any]:
    r = dict(m)
    if isinstance(r.get("counts"), str):
        r["counts"] = r["counts"].encode()
    return r


def mask_iou(photo: dict[str, Any], idx: np.ndarray) -> np.ndarray:
    rles = [_rle(photo["masks"][i]) for i in idx]
    if not rles:
        return np.zeros((0, 0))
    return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)))


def rule_none(photo: dict[str, Any], types: list[str], order: np.ndarray) -> np.ndarray:
    return np.arange(len(types))


def greedy(photo: dict[str, Any], types: list[str], priority: np.ndarray, overlap: np.ndarray, thr: float
           ) -> np.ndarray:
    kept: list[int] = []
    for i in np.argsort(-priority, kind="stable"):
        if all(not (types[i] != types[j] and overlap[i, j] > thr) for j in kept):
            kept.append(int(i))
    return np.array(sorted(kept), dtype=np.int64)


def variants(object_types: list[str], score_thresh: float) -> dict[str, Rule]:
    def shipped(footwear: bool, same_type: bool = False) -> Rule:
        # raw scores: the calibrated ones' order with the detector's tie order; the footwear check sees what tag sees
        rule = CrossTypeRule(footwear_pairs=footwear, same_type=same_type)
        return lambda p, t, s: rule.keep(p["xyxy"], t, p["raw"], min_score=score_thresh)

    def evidence(p: dict[str, Any], t: list[str], s: np.ndarray) -> np.ndarray:
        own = np.array([p["type_probs"][i, object_types.index(t[i])] for i in range(len(t))]) if len(t) else s
        return greedy(p, t, p["cal"] * own + 1e-9 * p["raw"], box_iou(p["xyxy"], p["xyxy"]), 0.7)

    def by_mask(thr: float) -> Rule:
        return lambda p, t, s: greedy(p, t, p["raw"], mask_iou(p, np.arange(len(t))), thr)

    def box_and_mask(p: dict[str, Any], t: list[str], s: np.ndarray) -> np.ndarray:
        ov = np.minimum(box_iou(p["xyxy"], p["xyxy"]), mask_iou(p, np.arange(len(t))) / 0.5 * 0.7 + 1e-9)
        return greedy(p, t, p["raw"], ov, 0.7)  # box IoU > 0.7 and mask IoU > 0.5

    def any_type(p: dict[str, Any], t: list[str], s: np.ndarray) -> np.ndarray:
        # any pair above 0.7, whatever the final types (a same-type pair above 0.7 is one that type fusion made)
        iou = box_iou(p["xyxy"], p["xyxy"])
        kept: list[int] = []
        for i in np.argsort(-p["raw"], kind="stable"):
            if all(iou[i, j] <= 0.7 for j in kept):
                kept.append(int(i))
        return np.array(sorted(kept), dtype=np.int64)

    return {"none": rule_none, "box>0.7 any type": any_type,
            "shipped: box>0.7 any type + footwear": shipped(True, True), "box>0.7 score": shipped(False), "box>0.7 score + footwear": shipped(True),
            "box>0.7 evidence": evidence, "mask>0.7 score": by_mask(0.7), "mask>0.5 score": by_mask(0.5),
            "box>0.7&mask>0.5 score": box_and_mask}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--split", required=True)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with open(args.cache, "rb") as fh:
        cache = pickle.load(fh)
    records = load_evaluation_records(dataset="ccp", data_root="../shared/datasets", split=args.split, seed=0)
    gt = records_to_coco(records)
    names, otypes, thr = cache["class_names"], cache["object_types"], cache["score_thresh"]
    for p in cache["photos"]:  # the rule's tie order (index) must be the raw score's order
        assert np.all(np.diff(p["raw"]) <= 0), p["path"]
    gt_shoes = {im: [] for im in range(1, len(records) + 1)}
    for a in gt["annotations"]:
        if names[a["category_id"]] == "footwear":
            x, y, w, h = a["bbox"]
            gt_shoes[a["image_id"]].append([x, y, x + w, y + h])
    chosen = variants(otypes, thr)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    table = {}
    for name, rule in chosen.items():
        preds: list[dict[str, Any]] = []
        pairs = mask_pairs = same_pairs = photos_with = pair_boxes = gt_spanning = n_out = 0
        for p in cache["photos"]:
            types = p["fused_type"]
            kept = rule(p, types, p["raw"]) if len(types) else np.zeros(0, np.int64)
            for i in kept:
                x0, y0, x1, y1 = p["xyxy"][i]
                preds.append({"image_id": p["image_id"], "category_id": names.index(types[i]),
                              "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(p["raw"][i]),
                              "segmentation": _rle(p["masks"][i])})
            out = np.array([i for i in kept if p["raw"][i] >= thr][:20], dtype=np.int64)
            n_out += len(out)
            t_out = [types[i] for i in out]
            pr = cross_type_pairs(p["xyxy"][out], t_out)
            pairs += len(pr)
            photos_with += bool(pr)
            if len(out) > 1:
                mi = mask_iou(p, out)
                bi = box_iou(p["xyxy"][out], p["xyxy"][out])
                for a in range(len(out)):
                    for b in range(a + 1, len(out)):
                        mask_pairs += t_out[a] != t_out[b] and mi[a, b] > 0.7
                        same_pairs += t_out[a] == t_out[b] and bi[a, b] > 0.7
            pair_boxes += len(footwear_pair_boxes(p["xyxy"][out], t_out))
            # footwear outputs whose box holds two ground-truth shoes (each >= 80 % inside): one box for a pair
            for i in out:
                if types[i] != "footwear" or len(gt_shoes[p["image_id"]]) < 2:
                    continue
                b = p["xyxy"][i]
                inside = 0
                for g in gt_shoes[p["image_id"]]:
                    w = min(b[2], g[2]) - max(b[0], g[0])
                    h = min(b[3], g[3]) - max(b[1], g[1])
                    area = (g[2] - g[0]) * (g[3] - g[1])
                    inside += area > 0 and max(0, w) * max(0, h) / area >= 0.8
                gt_spanning += inside >= 2
        ev = evaluate_detections(gt, preds)
        ev4 = evaluate_detections(gt, preds, category_ids=GARMENT_TYPE_IDS)
        n = len(cache["photos"])
        row = {"box_AP": ev["bbox"]["stats"]["AP"], "box_AP50": ev["bbox"]["stats"]["AP50"],
               "mask_AP": ev["segm"]["stats"]["AP"], "box_AP4": ev4["bbox"]["stats"]["AP"],
               "mask_AP4": ev4["segm"]["stats"]["AP"], "kaggle": ev.get("kaggle", {}).get("score"),
               "per_class_box_AP": ev["bbox"]["per_class_AP"],
               "output_garments": n_out, "cross_type_pairs_box": pairs, "pairs_per_photo": round(pairs / n, 4),
               "photos_with_pair": photos_with, "cross_type_pairs_mask": int(mask_pairs),
               "same_type_pairs_box": int(same_pairs), "footwear_pair_boxes": pair_boxes,
               "footwear_boxes_spanning_2_gt_shoes": gt_spanning, "photos": n}
        table[name] = row
        print(name, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                                if k != "per_class_box_AP"}, default=int), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(table, fh, indent=1, default=int)


if __name__ == "__main__":
    main()
