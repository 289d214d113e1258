"""CPU inference speed of the untrained detector architectures (eager PyTorch) on CCP photos.

Run: ``.venv/bin/python benchmarks/detector_cpu_speed.py [--photos N] [--repeats R] [--threads T]``.
Prints one JSON line per (model, size): median / p90 seconds per image and the mean number of
detections. Heads are untrained (ImageNet backbone only), so the Mask R-CNN numbers are for the
detection cap (``box_detections_per_img``) filled, the slow end for its mask head and mask pasting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fashionlens.imageio import load_image
from fashionlens.models.detector import create_detector

CCP = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ccp" / "photos"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    p.add_argument("--models", nargs="+", default=["fcos-lite0-fpn", "maskrcnn-lite0-fpn"])
    p.add_argument("--max-dets", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(CCP.glob("*.jpg"))[: args.photos]
    images = [torch.from_numpy(load_image(x).rgb).permute(2, 0, 1).float().div(255) for x in paths]
    for name in args.models:
        for size in args.sizes:
            cap = {"detections_per_img": args.max_dets} if name.startswith("fcos") else {
                "box_detections_per_img": args.max_dets}
            model = create_detector(name, pretrained_backbone=True, min_size=size, max_size=size, **cap).eval()
            times, dets = [], []
            with torch.inference_mode():
                model([images[0]])  # warm-up
                for _ in range(args.repeats):
                    for img in images:
                        t = time.perf_counter()
                        out = model([img])
                        times.append(time.perf_counter() - t)
                        dets.append(len(out[0]["boxes"]))
                t = time.perf_counter()
                for _ in range(args.repeats):
                    for img in images:
                        model.backbone(model.transform([img])[0].tensors)
                backbone_s = (time.perf_counter() - t) / (args.repeats * len(images))
            print(json.dumps({"model": name, "size": size, "image_hw": list(images[0].shape[1:]),
                              "threads": args.threads, "median_s": round(statistics.median(times), 4),
                              "p90_s": round(float(np.percentile(times, 90)), 4),
                              "backbone_fpn_mean_s": round(backbone_s, 4), "mean_detections": float(np.mean(dets)),
                              "runs": len(times)}), flush=True)


if __name__ == "__main__":
    main()
