"""Whole-image tagging throughput, measured the way users run ``fashionlens tag``.

JPEG files on disk go through :func:`fashionlens.jobs.local.tag_paths` (decode threads + batched
inference + colour post-processing); throughput is images per second over the whole list,
excluding the one-off model load (reported separately).

``onnx-head-colours`` is the default configuration without the pixel colour model
(``Tagger(colour_model=None)``, ``tag --pixel-colours off``): colour names from the classifier's head
alone and shares from the photo's centre, without the plain-backdrop search — the path before
2026-12-06 — so the cost of the pixel colours is measured side by side.

Every configuration (backend × batch size × inference threads) runs in a fresh subprocess, so
its peak RSS (``ru_maxrss``) is its own. Configurations are measured side by side: repeat ``r`` of
every configuration runs before repeat ``r + 1`` of any, so slow drifts in background load hit
all configurations alike; the table reports the median of the repeats.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_tag.py                       # first 200 clothing photos
    .venv/bin/python benchmarks/bench_tag.py --synthetic 200       # no data set: 352×470 JPEGs
    .venv/bin/python benchmarks/bench_tag.py --json runs/bench.json --profile

``--profile`` adds a serial, single-process breakdown of the default configuration's cost per
image (onnx, batch 16; 1 and all-core inference threads), one stage at a time: decode,
preprocess, inference, post-processing (of which the garment's pixels, colour features and colour shares).
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
DEFAULT_IMAGES = ROOT / ".." / "shared" / "datasets" / "clothing" / "images"
IMAGE_SUFFIXES = {".jpg", ".jpeg"}

#: (backend, batch size, inference threads); the CLI default is onnx / 16 / all cores
CONFIGS: list[tuple[str, int, int]] = [
    ("onnx", 1, 1), ("onnx", 1, 2),
    ("onnx", 16, 1), ("onnx", 16, 2),
    ("onnx", 32, 1), ("onnx", 32, 2),
    ("torch", 16, 1), ("torch", 16, 2),
    # the default without the pixel colour model (`tag --pixel-colours off`: colour names from the head alone,
    # shares from the photo's centre, no backdrop search — the path before 2026-12-06): its cost, side by side
    ("onnx-head-colours", 16, 2),
]


# ------------------------------------------------------------------------------------ inputs


def synthetic_jpegs(n: int, folder: Path, *, size: tuple[int, int] = (352, 470)) -> list[Path]:
    """``n`` photo-like JPEGs (a garment-coloured block on a textured background, noise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    paths = []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        bg = rng.integers(150, 250, 3)
        arr = np.empty((h, w, 3), np.float32)
        arr[:] = bg
        arr += 12 * np.sin(xx / rng.uniform(5, 40))[..., None]
        x0, y0 = rng.integers(20, w // 3), rng.integers(20, h // 4)
        x1, y1 = rng.integers(2 * w // 3, w - 20), rng.integers(3 * h // 4, h - 20)
        arr[y0:y1, x0:x1] = rng.integers(0, 256, 3)
        arr += rng.normal(0, 6, arr.shape)
        path = folder / f"synthetic_{i:05d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def image_list(folder: Path, limit: int) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise SystemExit(f"bench_tag: no JPEG files in {folder}")
    for p in paths:  # warm the page cache so the first configuration does not pay for cold reads
        p.read_bytes()
    return paths


# ------------------------------------------------------------------------------------ worker


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, one timed pass over the list, in this (fresh) process."""
    import numpy as np

    from fashionlens.pipeline import Tagger
    from fashionlens.jobs.local import tag_paths

    paths = [Path(line) for line in Path(args.list).read_text().splitlines() if line]
    t0 = time.perf_counter()
    if args.backend == "onnx-head-colours":
        tagger = Tagger(backend="onnx", threads=args.threads, colour_model=None)
    else:
        tagger = Tagger(backend=args.backend, threads=args.threads)
    load_s = time.perf_counter() - t0
    # warm-up: one batch through the whole path (first runs allocate and pick kernels)
    list(tag_paths(tagger, paths[: args.batch_size], batch_size=args.batch_size, decode_threads=args.decode_threads,
                   progress=False))
    t0 = time.perf_counter()
    records = list(tag_paths(tagger, paths, batch_size=args.batch_size, decode_threads=args.decode_threads,
                             progress=False))
    dt = time.perf_counter() - t0
    ok = [r for r in records if r["error"] is None]
    if len(ok) != len(paths):
        raise SystemExit(f"bench_tag: {len(paths) - len(ok)} images failed: "
                         f"{[r['error'] for r in records if r['error']][:3]}")
    timing = {k: float(np.mean([r["timing_ms"][k] for r in ok])) for k in ("decode", "infer", "post")}
    return {"images": len(paths), "seconds": dt, "images_per_s": len(paths) / dt, "load_s": load_s,
            "mean_timing_ms": timing, "peak_rss_mb": _peak_rss_mb(), "loadavg_1min": os.getloadavg()[0]}


# ------------------------------------------------------------------------------------ profile


def profile(paths: list[Path], *, batch_size: int = 16, threads: int | None = None) -> dict[str, Any]:
    """Serial cost per image of each stage of the default configuration, one stage at a time."""
    import numpy as np

    from fashionlens.models.pixel_colours import colour_features
    from fashionlens.colours.naming import colour_shares, whole_image_pixels
    from fashionlens.imageio import load_image
    from fashionlens.pipeline import Tagger, preprocess

    tagger = Tagger(backend="onnx", threads=threads)
    n = len(paths)
    out: dict[str, Any] = {"images": n, "batch_size": batch_size, "threads": threads or os.cpu_count()}

    t0 = time.perf_counter()
    images = [load_image(p, min_side=tagger.input_size) for p in paths]
    out["decode_ms"] = (time.perf_counter() - t0) * 1000 / n

    t0 = time.perf_counter()
    arrays = [preprocess(im.rgb, tagger.meta) for im in images]
    out["preprocess_ms"] = (time.perf_counter() - t0) * 1000 / n

    batches = [np.stack(arrays[i:i + batch_size]) for i in range(0, n, batch_size)]
    tagger.backend.run(batches[0])  # warm-up
    t0 = time.perf_counter()
    probs = [tagger.backend.run(b) for b in batches]
    out["inference_ms"] = (time.perf_counter() - t0) * 1000 / n

    # post-processing: everything tag_batch does after inference (the garment's pixels, the pixel colour
    # model, colour shares), then its parts alone; one warm-up call first (palette cache, OpenCV init)
    def garment(p: dict[str, Any], i: int, im: Any) -> dict[str, Any]:
        return tagger._garment(p, i, whole_image_pixels(im.rgb), (0, 0, im.width, im.height))

    garment(probs[0], 0, images[0])
    t0 = time.perf_counter()
    for bi, p in enumerate(probs):
        for i in range(len(batches[bi])):
            garment(p, i, images[bi * batch_size + i])
    out["post_ms"] = (time.perf_counter() - t0) * 1000 / n
    t0 = time.perf_counter()
    pixels = [whole_image_pixels(im.rgb) for im in images]
    out["garment_pixels_ms"] = (time.perf_counter() - t0) * 1000 / n
    out["plain_backdrop_share"] = float(np.mean([g.masked for g in pixels]))
    t0 = time.perf_counter()
    for g in pixels:
        colour_features(g.pixels)
    out["colour_features_ms"] = (time.perf_counter() - t0) * 1000 / n
    names = [n for n in tagger.meta.head("colours").values if n != "multicolour"][:3]
    t0 = time.perf_counter()
    for g in pixels:
        colour_shares(g.pixels, names)
    out["colour_shares_ms"] = (time.perf_counter() - t0) * 1000 / n
    total = out["decode_ms"] + out["preprocess_ms"] + out["inference_ms"] + out["post_ms"]
    out["total_serial_ms"] = total
    out["serial_images_per_s"] = 1000 / total
    out["decoded_size_mean"] = [float(np.mean([im.rgb.shape[1] for im in images])),
                                float(np.mean([im.rgb.shape[0] for im in images]))]
    return out


# ------------------------------------------------------------------------------------ driver


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import numpy
    import onnxruntime
    import PIL
    import torch

    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "loadavg_start": os.getloadavg()}


def run_config(list_file: Path, backend: str, batch_size: int, threads: int, decode_threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--list", str(list_file), "--backend", backend,
           "--batch-size", str(batch_size), "--threads", str(threads), "--decode-threads", str(decode_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_tag: worker {backend}/{batch_size}/{threads} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict[str, Any]], repeats: int) -> str:
    torch_ips = {r["threads"]: r["median_images_per_s"] for r in rows if r["backend"] == "torch"}
    lines = [f"| backend | batch | threads | images/s (median of {repeats}) | runs | "
             "ms/img decode (in thread) · preprocess+infer · post | peak RSS MiB | onnx/torch |",
             "|---|---:|---:|---:|---|---|---:|---:|"]
    for r in rows:
        ratio = ""
        if r["backend"] == "onnx" and r["batch_size"] == 16 and r["threads"] in torch_ips:
            ratio = f"{r['median_images_per_s'] / torch_ips[r['threads']]:.2f}×"
        t = r["mean_timing_ms"]
        lines.append(
            f"| {r['backend']} | {r['batch_size']} | {r['threads']} | **{r['median_images_per_s']:.1f}** "
            f"| {' / '.join(f'{x:.1f}' for x in r['images_per_s'])} "
            f"| {t['decode']:.1f} · {t['infer']:.1f} · {t['post']:.1f} | {r['peak_rss_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of JPEGs (default: clothing set)")
    p.add_argument("--limit", type=int, default=200, help="use the first N files (sorted by name)")
    p.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="generate N 352×470 JPEGs in a temp dir instead of reading --images")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--decode-threads", type=int, default=2, help="tag_paths decode threads (CLI default: 2)")
    p.add_argument("--only", default=None, help="comma-separated backend/batch/threads, e.g. onnx/16/2,torch/16/2")
    p.add_argument("--profile", action="store_true", help="also profile the default configuration stage by stage")
    p.add_argument("--json", type=Path, default=None, help="write all measurements here")
    # internal: one configuration in a fresh process
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--list", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    configs = CONFIGS
    if args.only:
        wanted = {tuple(s.split("/")) for s in args.only.split(",")}
        configs = [c for c in CONFIGS if (c[0], str(c[1]), str(c[2])) in wanted]

    with tempfile.TemporaryDirectory(prefix="bench_tag_") as tmp:
        if args.synthetic:
            paths = synthetic_jpegs(args.synthetic, Path(tmp))
            source = f"{args.synthetic} synthetic 352×470 JPEGs"
        else:
            if not args.images.is_dir():
                raise SystemExit(f"bench_tag: {args.images} not found; pass --images DIR or --synthetic N")
            paths = image_list(args.images, args.limit)
            source = f"first {len(paths)} JPEGs of {os.path.relpath(args.images.resolve(), ROOT)}"
        list_file = Path(tmp) / "paths.txt"
        list_file.write_text("\n".join(str(p) for p in paths))
        info = machine()
        print(f"# {source}; {info['cores']} cores ({info['cpu']}); load average at start "
              f"{info['loadavg_start'][0]:.2f}", file=sys.stderr)

        runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {c: [] for c in configs}
        for r in range(args.repeats):
            for c in configs:
                res = run_config(list_file, *c, args.decode_threads)
                runs[c].append(res)
                print(f"  repeat {r + 1}: {c[0]:5s} batch {c[1]:2d} threads {c[2]}: "
                      f"{res['images_per_s']:.1f} img/s, peak RSS {res['peak_rss_mb']:.0f} MiB", file=sys.stderr)

        rows = []
        for (backend, bs, th), results in runs.items():
            rows.append({
                "backend": backend, "batch_size": bs, "threads": th, "decode_threads": args.decode_threads,
                "images_per_s": [x["images_per_s"] for x in results],
                "median_images_per_s": statistics.median(x["images_per_s"] for x in results),
                "peak_rss_mb": max(x["peak_rss_mb"] for x in results),
                "load_s": statistics.median(x["load_s"] for x in results),
                "loadavg_1min": [x["loadavg_1min"] for x in results],
                "mean_timing_ms": {k: statistics.median(x["mean_timing_ms"][k] for x in results)
                                   for k in ("decode", "infer", "post")},
            })
        prof = [profile(paths, threads=t) for t in (1, None)] if args.profile else None
        info["loadavg_end"] = os.getloadavg()

    print(markdown_table(rows, args.repeats))
    for pr in prof or []:
        print(f"\nserial profile, onnx, batch {pr['batch_size']}, {pr['threads']} inference thread(s), ms per image: "
              + " · ".join(f"{k.removesuffix('_ms')} {pr[k]:.2f}" for k in (
                  "decode_ms", "preprocess_ms", "inference_ms", "post_ms", "garment_pixels_ms", "colour_features_ms",
                  "colour_shares_ms", "total_serial_ms"))
              + f" → {pr['serial_images_per_s']:.1f} img/s one stage at a time")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"source": source, "machine": info, "repeats": args.repeats,
                                         "results": rows, "profile": prof}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
