"""Tiles for labelling garment colours and pattern by eye on CCP development photos.

Builds the images for the eye-labelled street set (protocol: ``docs/street_labels.md``):

* photos: CCP **train + validation** only, from the project's own split
  (``group_split(read_ccp(...), seed=0)``, the 70/15/15 split of the detector and classifier);
  test photos are never read;
* garments: every CCP class that ``mappings/ccp.yaml`` maps to an object type is one garment per
  photo (all pixels of the class; footwear too, so a pair of shoes is one garment), if it covers at
  least 0.2 % of the photo (the project's CCP instance threshold); skin, hair, hosiery, jewellery
  and the other unmapped classes are never garments;
* a seeded random sample of ``--n`` garments is drawn from all of them, then (optional)
  ``--extra-val`` more from the validation photos' remaining garments, numbered after them, so
  the set has more garments on photos no model was trained on; the first ``--n`` ids, tiles and
  sheets do not depend on ``--extra-val``;
* each garment's tile is the photo cropped around its box (plus a margin), with every pixel
  outside the garment's mask blended ``--fade`` of the way toward light grey, scaled to
  ``--tile-height`` px; four tiles are put on one numbered contact sheet (2 × 2);
* ``manifest.csv`` lists ``garment_id, photo_id, ccp_class, object_type, x, y, w, h, split,
  area_frac`` (box in pixels of the original photo, ``xywh``);
* a seeded random ``--overlap`` garments of the first ``--n`` are the overlap for a second
  annotator: their ids go
  to ``--overlap-ids`` (in the repo) and their tiles onto separate sheets in
  ``OUT/overlap_sheets/``.

Everything with pixels is written under ``--out`` (default ``/tmp/street_tiles``), never into the
repository. Deterministic for a given seed and data set.

Usage: ``python experiments/scripts/street_label_tiles.py [--n 340] [--seed 0]``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fashionlens.io.ccp import read_ccp
from fashionlens.io.splits import group_split
from fashionlens.taxonomy import load_mapping

FADE_TO = np.array([215, 215, 215], np.float32)  # light grey: neither white nor a garment colour
MIN_AREA_FRAC = 0.002  # the project's CCP instance threshold (io/ccp.py)


@dataclass(frozen=True)
class Garment:
    """One labelled region: all pixels of one mapped CCP class in one photo."""

    photo_id: str
    ccp_class: str
    object_type: str
    value: int  # mask value of the class
    box: tuple[int, int, int, int]  # x, y, w, h in photo pixels
    split: str
    area_frac: float


def development_photo_ids(ccp_root: Path, seed: int = 0) -> dict[str, str]:
    """Photo id → split (``train``/``val``) of the project's CCP split; test photos left out."""
    splits = group_split(read_ccp(ccp_root), seed=seed)
    return {Path(r.path).stem: name for name in ("train", "val") for r in splits[name]}


def photo_garments(class_mask: np.ndarray, labels: list[str], photo_id: str, split: str) -> list[Garment]:
    """Every mapped CCP class of one photo covering at least ``MIN_AREA_FRAC`` of it."""
    mapping = load_mapping("ccp")
    h, w = class_mask.shape
    out = []
    for value in np.unique(class_mask):
        label = labels[int(value)]
        mapped = mapping.resolve(label)
        if not mapped.is_mapped or mapped.object_type is None:
            continue
        region = class_mask == value
        area = int(region.sum())
        if area < max(16, MIN_AREA_FRAC * h * w):
            continue
        ys, xs = np.nonzero(region)
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        out.append(Garment(photo_id, label, str(mapped.object_type), int(value), box, split, area / (h * w)))
    return out


