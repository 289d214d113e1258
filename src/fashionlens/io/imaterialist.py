"""Kaggle iMaterialist (Fashion) 2019 / 2020 ``train.csv`` → :class:`ImageRecord`.

Columns ``ImageId, EncodedPixels, Height, Width, ClassId`` (one row per garment). ``ClassId`` is
the category id, optionally followed by attribute ids (2019: ``"6"`` or ``"6_28_77"``); the 2020
file instead has a separate ``AttributesIds`` column (``"115,136,143"``), also understood.
``ImageId`` without a suffix gets ``.jpg``.

``EncodedPixels`` is Kaggle RLE: space-separated, 1-indexed ``start length`` pairs over the pixels
numbered top-to-bottom, then left-to-right (column-major) — see :func:`kaggle_rle_to_mask` and
:func:`mask_to_kaggle_rle`. It becomes ``mask_rle`` (converted run by run, without decoding the
mask when the pairs are sorted) and the box ``bbox_xyxy`` of the mask.

Category names come from ``label_descriptions`` (the competition's ``label_descriptions.json``,
path or loaded dict) or default to :data:`IMATERIALIST_CATEGORIES` (the 46 categories, ids 0..45,
shared by the 2019 and 2020 sets and Fashionpedia). Names are mapped (default mapping
``"imaterialist"``) with the rule of :mod:`fashionlens.io._mapping`: unmapped labels are kept with
``object_type=None``. ``record.meta["source_attribute_ids"]`` holds one list of attribute ids per
garment; with ``label_descriptions`` also ``record.meta["source_attributes"]`` (names), and
textile-pattern names set ``garment.attributes["pattern"]`` as in :mod:`fashionlens.io.coco`
(2020 / Fashionpedia attribute names). ``group`` is the image id without suffix.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from fashionlens.io._mapping import LabelResolver, MappingArg, rle_bbox_xyxy, rle_to_str
from fashionlens.io.coco import pattern_of, pattern_table
from fashionlens.io.records import AttributeValue, ImageRecord, encode_mask

logger = logging.getLogger(__name__)

#: The 46 iMaterialist-Fashion / Fashionpedia categories; list index = ``ClassId``.
IMATERIALIST_CATEGORIES: tuple[str, ...] = (
    "shirt, blouse",
    "top, t-shirt, sweatshirt",
    "sweater",
    "cardigan",
    "jacket",
    "vest",
    "pants",
    "shorts",
    "skirt",
    "coat",
    "dress",
    "jumpsuit",
    "cape",
    "glasses",
    "hat",
    "headband, head covering, hair accessory",
    "tie",
    "glove",
    "watch",
    "belt",
    "leg warmer",
    "tights, stockings",
    "sock",
    "shoe",
    "bag, wallet",
    "scarf",
    "umbrella",
    "hood",
    "collar",
    "lapel",
    "epaulette",
    "sleeve",
    "pocket",
    "neckline",
    "buckle",
    "zipper",
    "applique",
    "bead",
    "bow",
    "flower",
    "fringe",
    "ribbon",
    "rivet",
    "ruffle",
    "sequin",
    "tassel",
)

REQUIRED_COLUMNS = ("ImageId", "EncodedPixels", "Height", "Width", "ClassId")


# ------------------------------------------------------------------------------ Kaggle RLE


def _kaggle_pairs(rle: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based starts and lengths of a Kaggle RLE, validated against ``height × width``."""
    if not isinstance(rle, str):
        raise ValueError(f"Kaggle RLE must be a string of 'start length' pairs, got {type(rle).__name__}")
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    tokens = rle.split()
    if len(tokens) % 2:
        raise ValueError(f"Kaggle RLE must have an even number of values (start length pairs), got {len(tokens)}")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise ValueError(f"Kaggle RLE values must be integers, got {bad!r}") from None
    starts, lengths = values[0::2] - 1, values[1::2]
    if starts.size and (starts.min() < 0 or lengths.min() < 1):
        raise ValueError("Kaggle RLE starts must be >= 1 (1-indexed) and lengths >= 1")
    if starts.size and int((starts + lengths).max()) > height * width:
        raise ValueError(
            f"Kaggle RLE runs past the last pixel: a run ends at pixel {int((starts + lengths).max())} "
            f"of a {height}x{width} image ({height * width} pixels)"
        )
    return starts, lengths


