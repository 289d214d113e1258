"""YOLO txt labels (boxes and segmentation polygons) → :class:`ImageRecord`.

Layout: every image under ``images_dir`` (recursively; ``.jpg .jpeg .png .bmp .webp .tif .tiff``)
has its labels in ``labels_dir`` at the same relative path with a ``.txt`` suffix. An image without
a label file, or with an empty one, is a background image (no garments). Label files without an
image are ignored and counted in a warning.

Each row is either ``cls cx cy w h`` (box) or ``cls x1 y1 x2 y2 x3 y3 ...`` (polygon, at least 3
points), coordinates normalised to [0, 1] (values up to 1e-3 outside are clipped). Polygons give a
``mask_rle`` and the polygon's box. Image sizes are read from the file header with PIL (pixels are
not decoded). ``class_names[cls]`` is the source label, mapped with the rule of
:mod:`fashionlens.io._mapping` (unmapped labels kept with ``object_type=None``).

A bad row (wrong number of values, non-number, class out of range, coordinates out of [0, 1],
zero-size box) or an unreadable image raises ValueError naming the file and line, unless
``on_error="skip"``: then the row (or image) is left out, logged and counted.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from fashionlens.io._mapping import (
    LabelResolver,
    MappingArg,
    image_size,
    polygons_to_rle,
)
from fashionlens.io.records import GarmentAnnotation, ImageRecord

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_TOLERANCE = 1e-3
_MAX_LOGGED = 10


def _class_list(class_names: Sequence[str] | Mapping[int, str]) -> list[str]:
    if isinstance(class_names, Mapping):
        keys = sorted(class_names)
        if keys != list(range(len(keys))):
            raise ValueError(f"class_names as a mapping must have keys 0..n-1, got {keys}")
        names = [class_names[k] for k in keys]
    elif isinstance(class_names, (list, tuple)):
        names = list(class_names)
    else:
        raise ValueError(f"class_names must be a list of strings, got {type(class_names).__name__}")
    if not names:
        raise ValueError("class_names is empty; expected one name per YOLO class id")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"class_names must be non-empty strings, got {bad[:3]!r}")
    return names


def _coord(token: str, index: int) -> float:
    try:
        v = float(token)
    except ValueError:
        raise ValueError(f"value {index} {token!r} is not a number") from None
    if not math.isfinite(v) or v < -_TOLERANCE or v > 1 + _TOLERANCE:
        raise ValueError(f"value {index} {token!r} is not a normalised coordinate in [0, 1]")
    return min(max(v, 0.0), 1.0)


def _parse_row(
    line: str, names: list[str], width: int, height: int, resolver: LabelResolver, where: str
) -> GarmentAnnotation:
    tokens = line.split()
    try:
        cls = int(tokens[0])
    except ValueError:
        raise ValueError(f"class id {tokens[0]!r} is not an integer") from None
    if not 0 <= cls < len(names):
        raise ValueError(f"class id {cls} is out of range: class_names has {len(names)} names (0..{len(names) - 1})")
    n = len(tokens) - 1
    if n != 4 and (n < 6 or n % 2):
        raise ValueError(
            f"expected 'cls cx cy w h' (4 values) or 'cls x1 y1 x2 y2 x3 y3 ...' (an even number >= 6), got {n} values"
        )
    values = [_coord(t, i + 1) for i, t in enumerate(tokens[1:])]
    label = names[cls]
    if n == 4:
        cx, cy, w, h = values
        if w <= 0 or h <= 0:
            raise ValueError(f"box width and height must be > 0, got w={tokens[3]} h={tokens[4]}")
        x0, x1 = max(cx - w / 2, 0.0) * width, min(cx + w / 2, 1.0) * width
        y0, y1 = max(cy - h / 2, 0.0) * height, min(cy + h / 2, 1.0) * height
        return resolver.garment(label, bbox_xyxy=(x0, y0, x1, y1), where=where)
    xs = [v * width for v in values[0::2]]
    ys = [v * height for v in values[1::2]]
    poly = [c for xy in zip(xs, ys) for c in xy]
    mask = polygons_to_rle([poly], height, width, where=where)
    return resolver.garment(label, bbox_xyxy=(min(xs), min(ys), max(xs), max(ys)), mask_rle=mask, where=where)


def read_yolo(
    images_dir: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str],
    class_names: Sequence[str] | Mapping[int, str],
    *,
    mapping: MappingArg = None,
    source: str = "yolo",
    on_error: Literal["raise", "skip"] = "raise",
) -> list[ImageRecord]:
    """Read a YOLO detection/segmentation data set; one record per image, sorted by path.

    ``group`` is the image path relative to ``images_dir`` without its suffix.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    names = _class_list(class_names)
    img_root, lbl_root = Path(images_dir), Path(labels_dir)
    for what, d in (("images_dir", img_root), ("labels_dir", lbl_root)):
        if not d.is_dir():
            raise ValueError(f"{what} {d} is not a directory")
    resolver = LabelResolver(mapping)
    for name in names:  # a mapping that lacks a class is a configuration error, never a skippable row
        resolver.resolve(name, where="class_names")
    images = sorted(p for p in img_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    skipped = 0

    def bad(message: str) -> None:
        nonlocal skipped
        if on_error == "raise":
            raise ValueError(message)
        skipped += 1
        if skipped <= _MAX_LOGGED:
            logger.warning("skipped: %s", message)

    records: list[ImageRecord] = []
    used_labels: set[Path] = set()
    for img in images:
        rel = img.relative_to(img_root)
        label_file = lbl_root / rel.with_suffix(".txt")
        used_labels.add(label_file)
        try:
            width, height = image_size(img)
        except ValueError as exc:
            bad(str(exc))
            continue
        record = ImageRecord(
            path=img, source=source, group=rel.with_suffix("").as_posix(), width=width, height=height,
            meta={"label_file": str(label_file)},
        )
        if label_file.is_file():
            try:
                text = label_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{label_file}: cannot read label file: {exc}") from None
            for lineno, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                where = f"{label_file}:{lineno}"
                try:
                    record.garments.append(_parse_row(line, names, width, height, resolver, where))
                except ValueError as exc:
                    msg = str(exc)
                    bad(msg if msg.startswith(where) else f"{where}: {msg}")
        records.append(record)

    orphans = [p for p in lbl_root.rglob("*.txt") if p not in used_labels and p.name != "classes.txt"]
    if orphans:
        logger.warning("%s: %d label files have no image, e.g. %s", lbl_root, len(orphans), orphans[0])
    if skipped:
        logger.warning("%s: skipped %d bad rows/images (on_error='skip')", lbl_root, skipped)
    resolver.log_summary(logger, str(lbl_root))
    return records
