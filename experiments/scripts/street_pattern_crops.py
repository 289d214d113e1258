"""Detect and classify every garment of the CCP development photos; keep the raw head probabilities.

The input of the street prior-shift experiment (``street_pattern_priors.py``, issue 25 item 3): for each
CCP **train and validation** photo of the project's split (``group_split(read_ccp(...), seed=0)``, the
split of the detector, the classifier and the eye-labelled street set; **test photos are never read**)
it does what ``fashionlens tag`` does in detect mode — detect, fuse the object type, crop each garment
with the tagger's margin, classify the crop — but keeps the classifier's **uncalibrated** probabilities of
every single-label head (``pattern``, ``material``, ``sleeve``, ``neckline``, ``fit``, ``category``) instead
of the emitted labels, so that a correction of them can be fitted and scored offline.

Writes one ``.npz`` (outside the repository; default ``/tmp/street_pattern/crops.npz``): per detected
garment ``photo`` (CCP photo id), ``split`` (train/val), ``box`` (``xywh``, photo pixels), ``object_type``
(after type fusion, as emitted), ``score`` (detector confidence) and ``p_<head>`` (backend probabilities).
A photo without detections contributes nothing (``tag`` would fall back to the whole photo; such a
garment is never matched to a labelled box).

With ``--only-labelled`` only the 327 photos of the street set (``data/street_labels/garments.csv``) are
read — what the experiment used (about 4 s a photo on the busy 2-core machine); every detected garment of
those photos is kept, labelled or not.

Usage: ``nice -n 10 python experiments/scripts/street_pattern_crops.py --only-labelled [--backend torch]``
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from fashionlens.imageio import load_image
from fashionlens.pipeline import TaggerConfig, box_share, crop_garment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from street_label_tiles import development_photo_ids

REPO = Path(__file__).resolve().parents[2]
HEADS = ("pattern", "material", "sleeve", "neckline", "fit", "category")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ccp", type=Path, default=REPO.parent / "shared/datasets/ccp")
    ap.add_argument("--out", type=Path, default=Path("/tmp/street_pattern/crops.npz"))
    ap.add_argument("--backend", default="torch", choices=("auto", "onnx", "torch"),
                    help="classifier backend (torch: the shipped .pt weights themselves)")
    ap.add_argument("--detector-backend", default="auto", choices=("auto", "onnx", "torch"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (timing)")
    ap.add_argument("--only-labelled", type=Path, nargs="?", const=REPO / "data/street_labels/garments.csv",
                    help="only the photos of the street set's manifest (default data/street_labels/garments.csv)")
    args = ap.parse_args()
    if args.out.resolve().is_relative_to(REPO):
        raise ValueError(f"--out {args.out} is inside the repository; it holds per-photo outputs, keep it outside")

    dev = development_photo_ids(args.ccp)  # photo id → train/val; test photos left out
    photos = sorted(dev)
    if args.only_labelled:
        with open(args.only_labelled, newline="") as f:
            wanted = {r["photo_id"] for r in csv.DictReader(f)}
        if stray := wanted - set(dev):
            raise ValueError(f"{args.only_labelled}: photos not in the CCP train/val split: {sorted(stray)[:3]}")
        photos = [p for p in photos if p in wanted]
    photos = photos[: args.limit or None]
    tagger = TaggerConfig(backend=args.backend, detector_backend=args.detector_backend).build()
    tagger.calibration = None  # raw backend probabilities (calibration is applied after the correction)
    rows: dict[str, list] = {k: [] for k in ("photo", "split", "box", "object_type", "score",
                                             *(f"p_{h}" for h in HEADS))}
    t0 = time.perf_counter()
    for n, pid in enumerate(photos, 1):
        im = load_image(args.ccp / "photos" / f"{pid}.jpg")
        garments = tagger.detector.detect(im, tagger.detect_settings)
        if not len(garments):
            continue
        crops = [crop_garment(im, garments.xyxy[j], None if garments.mask is None else garments.mask[j],
                              margin=tagger.crop_margin)[0] for j in garments]
        probs = tagger.predict(crops)
        for j in garments:
            x0, y0, x1, y1 = (float(v) for v in garments.xyxy[j])
            rows["photo"].append(pid)
            rows["split"].append(dev[pid])
            rows["box"].append((x0, y0, x1 - x0, y1 - y0))
            rows["object_type"].append(tagger.fuse_object_type(
                garments.object_type[j], probs["category"][j], box_share(garments.xyxy[j], im.width, im.height)))
            rows["score"].append(float(garments.confidence[j]))
            for h in HEADS:
                rows[f"p_{h}"].append(np.asarray(probs[h][j], np.float64))
        if n % 50 == 0:
            print(f"{n}/{len(photos)} photos, {len(rows['photo'])} garments, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    values = {h.name: list(h.values) for h in tagger.meta.heads}
    np.savez_compressed(args.out, **{k: np.asarray(v) for k, v in rows.items()},
                        info=np.array(json.dumps({
                            "photos": len(photos), "only_labelled": bool(args.only_labelled), "backend": tagger.backend.name, "weights": tagger.meta.name,
                            "version": tagger.meta.version, "detector": str(Path(tagger.detector.path).name),
                            "detector_backend": "torch" if tagger.detector.model is not None else "onnx",
                            "values": values, "seconds": round(time.perf_counter() - t0, 1)})))
    print(f"{len(rows['photo'])} garments of {len(photos)} photos → {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