def kaggle_rle_to_mask(rle: str, height: int, width: int) -> np.ndarray:
    """Decode Kaggle RLE (1-indexed ``start length`` pairs, column-major pixel order) to ``H×W`` bool.

    >>> kaggle_rle_to_mask("2 2", 3, 2).astype(int).tolist()
    [[0, 0], [1, 0], [1, 0]]
    """
    starts, lengths = _kaggle_pairs(rle, height, width)
    flat = np.zeros(height * width + 1, dtype=np.int32)
    np.add.at(flat, starts, 1)
    np.add.at(flat, starts + lengths, -1)
    covered = np.cumsum(flat[:-1]) > 0
    return covered.reshape(width, height).T.copy()


def mask_to_kaggle_rle(mask: np.ndarray) -> str:
    """Encode an ``H×W`` mask as Kaggle RLE (inverse of :func:`kaggle_rle_to_mask`); ``""`` when empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = np.concatenate([[0], mask.astype(bool).ravel(order="F").astype(np.int8), [0]])
    diff = np.diff(flat)
    starts = np.flatnonzero(diff == 1)
    ends = np.flatnonzero(diff == -1)
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts.tolist(), ends.tolist()))


def kaggle_rle_to_coco(rle: str, height: int, width: int) -> dict[str, Any]:
    """Kaggle RLE → COCO RLE with str counts; both are column-major, so sorted runs convert directly."""
    starts, lengths = _kaggle_pairs(rle, height, width)
    ends = starts + lengths
    if starts.size and not np.all(starts[1:] >= ends[:-1]):  # unsorted or overlapping: go through the mask
        return encode_mask(kaggle_rle_to_mask(rle, height, width))
    counts: list[int] = []
    pos = 0
    for s, n in zip(starts.tolist(), lengths.tolist()):
        gap = s - pos
        if gap == 0 and counts:
            counts[-1] += n  # touching runs: one run of ones
        else:
            counts.extend((gap, n))
        pos = s + n
    if pos < height * width:
        counts.append(height * width - pos)
    return rle_to_str(mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width))


# ------------------------------------------------------------------------------ reader


def _descriptions(label_descriptions: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[
    dict[int, str], dict[int, str] | None
]:
    if label_descriptions is None:
        return dict(enumerate(IMATERIALIST_CATEGORIES)), None
    if isinstance(label_descriptions, Mapping):
        raw: Any = label_descriptions
        where = "label_descriptions"
    else:
        where = str(label_descriptions)
        try:
            with open(label_descriptions, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"label_descriptions file {label_descriptions} not found") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("categories"), list):
        raise ValueError(f"{where}: expected an object with a 'categories' list of {{id, name}}")

    def table(key: str) -> dict[int, str]:
        out: dict[int, str] = {}
        for i, item in enumerate(raw.get(key) or []):
            if (not isinstance(item, Mapping) or isinstance(item.get("id"), bool) or not isinstance(item.get("id"), int)
                    or not isinstance(item.get("name"), str)):
                raise ValueError(f"{where}: {key}[{i}] must be {{'id': int, 'name': str}}, got {item!r}")
            out[item["id"]] = item["name"]
        return out

    return table("categories"), (table("attributes") if "attributes" in raw else None)


def _ints(text: str, sep: str, what: str, where: str) -> list[int]:
    parts = [p.strip() for p in text.split(sep)] if text.strip() else []
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{where}: {what} must be integers separated by {sep!r}, got {text!r}") from None


def _positive_int(text: str, what: str, where: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{where}: {what} must be a positive integer, got {value}")
    return value


@dataclass
class _Row:
    """One checked row of the competition CSV: a garment of image ``image_id``."""

    image_id: str
    height: int
    width: int
    cat_id: int
    attr_ids: list[int]
    mask: dict[str, Any]  # COCO RLE


def _read_row(row: dict[str, Any], where: str, n_columns: int, separate_attributes: bool,
              categories: Mapping[int, str], described: bool) -> _Row:
    """Check and decode one CSV row (``described``: the categories come from label_descriptions).

    Raises:
        ValueError: naming ``where`` (file:line) and what is wrong with the row.
    """
    if None in row or any(row[c] is None for c in REQUIRED_COLUMNS):
        raise ValueError(f"{where}: expected {n_columns} columns, got a row of a different length")
    image_id = row["ImageId"].strip()
    if not image_id:
        raise ValueError(f"{where}: empty ImageId")
    height = _positive_int(row["Height"], "Height", where)
    width = _positive_int(row["Width"], "Width", where)
    class_ids = _ints(row["ClassId"], "_", "ClassId", where)
    if not class_ids:
        raise ValueError(f"{where}: empty ClassId")
    cat_id, attr_ids = class_ids[0], class_ids[1:]
    if separate_attributes:
        attr_ids += _ints(row["AttributesIds"] or "", ",", "AttributesIds", where)
    if cat_id not in categories:
        known = "label_descriptions" if described else f"0..{len(categories) - 1}"
        raise ValueError(f"{where}: ClassId category {cat_id} is unknown; expected one of {known}")
    if not row["EncodedPixels"].strip():
        raise ValueError(f"{where}: empty EncodedPixels; every row needs a mask")
    try:
        mask = kaggle_rle_to_coco(row["EncodedPixels"], height, width)
    except ValueError as exc:
        raise ValueError(f"{where}: EncodedPixels: {exc}") from None
    return _Row(image_id, height, width, cat_id, attr_ids, mask)


def _record_of(records: dict[str, ImageRecord], r: _Row, where: str, idir: Path, source: str,
               with_attribute_names: bool) -> ImageRecord:
    """The record of the row's image (created on its first row); raises ValueError if its size changed."""
    record = records.get(r.image_id)
    if record is None:
        file_name = r.image_id if Path(r.image_id).suffix else f"{r.image_id}.jpg"
        meta: dict[str, Any] = {"source_attribute_ids": []}
        if with_attribute_names:
            meta["source_attributes"] = []
        record = ImageRecord(path=idir / file_name, source=source, group=Path(file_name).stem,
                             width=r.width, height=r.height, meta=meta)
        records[r.image_id] = record
    elif (record.height, record.width) != (r.height, r.width):
        raise ValueError(
            f"{where}: image {r.image_id} has size {r.height}x{r.width} here but {record.height}x{record.width} "
            "in an earlier row"
        )
    return record


