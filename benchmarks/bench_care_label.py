"""Care-label OCR speed (and a sanity check of what it reads) on phone-sized label photos.

No label photo data set ships with the project, so the photos are generated: a light care label
(brand, composition in two or three languages, origin, size, washing text — 8 to 12 lines) pasted,
slightly rotated, on a noisy fabric-coloured background, at the sizes a phone sends
(1024 to 3000 px on the longer side, landscape and portrait; every third one upside down). Each configuration reads every
photo ``--repeats`` times after one warm-up read, interleaved with the other configurations; the
table gives the median wall time per photo (downscale + detection + recognition + parsing, model
load excluded), the median process CPU time (less sensitive to other processes on a shared
machine; with 1 thread it is the compute cost), the median of each OCR stage, and how many photos
gave the right main fibre and brand.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_care_label.py            # all configurations, 1 thread
    .venv/bin/python benchmarks/bench_care_label.py --quick    # default configuration only
    .venv/bin/python benchmarks/bench_care_label.py --json /tmp/bench_label.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fashionlens.grading.care_label import LabelReader

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

LABELS: list[tuple[str, str, list[str]]] = [  # brand, main fibre, composition lines
    ("ZARA", "wool", ["80% WOOL", "20% POLYAMIDE", "80% LANA", "20% POLIAMIDA"]),
    ("Lindex", "cotton", ["95% Bomull", "5% Elastan", "95% Cotton", "5% Elastane"]),
    ("KappAhl", "polyester", ["Ytter: 100% Polyester", "Foder: 100% Polyester"]),
    ("H&M", "viscose", ["70% Viscose 30% Nylon", "70% Viskose 30% Polyamid", "70% Viscose 30% Polyamide"]),
    ("GANT", "cotton", ["100% COTTON", "100% BAUMWOLLE", "100% COTON"]),
    ("Gina Tricot", "acrylic", ["60% Acrylic", "40% Polyester", "60% Akryl", "40% Polyester"]),
    ("Filippa K", "wool", ["Shell: 90% Wool 10% Cashmere", "Lining: 100% Cupro"]),
    ("Dressmann", "cotton", ["65% Cotton 35% Polyester", "65% Bomull 35% Polyester"]),
    ("Vero Moda", "polyester", ["100% Polyester", "100% Polyester", "100% Polyester"]),
    ("Tommy Hilfiger", "linen", ["55% Linen 45% Cotton", "55% Lin 45% Coton"]),
]
TAIL = ["MADE IN BANGLADESH", "EUR M", "MACHINE WASH 40", "DO NOT TUMBLE DRY", "ART. 0532 123 800"]
SIZES = [(1024, 768), (768, 1024), (1600, 1200), (1200, 1600), (2000, 1500), (1500, 2000), (2400, 1800),
         (1800, 2400), (3000, 2250), (2250, 3000)]


def label_photo(i: int, size: tuple[int, int]) -> np.ndarray:
    """Photo ``i``: label ``LABELS[i]`` on a noisy background, about half the photo's shorter side wide."""
    brand, _, comp = LABELS[i % len(LABELS)]
    rng = np.random.default_rng(i)
    w, h = size
    lw = int(min(w, h) * 0.55)
    lines = [(brand, 0.11, True)] + [(t, 0.055, False) for t in comp] + [(t, 0.045, False) for t in TAIL]
    lh = int(sum(lw * s * 1.6 for _, s, _ in lines) + lw * 0.15)
    label = Image.new("RGB", (lw, lh), (247, 245, 240))
    d = ImageDraw.Draw(label)
    y = lw * 0.06
    for text, s, bold in lines:
        font = ImageFont.truetype(FONT_BOLD if bold else FONT, max(8, int(lw * s)))
        d.text(((lw - d.textlength(text, font=font)) / 2, y), text, font=font, fill=(30, 30, 35))
        y += lw * s * 1.6
    angle = float(rng.uniform(-4, 4))
    mask = Image.new("L", label.size, 255).rotate(angle, expand=True, resample=Image.BICUBIC)
    label = label.rotate(angle, expand=True, resample=Image.BICUBIC)
    base = rng.integers(60, 140, 3)
    bg = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    photo = Image.fromarray(bg)
    photo.paste(label, ((w - label.width) // 2, max(0, (h - label.height) // 2)), mask)
    rgb = np.asarray(photo)
    return np.ascontiguousarray(rgb[::-1, ::-1]) if i % 3 == 2 else rgb  # every third photo upside down


CONFIGS: dict[str, dict[str, Any]] = {
    "max_side=800 (default)": {},
    "max_side=640": {"max_side": 640},
    "max_side=960": {"max_side": 960},
    "max_side=1280": {"max_side": 1280},
    "max_side=2000 (RapidOCR's own limit)": {"max_side": 2000},
    "max_side=800, no angle classifier": {"use_angle_cls": False},
    "max_side=800, det_min_side=736 (RapidOCR default)": {"det_min_side": 736},
    "max_side=800, 2 threads": {"num_threads": 2},
}


def run(configs: dict[str, dict[str, Any]], photos: list[np.ndarray], repeats: int) -> list[dict[str, Any]]:
    """Every configuration on every photo, interleaved (photo by photo, repeat by repeat), so that
    changes in background load hit all configurations alike."""
    readers, first_read_s = {}, {}
    for name, kwargs in configs.items():
        readers[name] = LabelReader(**kwargs)
        t0 = time.perf_counter()
        readers[name].read(photos[0])  # model load + warm-up
        first_read_s[name] = time.perf_counter() - t0
    wall: dict[str, list[float]] = {n: [] for n in configs}
    cpu: dict[str, list[float]] = {n: [] for n in configs}
    stages = {n: {"resize": [], "det": [], "cls": [], "rec": []} for n in configs}
    fibre_ok = dict.fromkeys(configs, 0)
    brand_ok = dict.fromkeys(configs, 0)
    for r in range(repeats):
        for i, rgb in enumerate(photos):
            brand, fibre, _ = LABELS[i % len(LABELS)]
            for name, reader in readers.items():
                c0 = time.process_time()
                reading = reader.read(rgb)
                cpu[name].append((time.process_time() - c0) * 1000.0)
                wall[name].append(reading.timing_ms)
                for k, values in stages[name].items():
                    values.append(reading.stage_ms.get(k, 0.0))
                if r == 0:
                    fibre_ok[name] += bool(reading.composition and reading.composition.main_fibre == fibre)
                    brand_ok[name] += bool(reading.brand and reading.brand.lower() == brand.lower())
    rows = []
    for name in configs:
        row = {"config": name, "median_ms": statistics.median(wall[name]), "max_ms": max(wall[name]),
               "median_cpu_ms": statistics.median(cpu[name]),
               **{f"{k}_ms": statistics.median(v) for k, v in stages[name].items()},
               "main_fibre_ok": fibre_ok[name], "brand_ok": brand_ok[name], "photos": len(photos),
               "first_read_s": first_read_s[name]}
        print(f"{name:48s} {row['median_ms']:7.0f} {row['median_cpu_ms']:7.0f} {row['max_ms']:7.0f} "
              f"{row['det_ms']:6.0f} {row['rec_ms']:6.0f} {row['cls_ms']:5.0f} "
              f"{fibre_ok[name]:3d}/{len(photos)} {brand_ok[name]:3d}/{len(photos)}", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="only the default configuration")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    p.add_argument("--save-photos", type=Path, default=None, help="write the generated photos as JPEG here")
    args = p.parse_args()
    photos = [label_photo(i, s) for i, s in enumerate(SIZES)]
    if args.save_photos:
        args.save_photos.mkdir(parents=True, exist_ok=True)
        for i, rgb in enumerate(photos):
            Image.fromarray(rgb).save(args.save_photos / f"label_{i:02d}.jpg", quality=90)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load}; "
          f"{len(photos)} photos {SIZES[0]}…{SIZES[-1]}, repeats {args.repeats}")
    print(f"{'configuration':48s} {'median':>7s} {'cpu':>7s} {'max':>7s} {'det':>6s} {'rec':>6s} {'cls':>5s} "
          "fibre  brand  (ms; median wall and process-CPU time per photo, stages are wall medians)")
    configs = {k: v for k, v in CONFIGS.items() if not args.quick or "(default)" in k}
    rows = run(configs, photos, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
