"""Trained detectors side by side: seconds per photo (median) through `GarmentDetector`.

Each detector (weights file × backend) runs on the same CCP photos, interleaved photo by photo
so background load hits all of them alike, after a warm-up; the score threshold is each
detector's stored default (or ``--score-thresh``), as ``fashionlens tag`` would run it.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_detectors.py \\
        src/fashionlens/weights/garment-detector-fcos-seg-lite0.pt runs/cmp-maskrcnn/model.pt --limit 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from fashionlens.detection.detector import DetectSettings, GarmentDetector
from fashionlens.imageio import load_image

DEFAULT_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ccp" / "photos"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights", nargs="+", help="detector weights files")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--score-thresh", type=float, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(q for q in args.images.iterdir() if q.suffix.lower() in {".jpg", ".jpeg", ".png"})[: args.limit]
    images = [load_image(q) for q in paths]
    runners: dict[str, GarmentDetector] = {}
    for w in args.weights:
        for backend in ("torch", "onnx"):
            if backend == "onnx" and not Path(w).with_suffix(".onnx").is_file():
                continue
            det = GarmentDetector(w, backend=backend, threads=args.threads,
                                  settings=DetectSettings(score_thresh=args.score_thresh))
            runners[f"{Path(w).parent.name}/{Path(w).stem} [{backend}]"] = det
    for det in runners.values():
        det.detect(images[0])
    times: dict[str, list[float]] = {k: [] for k in runners}
    counts: dict[str, list[int]] = {k: [] for k in runners}
    for im in images:
        for name, det in runners.items():
            t0 = time.perf_counter()
            g = det.detect(im)
            times[name].append(time.perf_counter() - t0)
            counts[name].append(len(g))
    rows = [{"detector": name, "median_s": statistics.median(t), "p90_s": sorted(t)[int(0.9 * (len(t) - 1))],
             "images_per_s": 1 / statistics.median(t), "detections_per_image": statistics.mean(counts[name])}
            for name, t in times.items()]
    print(f"{len(images)} photos, {args.threads} threads, load average {os.getloadavg()[0]:.2f}")
    print("| detector | median s/photo | p90 s | photos/s | detections/photo |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['detector']} | {r['median_s']:.3f} | {r['p90_s']:.3f} | {r['images_per_s']:.1f} | "
              f"{r['detections_per_image']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
