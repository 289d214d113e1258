"""``grade`` latency of a 3-photo second-hand item (front, back, care label) on this machine.

Items are built from RISE subset photos (``../shared/datasets/rise``): the front is a photo, the
back the same photo mirrored (the subset has one view per item), and the label a rendered care
label (brand, composition, washing line) photographed at phone size. Each item goes through
:meth:`fashionlens.grading.grade.ItemGrader.grade` with the shipped models — detector +
classifier, damage head, OCR, grading heads, default rules — after one warm-up item. Reported:
median and p90 seconds per item, and the median of each stage's own ``timing_ms``; the target is
≤ 1 s per item. Thread counts are measured side by side in one run (interleaved repeats).

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_grade.py                 # 12 items, 1 and 2 threads
    .venv/bin/python benchmarks/bench_grade.py --items 20 --json runs/bench_grade.json
    .venv/bin/python benchmarks/bench_grade.py --threads 1 --compare-verifier   # damage decoding's cost
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
RISE = ROOT / ".." / "shared" / "datasets" / "rise"


def _font(size: int) -> ImageFont.ImageFont:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size=size)


def care_label(path: Path, brand: str, composition: list[str], *, size: tuple[int, int] = (1200, 1600)) -> None:
    """A phone-sized photo of a white care label on a grey table."""
    img = Image.new("RGB", size, (120, 118, 112))
    d = ImageDraw.Draw(img)
    w, h = size
    d.rectangle([w * 0.2, h * 0.15, w * 0.8, h * 0.85], fill=(248, 246, 240))
    y = h * 0.2
    for text, pt in [(brand, 90), *[(c, 60) for c in composition], ("MADE IN PORTUGAL", 40), ("40°C  DO NOT BLEACH", 40)]:
        d.text((w * 0.26, y), text, fill=(20, 20, 20), font=_font(pt))
        y += pt * 1.6
    img.save(path, quality=90)


def make_items(root: Path, n: int) -> list[Path]:
    rows = [json.loads(line) for line in (RISE / "garments.jsonl").read_text().splitlines()][:n]
    labels = [("ZARA", ["80% WOOL", "20% POLYAMIDE"]), ("H&M", ["100% COTTON"]), ("LINDEX", ["70% ULL", "30% POLYAMID"])]
    items = []
    for i, r in enumerate(rows):
        d = root / r["id"]
        d.mkdir(parents=True)
        photo = Image.open(RISE / "images" / f"{r['id']}.jpg").convert("RGB")
        photo.save(d / "front.jpg", quality=92)
        photo.transpose(Image.FLIP_LEFT_RIGHT).save(d / "back.jpg", quality=92)
        brand, comp = labels[i % len(labels)]
        care_label(d / "label.jpg", brand, comp)
        items.append(d)
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--compare-verifier", action="store_true",
                    help="also time each thread count with the damage head's plain threshold decoding "
                    "instead of its region verifier (side by side, same items)")
    args = ap.parse_args()
    if not (RISE / "garments.jsonl").is_file():
        print(f"needs the RISE subset at {RISE}", file=sys.stderr)
        return 2
    import torch

    from fashionlens.grading.grade import ItemGrader, items_from_inputs

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        items = items_from_inputs(make_items(Path(tmp), args.items + 1))
        graders = {}
        for t in (int(v) for v in args.threads.split(",")):
            for plain in (False, True) if args.compare_verifier else (False,):
                key = f"{t}-threshold-decoding" if plain else str(t)
                torch.set_num_threads(t)
                grader = ItemGrader.default(threads=t)
                if plain and grader.damage is not None:
                    grader.damage.verifier = None  # the weights' plain threshold + minimum regions
                grader.grade(items[0])  # warm-up
                graders[key] = (t, grader)
                results[key] = {"seconds": [], "stages": {}}
        for item in items[1:]:  # interleaved: every setting on the same item before the next
            for key, (t, grader) in graders.items():
                torch.set_num_threads(t)
                t0 = time.perf_counter()
                rec, _ = grader.grade(item)
                results[key]["seconds"].append(time.perf_counter() - t0)
                for stage, ms in rec["timing_ms"].items():
                    results[key]["stages"].setdefault(stage, []).append(ms)
    summary = {}
    for t, r in results.items():
        s = sorted(r["seconds"])
        summary[t] = {"items": len(s), "median_s": round(statistics.median(s), 3),
                      "p90_s": round(s[min(len(s) - 1, int(0.9 * len(s)))], 3),
                      "stage_median_ms": {k: round(statistics.median(v), 1) for k, v in r["stages"].items()}}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
