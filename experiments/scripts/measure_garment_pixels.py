"""How clean are the pixels a garment's colours are measured on — before and after the garment pixel filter.

Input: ``garment_pixel_data.py --split val`` output (CCP validation photos, the shipped detector's
masks, CCP's label of every pixel ``tag`` measures colours on). For the mask's pixels as they are
(before) and for those :class:`~fashionlens.models.pixel_filter.GarmentPixelFilter` keeps (after):
the share of the pixels that CCP labels skin, hair, background (``null``) or another garment class,
pooled over all pixels and averaged per garment, with the filter's time per garment.

With ``--results`` (the ``fashionlens tag`` JSON lines of the same photos, made without the filter),
also how the listed colours change: the colour names of each garment are kept (they come from the
classifier's colour head on street photos) and their shares are measured again, before on all
pixels (:func:`~fashionlens.colours.naming.colour_shares`, which must reproduce the saved shares)
and after on the kept pixels with :func:`~fashionlens.colours.naming.colour_labels` (colours under
the minimum share left out).

    .venv/bin/python experiments/scripts/measure_garment_pixels.py --data /tmp/gp_val.npz \\
        [--results /tmp/val_before.jsonl] [--weights src/fashionlens/weights/garment-pixel-filter.npz]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from fashionlens.colours.naming import MIN_SHARE, colour_labels, colour_shares
from fashionlens.models.pixel_filter import GarmentPixelFilter, default_filter_path

GROUPS = ("own", "other", "skin", "hair", "background")


def _fractions(groups: np.ndarray) -> np.ndarray:
    return np.bincount(groups, minlength=len(GROUPS)) / max(1, len(groups))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", default=str(default_filter_path()))
    ap.add_argument("--results", help="fashionlens tag JSON lines of the same photos (made without the filter)")
    ap.add_argument("--out", help="write the numbers as JSON here")
    ap.add_argument("--time-photos", type=int, default=0,
                    help="also time garment_pixels with and without the filter on the CCP garments of this many "
                         "validation photos (their CCP class regions as masks)")
    ap.add_argument("--root", default="../shared/datasets/ccp")
    args = ap.parse_args()
    d = np.load(args.data)
    meta = json.loads(str(d["meta"]))
    if meta["split"] != "val":
        raise SystemExit(f"{args.data}: expected the CCP validation split, got {meta['split']!r}")
    filt = GarmentPixelFilter.load(args.weights)
    feats, groups, garment, rgb = d["features"], d["groups"], d["garment"], d["rgb"]
    order = np.argsort(garment, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(garment, minlength=len(meta["garments"])))]
    keep = np.zeros(len(groups), bool)
    per_garment_before, per_garment_after, ms = [], [], []
    for g in range(len(meta["garments"])):
        idx = order[bounds[g]:bounds[g + 1]]
        t0 = time.perf_counter()
        k = filt.keep_features(feats[idx])
        ms.append((time.perf_counter() - t0) * 1000)
        keep[idx] = k
        per_garment_before.append(_fractions(groups[idx]))
        per_garment_after.append(_fractions(groups[idx][k]))
    out: dict = {"garments": len(meta["garments"]), "pixels": len(groups), "kept": round(float(keep.mean()), 4),
                 "pooled_before": dict(zip(GROUPS, np.round(_fractions(groups), 4).tolist())),
                 "pooled_after": dict(zip(GROUPS, np.round(_fractions(groups[keep]), 4).tolist())),
                 "per_garment_before": dict(zip(GROUPS, np.round(np.mean(per_garment_before, 0), 4).tolist())),
                 "per_garment_after": dict(zip(GROUPS, np.round(np.mean(per_garment_after, 0), 4).tolist())),
                 "own_pixels_kept": round(float(keep[groups == 0].mean()), 4),
                 "not_garment_removed": round(float(1 - keep[np.isin(groups, (2, 3, 4))].mean()), 4),
                 "mlp_ms_per_garment_median": round(float(np.median(ms)), 3)}
    for name in ("before", "after"):
        f = out[f"pooled_{name}"]
        out[f"pooled_{name}"]["skin+hair+background"] = round(f["skin"] + f["hair"] + f["background"], 4)
    if args.results:
        out["colours"] = _colour_changes(Path(args.results), meta, order, bounds, rgb, keep)
    if args.time_photos:
        out["timing"] = _timing(Path(args.root), sorted({m["photo"] for m in meta["garments"]})[: args.time_photos],
                                filt)
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n", "utf-8")


def _timing(root: Path, photos: list[str], filt: GarmentPixelFilter) -> dict:
    """Median ms per garment of ``garment_pixels`` on its box with the filter and without, interleaved."""
    from PIL import Image

    from fashionlens.colours.naming import garment_pixels
    from fashionlens.imageio import load_image
    from fashionlens.taxonomy import load_mapping

    labels = json.loads((root / "labels.json").read_text("utf-8"))
    mapping = load_mapping("ccp")
    with_ms, without_ms = [], []
    for photo in photos:
        rgb = load_image(root / "photos" / f"{photo}.jpg").rgb
        cls = np.asarray(Image.open(root / "masks" / f"{photo}.png"))
        for value in np.unique(cls):
            if not mapping.resolve(labels[value]).is_mapped:
                continue
            ys, xs = np.nonzero(cls == value)
            box = rgb[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            m = (cls == value)[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            for _ in range(3):
                t0 = time.perf_counter()
                garment_pixels(box, mask=m, pixel_filter=filt)
                t1 = time.perf_counter()
                garment_pixels(box, mask=m, pixel_filter=None)
                t2 = time.perf_counter()
                with_ms.append((t1 - t0) * 1000)
                without_ms.append((t2 - t1) * 1000)
    return {"garments_x3": len(with_ms), "with_filter_ms_median": round(float(np.median(with_ms)), 2),
            "without_filter_ms_median": round(float(np.median(without_ms)), 2),
            "with_filter_ms_p90": round(float(np.percentile(with_ms, 90)), 2)}


def _colour_changes(results: Path, meta: dict, order: np.ndarray, bounds: np.ndarray, rgb: np.ndarray,
                    keep: np.ndarray) -> dict:
    saved: dict[str, list] = {}
    for line in results.read_text("utf-8").splitlines():
        r = json.loads(line)
        saved[Path(r["image"]["path"]).stem] = r["garments"]
    by_photo: dict[str, list[int]] = defaultdict(list)
    for g, m in enumerate(meta["garments"]):
        by_photo[m["photo"]].append(g)
    n = reproduced = changed_list = changed_top = zero_before = zero_after = listed_before = listed_after = 0
    changed_by_min_share_alone = emptied = 0
    share_moves = []
    for photo, gs in by_photo.items():
        rec = saved.get(photo)
        if rec is None or len(rec) != len(gs):
            continue  # not the same detections
        for g, sg in zip(gs, rec):
            colours = sg["attributes"].get("colours") or []
            names = [c["id"] for c in colours]
            if not names:
                continue
            idx = order[bounds[g]:bounds[g + 1]]
            n += 1
            before = colour_shares(rgb[idx], names)
            saved_shares = {c["id"]: c["share"] for c in colours if c["share"] is not None}
            reproduced += all(abs(round(before[k], 4) - v) < 1e-4 for k, v in saved_shares.items())
            scores = {c["id"]: c["score"] for c in colours}
            after = colour_labels(rgb[idx][keep[idx]], names, scores)
            changed_by_min_share_alone += [c.id for c in colour_labels(rgb[idx], names, scores)] != names
            emptied += not after
            zero_before += sum(1 for v in saved_shares.values() if round(v, 2) == 0)
            zero_after += sum(1 for c in after if c.share is not None and round(c.share, 2) == 0)
            listed_before += len(names)
            listed_after += len(after)
            ids_after = [c.id for c in after]
            changed_list += ids_after != names
            top_before = max(saved_shares, key=saved_shares.get) if saved_shares else None
            shares_after = {c.id: c.share for c in after if c.share is not None}
            top_after = max(shares_after, key=shares_after.get) if shares_after else None
            changed_top += top_before != top_after
            share_moves += [abs(shares_after.get(k, 0.0) - v) for k, v in saved_shares.items()]
    return {"garments_compared": n, "saved_shares_reproduced": reproduced, "min_share": MIN_SHARE,
            "colours_listed_before": listed_before, "colours_listed_after": listed_after,
            "share_rounding_to_0.00_before": zero_before, "share_rounding_to_0.00_after": zero_after,
            "garments_whose_colour_list_changed": changed_list,
            "garments_whose_list_changes_by_min_share_alone": changed_by_min_share_alone,
            "garments_left_with_no_colour": emptied,
            "garments_whose_largest_share_colour_changed": changed_top,
            "median_abs_share_change": round(float(np.median(share_moves)), 4) if share_moves else None,
            "share_changes_over_0.10": int(sum(m > 0.10 for m in share_moves))}


if __name__ == "__main__":
    main()
