"""``fashionlens data stats``: class counts, imbalance (IRLbl, MeanIR, SCUMBLE) and image sizes.

Each image's labels form one row of a label matrix (a CCP street photo has several garments, so
its categories are multi-label; a clothing photo has one). Coarse labels ("any footwear") count
under their object type only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.evaluate.imbalance import (
    image_size_summary,
    imbalance_ratio_per_label,
    label_matrix,
    mean_imbalance_ratio,
    scumble,
)
from fashionlens.io.datasets import read_dataset


def _label_block(rows: list[list[str]]) -> dict[str, Any]:
    labels = sorted({lb for r in rows for lb in r})
    if not labels:
        return {"counts": {}, "n_labelled": 0}
    mat, names = label_matrix(rows, labels)
    ir = imbalance_ratio_per_label(mat)
    counts = mat.sum(0)
    order = np.argsort(-counts)
    return {
        "n_labelled": int(mat.any(1).sum()),
        "counts": {names[i]: int(counts[i]) for i in order},
        "imbalance_ratio": {names[i]: round(float(ir[i]), 2) for i in order},
        "mean_ir": round(mean_imbalance_ratio(mat), 3),
        "scumble": round(scumble(mat), 4),
    }


def dataset_stats(name: str, root: str | Path) -> dict[str, Any]:
    records = read_dataset(name, root)
    if not records:
        raise ValueError(f"data set {name!r} under {root} has no records")
    cats = [sorted({g.category for g in r.garments if g.category}) for r in records]
    types = [sorted({g.object_type for g in r.garments if g.object_type}) for r in records]
    source = [sorted({g.source_label for g in r.garments if g.source_label}) for r in records]
    stats: dict[str, Any] = {
        "dataset": name, "images": len(records),
        "garments": sum(len(r.garments) for r in records),
        "groups": len({r.group for r in records}),
        "source_labels": _label_block(source),
        "categories": _label_block(cats),
        "object_types": _label_block(types),
    }
    for group in ("colours", "pattern", "material"):
        rows = []
        for r in records:
            vals: list[str] = []
            for g in r.garments:
                v = g.attributes.get(group)
                vals += list(v) if isinstance(v, tuple) else ([v] if v else [])
            rows.append(sorted(set(vals)))
        if any(rows):
            stats[group] = _label_block(rows)
    sizes = []
    for r in records:
        if r.width and r.height:
            sizes.append((r.width, r.height))
        else:
            with Image.open(r.path) as im:  # header only
                sizes.append(im.size)
    stats["image_sizes"] = image_size_summary(sizes)
    stats["groups_largest"] = dict(Counter(r.group for r in records).most_common(5))
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable text of :func:`dataset_stats`."""
    lines = [f"{stats['dataset']}: {stats['images']} images, {stats['garments']} garments, {stats['groups']} groups"]
    for block in ("source_labels", "categories", "object_types", "colours", "pattern", "material"):
        b = stats.get(block)
        if not b or not b.get("counts"):
            continue
        lines.append(f"\n{block} (labelled images: {b['n_labelled']}; MeanIR {b['mean_ir']}, SCUMBLE {b['scumble']})")
        for label, count in b["counts"].items():
            lines.append(f"  {label:<28} {count:>6}   IR {b['imbalance_ratio'][label]:>7}")
    s = stats["image_sizes"]
    lines.append(f"\nimage sizes: {s}")
    lines.append(f"largest groups: {stats['groups_largest']}")
    return "\n".join(lines)
