"""DeepFashion2 per-image JSON annotations → :class:`ImageRecord`.

Layout: ``annos_dir/<id>.json`` describes ``image_dir/<id>.jpg``. A file holds ``source``
(``"user"``/``"shop"``), ``pair_id`` and items ``item1``, ``item2``, ... each with ``category_id``
(1..13), ``category_name``, ``bounding_box`` ``[x1, y1, x2, y2]``, ``segmentation`` (list of
polygons), ``landmarks`` (flat ``x, y, visibility`` triples), ``style``, ``occlusion``,
``zoom_in``, ``viewpoint`` and ``scale``.

* The item's ``category_name`` (checked against ``category_id``, see
  :data:`DEEPFASHION2_CATEGORIES`) is the source label, mapped (default mapping
  ``"deepfashion2"``) with the rule of :mod:`fashionlens.io._mapping`: unmapped labels are kept
  with ``object_type=None``.
* ``bounding_box`` → ``bbox_xyxy``; polygons → ``mask_rle`` (image size read from the image
  header, so the image must exist).
* ``group`` is ``"pair-<pair_id>"``: the user and shop photos of one product share it. Pair ids
  are only unique within a split (train/validation), so read splits separately.
* ``record.meta``: ``source_type`` (user/shop), ``pair_id`` and ``items``, one dict per garment
  (same order) with ``item`` (``"item1"``...), ``style``, ``occlusion``, ``zoom_in``,
  ``viewpoint``, ``scale`` and ``landmarks``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from fashionlens.io._mapping import (
    LabelResolver,
    MappingArg,
    as_int,
    as_number,
    image_size,
    polygons_to_rle,
)
from fashionlens.io.records import ImageRecord

logger = logging.getLogger(__name__)

#: DeepFashion2 ``category_id`` → ``category_name``.
DEEPFASHION2_CATEGORIES: dict[int, str] = {
    1: "short sleeve top",
    2: "long sleeve top",
    3: "short sleeve outwear",
    4: "long sleeve outwear",
    5: "vest",
    6: "sling",
    7: "shorts",
    8: "trousers",
    9: "skirt",
    10: "short sleeve dress",
    11: "long sleeve dress",
    12: "vest dress",
    13: "sling dress",
}

_ITEM_KEY = re.compile(r"^item(\d+)$")
_ITEM_INTS = ("style", "occlusion", "zoom_in", "viewpoint", "scale")


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object with source, pair_id, item1..., got {type(raw).__name__}")
    return raw


def _find_image(image_dir: Path, stem: str) -> Path:
    for suffix in (".jpg", ".jpeg", ".png", ".JPG"):
        candidate = image_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return image_dir / f"{stem}.jpg"


def read_deepfashion2(
    annos_dir: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    mapping: MappingArg = "deepfashion2",
    source: str = "deepfashion2",
) -> list[ImageRecord]:
    """Read every ``*.json`` in ``annos_dir`` (sorted); one record per image."""
    adir, idir = Path(annos_dir), Path(image_dir)
    for what, d in (("annos_dir", adir), ("image_dir", idir)):
        if not d.is_dir():
            raise ValueError(f"{what} {d} is not a directory")
    resolver = LabelResolver(mapping)
    files = sorted(adir.glob("*.json"))
    if not files:
        logger.warning("%s: no .json files", adir)
    records: list[ImageRecord] = []
    for path in files:
        raw = _load(path)
        where = str(path)
        missing = [k for k in ("source", "pair_id") if k not in raw]
        if missing:
            raise ValueError(f"{where}: lacks {missing}; a DeepFashion2 file has source, pair_id, item1, ...")
        pair_id = as_int(raw["pair_id"], what="pair_id", where=where)
        if not isinstance(raw["source"], str):
            raise ValueError(f"{where}: source must be 'user' or 'shop', got {raw['source']!r}")
        image_path = _find_image(idir, path.stem)
        width, height = image_size(image_path, where=where)
        items = sorted(
            ((int(m.group(1)), key) for key in raw if (m := _ITEM_KEY.match(key))), key=lambda t: t[0]
        )
        record = ImageRecord(
            path=image_path, source=source, group=f"pair-{pair_id}", width=width, height=height,
            meta={"source_type": raw["source"], "pair_id": pair_id, "items": []},
        )
        for _, key in items:
            item = raw[key]
            iwhere = f"{where}: {key}"
            if not isinstance(item, dict):
                raise ValueError(f"{iwhere} must be an object, got {type(item).__name__}")
            for k in ("category_id", "category_name", "bounding_box"):
                if k not in item:
                    raise ValueError(f"{iwhere} lacks {k!r}")
            cat_id = as_int(item["category_id"], what="category_id", where=iwhere)
            if cat_id not in DEEPFASHION2_CATEGORIES:
                raise ValueError(f"{iwhere}: category_id must be 1..13, got {cat_id}")
            name = item["category_name"]
            if name != DEEPFASHION2_CATEGORIES[cat_id]:
                raise ValueError(
                    f"{iwhere}: category_name {name!r} does not match category_id {cat_id} "
                    f"({DEEPFASHION2_CATEGORIES[cat_id]!r})"
                )
            box = item["bounding_box"]
            if not isinstance(box, list) or len(box) != 4:
                raise ValueError(f"{iwhere}: bounding_box must be [x1, y1, x2, y2], got {box!r}")
            x1, y1, x2, y2 = (as_number(v, what="bounding_box value", where=iwhere) for v in box)
            if x2 < x1 or y2 < y1:
                raise ValueError(f"{iwhere}: bounding_box needs x2 >= x1 and y2 >= y1, got {box!r}")
            seg = item.get("segmentation")
            mask = polygons_to_rle(seg, height, width, where=iwhere) if seg else None
            landmarks = item.get("landmarks") or []
            if not isinstance(landmarks, list) or len(landmarks) % 3:
                raise ValueError(f"{iwhere}: landmarks must be a flat list of x, y, visibility triples")
            info: dict[str, Any] = {"item": key, "landmarks": [as_number(v, what="landmark", where=iwhere)
                                                               for v in landmarks]}
            for k in _ITEM_INTS:
                info[k] = as_int(item[k], what=k, where=iwhere) if item.get(k) is not None else None
            record.garments.append(resolver.garment(name, bbox_xyxy=(x1, y1, x2, y2), mask_rle=mask, where=iwhere))
            record.meta["items"].append(info)
        records.append(record)
    resolver.log_summary(logger, str(adir))
    return records
