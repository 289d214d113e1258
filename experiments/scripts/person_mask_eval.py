"""Person-aware masks (issue 28): CCP validation mask AP with and without the person mask, and its cost.

The shipped detector runs once per photo (ONNX, every candidate down to score 0.05, the detector's own
object types: no classifier fusion, as ``evaluate detector --type-fusion off``); each variant then
post-processes the same candidates (:func:`fashionlens.detection.person_mask.restrict_to_person`) and is
scored by the project's COCO evaluator. Timing: median per-photo milliseconds of the detector network and of
the person segmenter, measured in the same loop::

    .venv/bin/python experiments/scripts/person_mask_eval.py runs/person-mask/val.json [--split val] [--limit N]

Needs ``pip install --no-deps mediapipe==0.10.14`` (its model file only). Keep the JSON outside the repository.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.detection.detector import GarmentDetector
from fashionlens.detection.person_mask import PersonSegmenter, restrict_to_person
from fashionlens.evaluate.detection import evaluate_detections, records_to_coco
from fashionlens.imageio import load_image
from fashionlens.io.datasets import read_dataset
from fashionlens.io.records import encode_mask
from fashionlens.io.splits import group_split
from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.paths import default_data_root

GARMENT_TYPES = ("upper-body", "lower-body", "full-body", "footwear")
VARIANTS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "person": {},
    "person_dilate3": {"dilate_px": 3},
    "person_min_kept_0.3": {"min_kept": 0.3},
    "person_garment_types_only": {"types": GARMENT_TYPES},
}


def _predictions(image_id: int, g: Any, names: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(len(g)):
        x0, y0, x1, y1 = (float(v) for v in g.xyxy[i])
        out.append({"image_id": image_id, "category_id": names.index(g.object_type[i]),
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(g.confidence[i]),
                    "segmentation": encode_mask(g.mask[i])})
    return out


def _stats(gt: dict[str, Any], preds: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Mask AP over all six types and over the four garment types (box AP for reference)."""
    six = evaluate_detections(gt, preds)
    four = evaluate_detections(gt, preds, category_ids=[names.index(t) for t in GARMENT_TYPES])
    return {"mask_ap_6": six["segm"]["stats"]["AP"], "mask_ap50_6": six["segm"]["stats"]["AP50"],
            "mask_ap_4": four["segm"]["stats"]["AP"], "mask_ap50_4": four["segm"]["stats"]["AP50"],
            "box_ap_6": six["bbox"]["stats"]["AP"], "box_ap_4": four["bbox"]["stats"]["AP"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    records = group_split(read_dataset("ccp", default_data_root()), seed=0)[args.split][: args.limit]
    detector = GarmentDetector(threads=args.threads)
    segmenter = PersonSegmenter(threads=args.threads)
    names = list(detector.class_names)
    gt = records_to_coco(records)
    preds: dict[str, list[dict[str, Any]]] = {k: [] for k in VARIANTS}
    det_ms, person_ms = [], []
    limits = DetectionLimits(0.05, detector.nms_thresh, 100)
    for k, record in enumerate(records):
        rgb = load_image(record.path).rgb
        t0 = time.perf_counter()
        cands = detector.candidates(rgb, limits)
        t1 = time.perf_counter()
        person = segmenter.mask(rgb)
        t2 = time.perf_counter()
        det_ms.append(1000 * (t1 - t0))
        person_ms.append(1000 * (t2 - t1))
        for name, kwargs in VARIANTS.items():
            g = cands if kwargs is None else restrict_to_person(cands, person, **kwargs)
            preds[name] += _predictions(k + 1, g, names)
    results = {name: _stats(gt, p, names) for name, p in preds.items()}
    doc = {"split": f"ccp {args.split} (seed 0)", "photos": len(records), "detector": detector.model_info,
           "object_types": "detector's own (no classifier fusion)", "variants": results,
           "median_ms": {"detector_network": round(float(np.median(det_ms)), 1),
                         "person_segmenter": round(float(np.median(person_ms)), 1)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
