"""Cache, per CCP photo of one split, what the cross-type duplicate rule needs (issue 25, item 3).

For every photo: the detector's candidates down to score 0.05 (the COCO convention for AP, as
``fashionlens evaluate detector``), their raw and calibrated scores, the detector's object type, the
object type after type fusion (exactly as ``tag``/``evaluate detector`` fuse it), the classifier's
calibrated object-type probabilities on the crop, and the masks (COCO RLE). The tag output of a photo
is the candidates with raw score ≥ the detector's stored threshold (top 20): the greedy rules measured
from this cache keep the same garments above the threshold whether they see all candidates or only those.

    .venv/bin/python experiments/scripts/cross_type_cache.py --split val --out runs/cross_type/val.pkl
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np

from fashionlens.detection.detector import GarmentDetector
from fashionlens.evaluate.detector_report import load_evaluation_records
from fashionlens.imageio import load_image
from fashionlens.io.records import encode_mask
from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.pipeline import TaggerConfig, box_share, crop_garment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True, choices=["val", "test"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    records = load_evaluation_records(dataset="ccp", data_root="../shared/datasets", split=args.split, seed=0,
                                      limit=args.limit)
    tagger = TaggerConfig().build()
    detector: GarmentDetector = tagger.detector
    cal = tagger.detector_calibration()
    limits = DetectionLimits(0.05, detector.nms_thresh, 100)
    photos = []
    t0 = time.time()
    for k, record in enumerate(records):
        image = load_image(record.path)
        c = detector.candidates(image.rgb, limits)
        h, w = image.rgb.shape[:2]
        entry = {"path": record.path, "image_id": k + 1, "size": (h, w), "scale": image.scale,
                 "xyxy": c.xyxy.astype(np.float64), "raw": c.confidence.astype(np.float64),
                 "det_type": list(c.object_type), "fused_type": list(c.object_type),
                 "cal": c.confidence.astype(np.float64), "type_probs": np.zeros((len(c), 6)),
                 "masks": [encode_mask(m) for m in c.mask] if c.mask is not None else None}
        if len(c):
            entry["cal"] = np.clip(cal.heads["garment"].apply(c.confidence[:, None])[:, 0], 0, 1).astype(np.float64)
            crops = [crop_garment(image, c.xyxy[i] / image.scale, None, margin=tagger.crop_margin)[0] for i in c]
            probs = tagger.predict(crops)
            fusion = tagger.fusion_category(probs)
            entry["fused_type"] = [tagger.fuse_object_type(t, p, box_share(xyxy, w, h))
                                   for t, p, xyxy in zip(c.object_type, fusion, c.xyxy)]
            entry["type_probs"] = tagger.object_type_probs(probs["category"])
        photos.append(entry)
        if (k + 1) % 10 == 0:
            print(f"{k + 1}/{len(records)} {time.time() - t0:.0f}s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        pickle.dump({"split": args.split, "score_thresh": detector.score_thresh, "class_names": detector.class_names,
                     "object_types": list(tagger.taxonomy.object_types), "photos": photos}, fh)
    print("wrote", out, f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
