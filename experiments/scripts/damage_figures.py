"""Pictures of the damage head at work (not committed: they contain data set photos).

* ``synthetic.png``: held-out RISE test photos with synthetic damage — photo | painted damage |
  predicted damage (colours: stain orange, hole red, pilling purple, fading blue);
* ``real_rise.png``: clean RISE test photos (no painted damage) with whatever the head finds;
* ``real_clothing.png``: clothing data set test photos (other backdrops, never seen in training).

Usage (from the project root)::

    .venv/bin/python experiments/scripts/damage_figures.py --out runs/damage_figures [--weights W] [--n 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fashionlens.grading.damage import DamageFinder
from fashionlens.grading.render_item import DAMAGE_COLOURS
from fashionlens.grading.synthetic_damage import plain_background_mask
from fashionlens.io.datasets import read_dataset
from fashionlens.io.splits import group_split
from fashionlens.train.damage import DamageTrainConfig, fixed_damage_set, load_garment_photos

COLOURS = [(0, 0, 0), *(DAMAGE_COLOURS[t] for t in ("stain", "hole", "pilling", "fading"))]


def _paint(rgb: np.ndarray, dmap: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    for k in range(1, 5):
        m = dmap == k
        out[m] = (0.35 * out[m] + 0.65 * np.array(COLOURS[k])).astype(np.uint8)
    return out


def _damage_map(finder: DamageFinder, rgb: np.ndarray, garment: np.ndarray | None) -> np.ndarray:
    dmap = np.zeros(rgb.shape[:2], np.uint8)
    for d in finder.find(rgb, garment):
        dmap[d.mask] = 1 + ("stain", "hole", "pilling", "fading").index(d.type)
    return dmap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/damage_figures")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    finder = DamageFinder(args.weights, threads=1)
    config = DamageTrainConfig(data_root=args.data_root)
    rise_test = [str(r.path) for r in group_split(read_dataset("rise", args.data_root), seed=0)["test"]]
    photos = load_garment_photos(rise_test[: args.n], height=config.height, width=config.width, progress=False)
    rows = []
    for photo, (img, truth, _) in zip(photos, fixed_damage_set(photos, seed=20_000 + config.seed)):
        rows.append(np.concatenate([img, _paint(img, truth), _paint(img, _damage_map(finder, img, photo.garment))], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(out / "synthetic.png")
    tiles = [_paint(p.rgb, _damage_map(finder, p.rgb, p.garment)) for p in photos]
    Image.fromarray(np.concatenate(tiles, 1)).save(out / "real_rise.png")
    clothing = [r.path for r in group_split(read_dataset("clothing", args.data_root), seed=0)["test"][: args.n]]
    tiles = []
    for path in clothing:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * 448 / rgb.shape[0]), 448), interpolation=cv2.INTER_AREA)
        tiles.append(_paint(rgb, _damage_map(finder, rgb, plain_background_mask(rgb))))
    Image.fromarray(np.concatenate(tiles, 1)).save(out / "real_clothing.png")
    print(f"wrote {out}/synthetic.png, real_rise.png, real_clothing.png")


if __name__ == "__main__":
    main()