def make_tile(rgb: np.ndarray, region: np.ndarray, box: tuple[int, int, int, int], *, fade: float,
              margin: float, height: int) -> np.ndarray:
    """The photo cropped around ``box`` (+ ``margin`` of its size each side), pixels outside
    ``region`` blended ``fade`` toward light grey, resized to ``height`` px tall."""
    x, y, w, h = box
    H, W = region.shape
    mx, my = round(margin * w) + 4, round(margin * h) + 4
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(W, x + w + mx), min(H, y + h + my)
    crop = rgb[y0:y1, x0:x1].astype(np.float32)
    keep = region[y0:y1, x0:x1][..., None]
    faded = np.where(keep, crop, (1 - fade) * crop + fade * FADE_TO)
    tile = np.clip(faded, 0, 255).astype(np.uint8)
    scale = height / tile.shape[0]
    new_w = max(1, round(tile.shape[1] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(tile, (new_w, height), interpolation=interp)


def contact_sheet(tiles: list[tuple[str, str, np.ndarray]], *, cell: int) -> np.ndarray:
    """Up to four ``(number text, caption, tile)`` in a 2 × 2 grid of ``cell`` px squares, each
    with its caption in a strip above."""
    strip = 26
    sheet = np.full((2 * (cell + strip) + 6, 2 * cell + 6, 3), 255, np.uint8)
    for k, (num, caption, tile) in enumerate(tiles):
        r, c = divmod(k, 2)
        oy, ox = r * (cell + strip + 6), c * (cell + 6)
        th, tw = tile.shape[:2]
        s = min(cell / th, cell / tw, 1.0)
        if s < 1.0:
            tile = cv2.resize(tile, (max(1, int(tw * s)), max(1, int(th * s))), interpolation=cv2.INTER_AREA)
            th, tw = tile.shape[:2]
        sheet[oy + strip:oy + strip + th, ox + (cell - tw) // 2:ox + (cell - tw) // 2 + tw] = tile
        cv2.putText(sheet, f"{num}  {caption}", (ox + 4, oy + 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2)
    return sheet


def write_sheets(ids: list[str], tiles_dir: Path, captions: dict[str, str], out_dir: Path, *, cell: int) -> None:
    """Contact sheets of four tiles (in ``ids`` order) as ``sheet_NNN.png`` plus ``sheets.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(0, len(ids), 4):
        chunk = ids[s:s + 4]
        tiles = [(f"#{s + k + 1}", captions[g], np.asarray(Image.open(tiles_dir / f"{g}.png"))) for k, g in enumerate(chunk)]
        name = f"sheet_{s // 4 + 1:03d}.png"
        Image.fromarray(contact_sheet(tiles, cell=cell)).save(out_dir / name)
        rows += [(name, f"#{s + k + 1}", g) for k, g in enumerate(chunk)]
    with open(out_dir / "sheets.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["sheet", "number", "garment_id"])
        wr.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ccp", type=Path, default=Path(__file__).resolve().parents[3] / "shared/datasets/ccp")
    ap.add_argument("--out", type=Path, default=Path("/tmp/street_tiles"))
    ap.add_argument("--overlap-ids", type=Path,
                    default=Path(__file__).resolve().parents[2] / "data/street_labels/overlap_ids.txt")
    ap.add_argument("--n", type=int, default=340)
    ap.add_argument("--extra-val", type=int, default=0,
                    help="further garments drawn from validation photos only, numbered after the first --n")
    ap.add_argument("--overlap", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fade", type=float, default=0.75)
    ap.add_argument("--margin", type=float, default=0.15)
    ap.add_argument("--tile-height", type=int, default=320)
    args = ap.parse_args()

    if args.out.resolve().is_relative_to(Path(__file__).resolve().parents[2]):
        raise ValueError(f"--out {args.out} is inside the repository; tiles hold pixels and must stay outside it")
    labels = [str(x) for x in json.loads((args.ccp / "labels.json").read_text("utf-8"))]
    dev = development_photo_ids(args.ccp)
    all_garments: list[Garment] = []
    for photo_id in sorted(dev):
        mask = np.asarray(Image.open(args.ccp / "masks" / f"{photo_id}.png"))
        all_garments += photo_garments(mask, labels, photo_id, dev[photo_id])
    rng = random.Random(f"street-labels/{args.seed}")
    chosen = rng.sample(all_garments, min(args.n, len(all_garments)))
    chosen.sort(key=lambda g: (g.photo_id, g.value))
    order = list(range(len(chosen)))
    rng.shuffle(order)  # label in random order: neighbouring tiles do not share a photo
    chosen = [chosen[i] for i in order]
    n_main = len(chosen)
    if args.extra_val > 0:
        taken = set(chosen)
        pool = [g for g in all_garments if g.split == "val" and g not in taken]
        extra = random.Random(f"street-labels-extra-val/{args.seed}").sample(pool, min(args.extra_val, len(pool)))
        chosen += extra  # random order already

    tiles_dir = args.out / "tiles"
    tiles_dir.mkdir(parents=True, exist_ok=True)
    ids, captions = [], {}
    with open(args.out / "manifest.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["garment_id", "photo_id", "ccp_class", "object_type", "x", "y", "w", "h", "split", "area_frac"])
        for i, g in enumerate(chosen, 1):
            gid = f"s{i:04d}"
            rgb = np.asarray(Image.open(args.ccp / "photos" / f"{g.photo_id}.jpg").convert("RGB"))
            mask = np.asarray(Image.open(args.ccp / "masks" / f"{g.photo_id}.png"))
            if mask.shape != rgb.shape[:2]:
                raise ValueError(f"photo {g.photo_id}: mask {mask.shape} differs from photo {rgb.shape[:2]}")
            tile = make_tile(rgb, mask == g.value, g.box, fade=args.fade, margin=args.margin, height=args.tile_height)
            Image.fromarray(tile).save(tiles_dir / f"{gid}.png")
            wr.writerow([gid, g.photo_id, g.ccp_class, g.object_type, *g.box, g.split, f"{g.area_frac:.4f}"])
            ids.append(gid)
            captions[gid] = f"{gid} {g.ccp_class}"
    write_sheets(ids, tiles_dir, captions, args.out / "sheets", cell=args.tile_height)

    main_ids = ids[:n_main]
    overlap = sorted(random.Random(f"street-labels-overlap/{args.seed}").sample(main_ids, min(args.overlap, n_main)))
    args.overlap_ids.parent.mkdir(parents=True, exist_ok=True)
    args.overlap_ids.write_text("\n".join(overlap) + "\n")
    write_sheets(overlap, tiles_dir, captions, args.out / "overlap_sheets", cell=args.tile_height)
    print(f"{len(all_garments)} development garments in {len(dev)} photos; {len(ids)} tiles, "
          f"{len(overlap)} overlap ids → {args.out}")


if __name__ == "__main__":
    main()
