"""Garment pixels of the shipped detector's masks on CCP photos, with CCP's pixel labels.

``detect``: for every photo of one CCP split (the project's seeded group split, seed 0: 611 / 131 /
131), the shipped detector (default settings, as ``fashionlens tag``) finds garments; each garment's
box crop, its mask inside the box (as ``pipeline.crop_garment`` takes them) and CCP's class map of
the box are saved (``--raw``). ``features``: for each saved garment, the pixels ``tag`` measures
colours on — the mask, subsampled to at most 4096 exactly as
:func:`fashionlens.colours.naming.garment_pixels` does — with their
:func:`~fashionlens.models.pixel_filter.pixel_features` and CCP's label of each pixel, grouped as
``own`` (the CCP garment class covering most of the mask), ``other`` (any other clothing or
accessory class), ``skin``, ``hair``, ``background`` (CCP ``null``).

    .venv/bin/python experiments/scripts/garment_pixel_data.py detect --split train --raw /tmp/gp_train_raw.npz
    .venv/bin/python experiments/scripts/garment_pixel_data.py features --raw /tmp/gp_train_raw.npz --out /tmp/gp_train.npz

(the same with ``--split val``). Used by ``train_garment_pixel_filter.py`` (train split) and
``measure_garment_pixels.py`` (val split). The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fashionlens.colours.naming import MAX_GARMENT_PIXELS
from fashionlens.models.pixel_filter import pixel_features, sample_mask_pixels
from fashionlens.detection.detector import GarmentDetector
from fashionlens.imageio import load_image
from fashionlens.io.ccp import read_ccp
from fashionlens.io.splits import group_split
from fashionlens.taxonomy import load_mapping

GROUPS = ("own", "other", "skin", "hair", "background")


def box_and_mask(rgb: np.ndarray, xyxy: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The box crop and the mask inside it, as ``pipeline.crop_garment`` takes them (full-resolution decode)."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    bx0, by0 = int(x0), int(y0)
    bx1, by1 = max(bx0 + 1, int(np.ceil(x1))), max(by0 + 1, int(np.ceil(y1)))
    return rgb[by0:by1, bx0:bx1], mask[by0:by1, bx0:bx1], bx0, by0


def detect(split: str, root: Path, raw: str, limit: int) -> None:
    """Run the detector on the split's photos and save each garment's box, mask and CCP class map."""
    records = group_split(read_ccp(root), seed=0)[split]
    if limit:
        records = records[:limit]
    detector = GarmentDetector(None)
    arrays: dict[str, np.ndarray] = {}
    garments_meta = []
    t0 = time.perf_counter()
    for k, r in enumerate(records):
        im = load_image(r.path)
        if im.scale != 1.0:
            raise SystemExit(f"{r.path}: decoded at scale {im.scale}; expected full resolution")
        cls = np.asarray(Image.open(root / "masks" / f"{Path(r.path).stem}.png"))
        garments = detector.detect(im)
        if garments.mask is None:
            continue
        for j in garments:
            box, m, bx0, by0 = box_and_mask(im.rgb, garments.xyxy[j], garments.mask[j])
            if not m.any():
                continue
            n = len(garments_meta)
            arrays[f"box{n}"] = box
            arrays[f"mask{n}"] = m
            arrays[f"cls{n}"] = cls[by0:by0 + box.shape[0], bx0:bx0 + box.shape[1]]
            garments_meta.append({"photo": Path(r.path).stem, "object_type": garments.object_type[j],
                                  "score": float(garments.confidence[j])})
        if k % 50 == 0:
            print(f"{k + 1}/{len(records)} photos, {len(garments_meta)} garments, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    np.savez_compressed(raw, meta=np.array(json.dumps({"split": split, "garments": garments_meta})), **arrays)
    print(f"{len(records)} photos, {len(garments_meta)} garments -> {raw}")


def features(root: Path, raw: str, out: str) -> None:
    """Pixels, features and CCP groups of every garment saved by :func:`detect`."""
    labels = json.loads((root / "labels.json").read_text("utf-8"))
    mapping = load_mapping("ccp")
    garment_class = np.array([mapping.resolve(lb).is_mapped for lb in labels])
    special = {labels.index("skin"): 2, labels.index("hair"): 3, labels.index("null"): 4}
    d = np.load(raw)
    meta = json.loads(str(d["meta"]))
    feats, groups, garment_of, rgbs = [], [], [], []
    for n, g in enumerate(meta["garments"]):
        box, m, cls = d[f"box{n}"], d[f"mask{n}"], d[f"cls{n}"]
        ys, xs = sample_mask_pixels(m, MAX_GARMENT_PIXELS)
        c = cls[ys, xs]
        garment_pixels_cls = c[garment_class[c]]
        own = np.bincount(garment_pixels_cls, minlength=len(labels)).argmax() if len(garment_pixels_cls) else -1
        grp = np.where(c == own, 0, 1)
        for value, code in special.items():
            grp[c == value] = code
        feats.append(pixel_features(box, m, ys, xs))
        groups.append(grp.astype(np.int8))
        rgbs.append(box[ys, xs])
        garment_of.append(np.full(len(ys), n, np.int32))
        g["own_class"], g["n"] = (labels[own] if own >= 0 else None), len(ys)
    np.savez_compressed(out, features=np.concatenate(feats), groups=np.concatenate(groups),
                        garment=np.concatenate(garment_of), rgb=np.concatenate(rgbs),
                        meta=np.array(json.dumps({"split": meta["split"], "groups": GROUPS,
                                                  "garments": meta["garments"]})))
    print(f"{len(meta['garments'])} garments -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("detect", "features"))
    ap.add_argument("--split", choices=("train", "val"))
    ap.add_argument("--root", default="../shared/datasets/ccp")
    ap.add_argument("--raw", required=True, help="the detect step's output (written by detect, read by features)")
    ap.add_argument("--out", help="features: the output file")
    ap.add_argument("--limit", type=int, default=0, help="detect: first N photos only (0: all)")
    args = ap.parse_args()
    if args.step == "detect":
        if args.split is None:
            ap.error("detect needs --split")
        detect(args.split, Path(args.root), args.raw, args.limit)
    else:
        if args.out is None:
            ap.error("features needs --out")
        features(Path(args.root), args.raw, args.out)


if __name__ == "__main__":
    main()
