"""Full detection pipeline throughput (decode → detect → crop → classify → colours), as ``fashionlens tag`` runs it.

CCP-sized photos (825×550 street photos) go through :func:`fashionlens.jobs.local.tag_paths` with a
:class:`~fashionlens.detection.detector.GarmentDetector`; images per second over the whole list exclude the
one-off model load. Each configuration (mode × inference threads) runs in a fresh subprocess so
its peak RSS is its own; repeats are interleaved (repeat ``r`` of every configuration before
``r + 1`` of any) and the table shows medians, so background load hits all configurations alike.

Per-stage times are the pipeline's own ``timing_ms`` means: ``decode`` (in decode threads,
overlapping inference), ``detect`` (detector network + post-processing + masks) and ``classify``
(all crops of the photo through the classifier).

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_pipeline.py                    # 60 CCP photos
    .venv/bin/python benchmarks/bench_pipeline.py --detector runs/detector-fcos-seg-lite0/model.pt
    .venv/bin/python benchmarks/bench_pipeline.py --json runs/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT / ".." / "shared" / "datasets" / "ccp" / "photos"

#: (mode, inference threads per model call, streams = batches in flight at once; see tag_paths)
CONFIGS: list[tuple[str, int, int]] = [("detect", 1, 1), ("detect", 2, 1), ("detect", 1, 2), ("whole_image", 2, 1)]


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.pipeline import Tagger
    from fashionlens.jobs.local import tag_paths

    paths = [Path(line) for line in Path(args.list).read_text().splitlines() if line]
    t0 = time.perf_counter()
    detector = GarmentDetector(args.detector, threads=args.threads) if args.mode == "detect" else None
    tagger = Tagger(threads=args.threads, detector=detector)
    load_s = time.perf_counter() - t0
    list(tag_paths(tagger, paths[:4], batch_size=2, progress=False, streams=args.streams))  # warm-up
    t0 = time.perf_counter()
    records = list(tag_paths(tagger, paths, batch_size=args.batch_size, progress=False, streams=args.streams))
    dt = time.perf_counter() - t0
    failed = [r for r in records if r["error"] is not None]
    if failed:
        raise SystemExit(f"bench_pipeline: {len(failed)} images failed: {[r['error'] for r in failed][:3]}")
    keys = sorted({k for r in records for k in r["timing_ms"]})
    timing = {k: float(np.mean([r["timing_ms"].get(k, 0.0) for r in records])) for k in keys}
    garments = float(np.mean([len(r["garments"]) for r in records]))
    return {"images": len(paths), "seconds": dt, "images_per_s": len(paths) / dt, "load_s": load_s,
            "mean_timing_ms": timing, "garments_per_image": garments,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "loadavg_1min": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--detector", default=None, help="detector weights (default: the shipped detector)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--list", default=None, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="detect", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--streams", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    paths = sorted(q for q in args.images.iterdir() if q.suffix.lower() in {".jpg", ".jpeg", ".png"})[: args.limit]
    if not paths:
        raise SystemExit(f"bench_pipeline: no photos in {args.images}")
    for q in paths:
        q.read_bytes()
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(str(q) for q in paths))
        list_path = fh.name
    for r in range(args.repeats):
        for mode, threads, streams in CONFIGS:
            cmd = [sys.executable, __file__, "--worker", "--list", list_path, "--mode", mode, "--threads", str(threads),
                   "--streams", str(streams), "--batch-size", str(args.batch_size)]
            if args.detector:
                cmd += ["--detector", args.detector]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"bench_pipeline: worker {mode}/{threads}/{streams} failed:\n{out.stderr[-2000:]}")
            runs[(mode, threads, streams)].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}/{args.repeats} {mode:11s} threads {threads} streams {streams}: "
                  f"{runs[(mode, threads, streams)][-1]['images_per_s']:.2f} img/s", file=sys.stderr)
    rows = []
    for (mode, threads, streams), rs in runs.items():
        rows.append({"mode": mode, "threads": threads, "streams": streams,
                     "images_per_s": statistics.median(x["images_per_s"] for x in rs),
                     "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in rs),
                     "garments_per_image": rs[0]["garments_per_image"],
                     "mean_timing_ms": {k: statistics.median(x["mean_timing_ms"][k] for x in rs)
                                        for k in rs[0]["mean_timing_ms"]},
                     "loadavg_1min": [x["loadavg_1min"] for x in rs]})
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "images": len(paths),
              "repeats": args.repeats, "rows": rows}
    print("| mode | threads | streams | img/s (median) | peak RSS MiB | garments/img | decode ms | detect ms | classify ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        t = row["mean_timing_ms"]
        print(f"| {row['mode']} | {row['threads']} | {row['streams']} | {row['images_per_s']:.2f} | {row['peak_rss_mb']:.0f} | "
              f"{row['garments_per_image']:.2f} | {t.get('decode', 0):.1f} | {t.get('detect', 0):.1f} | "
              f"{t.get('classify', t.get('infer', 0)):.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