def _row_attributes(record: ImageRecord, attr_ids: list[int], attribute_names: Mapping[int, str] | None,
                    patterns: Mapping[str, Any], where: str) -> dict[str, AttributeValue]:
    """Note the row's source attributes in ``record.meta``; its taxonomy pattern as extra attributes."""
    extra: dict[str, AttributeValue] = {}
    record.meta["source_attribute_ids"].append(attr_ids)
    if attribute_names is not None:
        unknown = [a for a in attr_ids if a not in attribute_names]
        if unknown:
            raise ValueError(f"{where}: attribute ids {unknown} are not in label_descriptions")
        names = [attribute_names[a] for a in attr_ids]
        record.meta["source_attributes"].append(names)
        pattern = pattern_of(names, patterns)
        if pattern is not None:
            extra["pattern"] = pattern
    return extra


def read_imaterialist(
    csv_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    mapping: MappingArg = "imaterialist",
    label_descriptions: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    source: str = "imaterialist",
) -> list[ImageRecord]:
    """Read the competition CSV; one record per ``ImageId`` in order of first appearance.

    Images are not opened (the CSV has their size); bad rows raise ValueError with the line number.
    """
    path, idir = Path(csv_path), Path(image_dir)
    categories, attribute_names = _descriptions(label_descriptions)
    resolver = LabelResolver(mapping)
    patterns = pattern_table(resolver.mapping)
    records: dict[str, ImageRecord] = {}
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise ValueError(f"iMaterialist CSV {path} not found") from None
    with f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(REQUIRED_COLUMNS)}, got {header}")
        separate_attributes = "AttributesIds" in header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            r = _read_row(row, where, len(header), separate_attributes, categories, label_descriptions is not None)
            record = _record_of(records, r, where, idir, source, attribute_names is not None)
            extra = _row_attributes(record, r.attr_ids, attribute_names, patterns, where)
            record.garments.append(
                resolver.garment(categories[r.cat_id], bbox_xyxy=rle_bbox_xyxy(r.mask), mask_rle=r.mask,
                                 extra_attributes=extra, where=where)
            )
    resolver.log_summary(logger, str(path))
    return list(records.values())
