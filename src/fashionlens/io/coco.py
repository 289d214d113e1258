"""COCO instance JSON ⇄ :class:`ImageRecord`, including Fashionpedia's attribute extension.

Reading (:func:`read_coco`)
    * ``bbox`` ``[x, y, w, h]`` → ``bbox_xyxy``; a missing ``bbox`` is computed from the mask.
    * ``segmentation`` polygons, uncompressed RLE (``counts`` list) and compressed RLE (``counts``
      str) → ``mask_rle`` (str counts); an empty/missing segmentation gives ``mask_rle=None``.
    * crowd annotations (``iscrowd: 1``) are skipped (and counted in the log) unless
      ``include_crowd=True``; ``iscrowd`` itself is not stored.
    * the category *name* is the source label, mapped through ``mapping`` with the rule of
      :mod:`fashionlens.io._mapping` (unmapped labels are kept with ``object_type=None``; a label
      the mapping does not list raises ValueError; ``mapping=None`` maps taxonomy names to
      themselves).
    * Fashionpedia: the top-level ``attributes`` list and per-annotation ``attribute_ids`` are
      stored as names in ``record.meta["source_attributes"]`` (one list per garment, same order as
      ``record.garments``). Textile-pattern names with an unambiguous taxonomy ``pattern`` value
      set ``garment.attributes["pattern"]`` when all of a garment's mapped pattern names agree. The
      name → pattern table is the mapping's ``patterns`` table when it has one, else that of the
      packaged ``fashionpedia`` mapping, else the conservative :data:`FASHIONPEDIA_PATTERNS`.
    * ``record.meta["coco_image_id"]`` keeps the image id; ``group`` is the image's
      ``fashionlens_group`` (written by :func:`write_coco`) or else its ``file_name``.

Writing (:func:`write_coco`)
    COCO ``categories`` are the taxonomy categories in taxonomy order (``id`` = index + 1,
    ``supercategory`` = object type), so files from different sources share one category set.
    A garment without exactly one taxonomy category (coarse "any footwear", object-type-only or
    unmapped), or with neither box nor mask, cannot be an annotation of that set: it is **skipped
    and counted** in the returned :class:`CocoWriteSummary` (and logged as a warning).
    Masks are written as compressed RLE with str ``counts``; a garment with a box only gets no
    ``segmentation`` key. Taxonomy attributes go to the extra key ``fashionlens_attributes``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pycocotools import mask as mask_utils

from fashionlens.io.atomic import atomic_write
from fashionlens.io._mapping import (
    LabelResolver,
    MappingArg,
    as_int,
    as_number,
    image_size,
    polygons_to_rle,
    rle_bbox_xyxy,
    rle_to_str,
)
from fashionlens.io.records import AttributeValue, ImageRecord
from fashionlens.taxonomy import (
    LabelMapping,
    available_mappings,
    load_mapping,
    load_taxonomy,
)

logger = logging.getLogger(__name__)

#: Fashionpedia "textile pattern" attribute names → taxonomy ``pattern`` values, only where the
#: meaning is unambiguous. Left out on purpose: abstract, argyle, herringbone (pattern),
#: houndstooth (pattern), peacock, plant, toile de jouy (no single taxonomy value).
FASHIONPEDIA_PATTERNS: dict[str, str] = {
    "plain (pattern)": "plain",
    "cartoon": "graphic",
    "letters, numbers": "graphic",
    "camouflage": "camouflage",
    "check": "checked",
    "dot": "polka-dots",
    "fair isle": "fair-isle",
    "floral": "floral",
    "geometric": "geometric",
    "paisley": "paisley",
    "stripe": "striped",
    "chevron": "zigzag",
    "leopard": "animal-print",
    "cheetah": "animal-print",
    "zebra": "animal-print",
    "giraffe": "animal-print",
    "snakeskin (pattern)": "animal-print",
}

ATTRIBUTES_KEY = "fashionlens_attributes"
GROUP_KEY = "fashionlens_group"


@dataclass(frozen=True)
class CocoWriteSummary:
    """What :func:`write_coco` wrote and what it had to leave out."""

    images: int
    annotations: int
    skipped_no_category: int
    skipped_no_geometry: int

    @property
    def skipped(self) -> int:
        return self.skipped_no_category + self.skipped_no_geometry


# --------------------------------------------------------------------------------- reading


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"COCO file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _list_of_dicts(raw: dict, key: str, path: Path, *, required: bool) -> list[dict]:
    if key not in raw:
        if required:
            raise ValueError(f"{path}: COCO file lacks the {key!r} list (has keys {sorted(raw)})")
        return []
    items = raw[key]
    if not isinstance(items, list):
        raise ValueError(f"{path}: {key!r} must be a list, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: {key}[{i}] must be an object, got {type(item).__name__}")
    return items


def _id_names(items: list[dict], key: str, path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, item in enumerate(items):
        where = f"{path}: {key}[{i}]"
        if "id" not in item or "name" not in item:
            raise ValueError(f"{where} needs 'id' and 'name', got keys {sorted(item)}")
        ident = as_int(item["id"], what="id", where=where)
        if not isinstance(item["name"], str):
            raise ValueError(f"{where}: name must be a string, got {type(item['name']).__name__}")
        if ident in out:
            raise ValueError(f"{where}: duplicate id {ident}")
        out[ident] = item["name"]
    return out


def segmentation_to_rle(seg: Any, height: int, width: int, *, where: str = "") -> dict[str, Any] | None:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) → str-counts RLE, or None if empty."""
    if seg is None or (isinstance(seg, list) and not seg):
        return None
    if isinstance(seg, list):
        return polygons_to_rle(seg, height, width, where=where)
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise ValueError(
            f"{where}: segmentation must be a list of polygons or an RLE {{'size': [h, w], 'counts': ...}}, "
            f"got {type(seg).__name__}"
        )
    size = seg["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"{where}: RLE size must be [height, width], got {size!r}")
    if [as_int(v, what="RLE size", where=where) for v in size] != [height, width]:
        raise ValueError(f"{where}: RLE size {size!r} differs from the image size [height, width] = [{height}, {width}]")
    counts = seg["counts"]
    if isinstance(counts, list):
        runs = [as_int(v, what="RLE count", where=where) for v in counts]
        if any(v < 0 for v in runs) or sum(runs) != height * width:
            raise ValueError(
                f"{where}: uncompressed RLE counts must be non-negative and sum to height*width = {height * width}, "
                f"got sum {sum(runs)}"
            )
        return rle_to_str(mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width))
    if isinstance(counts, (str, bytes)):
        return rle_to_str({"size": [height, width], "counts": counts})
    raise ValueError(f"{where}: RLE counts must be a list of ints or a string, got {type(counts).__name__}")


def _bbox_xywh(value: Any, *, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError(f"{where}: bbox must be [x, y, width, height], got {value!r}")
    x, y, w, h = (as_number(v, what="bbox value", where=where) for v in value)
    if w < 0 or h < 0:
        raise ValueError(f"{where}: bbox width and height must be >= 0, got {value!r}")
    return (x, y, x + w, y + h)


def _file_attributes(value: Any, *, where: str) -> dict[str, AttributeValue]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {ATTRIBUTES_KEY} must be an object {{group: value}}, got {type(value).__name__}")
    return {str(k): tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def pattern_table(mapping: LabelMapping | None) -> Mapping[str, Any]:
    """Source pattern name → taxonomy pattern (None = no equivalent): the mapping's ``patterns`` table,
    else the packaged ``fashionpedia`` mapping's, else :data:`FASHIONPEDIA_PATTERNS`."""
    if mapping is not None and "patterns" in mapping.tables:
        return mapping.table("patterns")
    if "fashionpedia" in available_mappings():
        fashionpedia = load_mapping("fashionpedia")
        if "patterns" in fashionpedia.tables:
            return fashionpedia.table("patterns")
    return FASHIONPEDIA_PATTERNS


def pattern_of(names: Iterable[str], table: Mapping[str, Any] = FASHIONPEDIA_PATTERNS) -> str | None:
    """The taxonomy pattern of a garment's source attribute names, or None when none or several apply."""
    values = {table[n] for n in names if table.get(n) is not None}
    return values.pop() if len(values) == 1 else None


def _image_record(img: dict, where: str, root: Path, source: str, has_attributes: bool,
                  records: Mapping[int, ImageRecord]) -> tuple[int, tuple[int, int], ImageRecord]:
    """``(id, (height, width), record)`` of one entry of ``images`` (no garments yet); raises ValueError
    naming ``where`` if it is malformed or its id is already in ``records``."""
    missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
    if missing:
        raise ValueError(f"{where} lacks {missing}; an image needs id, file_name, width, height")
    ident = as_int(img["id"], what="id", where=where)
    if ident in records:
        raise ValueError(f"{where}: duplicate image id {ident}")
    if not isinstance(img["file_name"], str) or not img["file_name"]:
        raise ValueError(f"{where}: file_name must be a non-empty string, got {img['file_name']!r}")
    width = as_int(img["width"], what="width", where=where)
    height = as_int(img["height"], what="height", where=where)
    if width <= 0 or height <= 0:
        raise ValueError(f"{where}: width and height must be positive, got {width}x{height}")
    group = img.get(GROUP_KEY, img["file_name"])
    meta: dict[str, Any] = {"coco_image_id": ident}
    if has_attributes:
        meta["source_attributes"] = []
    return ident, (height, width), ImageRecord(
        path=Path(os.path.normpath(root / img["file_name"])),
        source=source,
        group=str(group),
        width=width,
        height=height,
        meta=meta,
    )


def _annotation_bbox(ann: dict, mask: dict[str, Any] | None, where: str) -> tuple[float, float, float, float]:
    """An annotation's box (x0, y0, x1, y1): its ``bbox``, else its mask's bounds."""
    if ann.get("bbox") is not None:
        return _bbox_xywh(ann["bbox"], where=where)
    if mask is not None:
        return rle_bbox_xyxy(mask)
    raise ValueError(f"{where} has neither a bbox nor a segmentation")


def _source_attribute_names(ann: dict, attribute_names: Mapping[int, str], where: str) -> list[str]:
    """The names of an annotation's ``attribute_ids`` (each must be in the top-level ``attributes``)."""
    ids = ann.get("attribute_ids") or []
    if not isinstance(ids, list):
        raise ValueError(f"{where}: attribute_ids must be a list of ints, got {type(ids).__name__}")  # noqa: TRY004
    names = []
    for a in ids:
        a_id = as_int(a, what="attribute id", where=where)
        if a_id not in attribute_names:
            raise ValueError(f"{where}: attribute id {a_id} is not in the top-level 'attributes' list")
        names.append(attribute_names[a_id])
    return names


@dataclass
class _CocoLabels:
    """What :func:`read_coco` needs to turn annotations into garments."""

    categories: dict[int, str]
    has_attributes: bool
    attribute_names: dict[int, str]
    patterns: Mapping[str, Any]
    resolver: LabelResolver


def _add_annotation(ann: dict, where: str, records: Mapping[int, ImageRecord],
                    sizes: Mapping[int, tuple[int, int]], labels: _CocoLabels) -> None:
    """Append one (non-skipped) annotation to its image's garments; raises ValueError naming ``where``."""
    image_id = as_int(ann["image_id"], what="image_id", where=where)
    record = records.get(image_id)
    if record is None:
        raise ValueError(f"{where}: image_id {image_id} is not in 'images'")
    category_id = as_int(ann["category_id"], what="category_id", where=where)
    if category_id not in labels.categories:
        raise ValueError(f"{where}: category_id {category_id} is not in 'categories' "
                         f"(ids {sorted(labels.categories)})")
    height, width = sizes[image_id]
    mask = segmentation_to_rle(ann.get("segmentation"), height, width, where=where)
    bbox = _annotation_bbox(ann, mask, where)
    extra: dict[str, AttributeValue] = {}
    if labels.has_attributes:
        names = _source_attribute_names(ann, labels.attribute_names, where)
        record.meta["source_attributes"].append(names)
        pattern = pattern_of(names, labels.patterns)
        if pattern is not None:
            extra["pattern"] = pattern
    if ATTRIBUTES_KEY in ann:
        extra.update(_file_attributes(ann[ATTRIBUTES_KEY], where=where))
    record.garments.append(labels.resolver.garment(labels.categories[category_id], bbox_xyxy=bbox, mask_rle=mask,
                                                   extra_attributes=extra, where=where))


def read_coco(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    mapping: MappingArg = None,
    source: str = "coco",
    include_crowd: bool = False,
) -> list[ImageRecord]:
    """Read a COCO instances file into one :class:`ImageRecord` per entry of ``images``.

    ``image_dir`` is the folder ``file_name`` is relative to (default: the JSON file's folder).
    Images without annotations are returned with no garments. Malformed entries raise ValueError
    naming the file and the entry.
    """
    path = Path(json_path)
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a COCO file must be a JSON object, got {type(raw).__name__}")
    root = Path(image_dir) if image_dir is not None else path.parent
    resolver = LabelResolver(mapping)

    images = _list_of_dicts(raw, "images", path, required=True)
    annotations = _list_of_dicts(raw, "annotations", path, required=False)
    categories = _id_names(_list_of_dicts(raw, "categories", path, required=bool(annotations)), "categories", path)
    has_attributes = "attributes" in raw or any("attribute_ids" in a for a in annotations)
    attribute_names = _id_names(_list_of_dicts(raw, "attributes", path, required=False), "attributes", path)
    labels = _CocoLabels(categories, has_attributes, attribute_names, pattern_table(resolver.mapping), resolver)

    records: dict[int, ImageRecord] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(images):
        ident, size, record = _image_record(img, f"{path}: images[{i}]", root, source, has_attributes, records)
        sizes[ident], records[ident] = size, record

    n_crowd = 0
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        for key in ("image_id", "category_id"):
            if key not in ann:
                raise ValueError(f"{where} lacks {key!r}")
        if as_int(ann.get("iscrowd", 0), what="iscrowd", where=where) and not include_crowd:
            n_crowd += 1
            continue
        _add_annotation(ann, where, records, sizes, labels)

    if n_crowd:
        logger.info("%s: skipped %d crowd annotations (include_crowd=False)", path, n_crowd)
    resolver.log_summary(logger, str(path))
    return list(records.values())


# --------------------------------------------------------------------------------- writing


def _image_hw(record: ImageRecord, where: str) -> tuple[int, int]:
    if record.width is not None and record.height is not None:
        return int(record.height), int(record.width)
    for g in record.garments:
        if g.mask_rle is not None:
            h, w = g.mask_rle["size"]
            return int(h), int(w)
    width, height = image_size(record.path, where=where)
    return height, width


def _file_name(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path.absolute(), root.absolute())).as_posix()


def write_coco(
    records: Iterable[ImageRecord],
    json_path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
) -> CocoWriteSummary:
    """Write records as a COCO instances file whose categories are the taxonomy categories.

    ``file_name`` is each image path relative to ``image_root`` (default: the JSON file's folder),
    so ``read_coco(json_path, image_root)`` gives the same paths back. Garments without exactly one
    taxonomy category, or without box and mask, are skipped and counted (see the module docstring).
    """
    out = Path(json_path)
    root = Path(image_root) if image_root is not None else out.parent
    tax = load_taxonomy()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    no_category = no_geometry = 0
    for image_id, record in enumerate(records, start=1):
        where = f"record {image_id - 1} ({record.path})"
        height, width = _image_hw(record, where)
        images.append(
            {"id": image_id, "file_name": _file_name(record.path, root), "width": width, "height": height,
             GROUP_KEY: record.group}
        )
        for g in record.garments:
            if g.category is None:
                no_category += 1
                continue
            ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": image_id,
                                   "category_id": tax.category_index(g.category) + 1, "iscrowd": 0}
            if g.mask_rle is not None:
                if [int(v) for v in g.mask_rle["size"]] != [height, width]:
                    raise ValueError(
                        f"{where}: mask size {g.mask_rle['size']} differs from the image size [{height}, {width}]"
                    )
                rle = rle_to_str(g.mask_rle) if not isinstance(g.mask_rle["counts"], list) else rle_to_str(
                    mask_utils.frPyObjects(g.mask_rle, height, width))
                ann["segmentation"] = rle
                ann["area"] = float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))
                box = g.bbox_xyxy if g.bbox_xyxy is not None else rle_bbox_xyxy(rle)
            elif g.bbox_xyxy is not None:
                box = g.bbox_xyxy
            else:
                no_geometry += 1
                continue
            x0, y0, x1, y1 = box
            ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            ann.setdefault("area", (x1 - x0) * (y1 - y0))
            if g.attributes:
                ann[ATTRIBUTES_KEY] = {k: list(v) if isinstance(v, tuple) else v for k, v in g.attributes.items()}
            annotations.append(ann)

    categories = [
        {"id": i + 1, "name": c, "supercategory": tax.category_object_type[c]} for i, c in enumerate(tax.categories)
    ]
    doc = {
        "info": {"description": "written by fashionlens", "taxonomy_version": tax.version},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8"))
    summary = CocoWriteSummary(len(images), len(annotations), no_category, no_geometry)
    if summary.skipped:
        logger.warning(
            "%s: skipped %d garments without exactly one taxonomy category and %d without box or mask",
            out, no_category, no_geometry,
        )
    logger.info("%s: wrote %d images, %d annotations", out, summary.images, summary.annotations)
    return summary


# ------------------------------------------------------------------------------ records → COCO

#: the label space of :func:`records_to_coco`: the detector's object types or the taxonomy's categories
LabelSpace = Literal["object_type", "category"]


def records_to_coco(records: Sequence[ImageRecord], *, label_space: LabelSpace = "object_type") -> dict[str, Any]:
    """A COCO instances dict of ``records`` (image id = index + 1; label spaces in the module docstring)."""
    tax = load_taxonomy()
    if label_space == "object_type":
        names = list(tax.object_types)
        categories = [{"id": i + 1, "name": n, "supercategory": "garment"} for i, n in enumerate(names)]
    elif label_space == "category":
        names = list(tax.categories)
        categories = [{"id": i + 1, "name": n, "supercategory": tax.category_object_type[n]}
                      for i, n in enumerate(names)]
    else:
        raise ValueError(f"label_space must be 'object_type' or 'category', got {label_space!r}")
    images, annotations = [], []
    skipped = {"no_label": 0, "no_geometry": 0}
    for index, record in enumerate(records):
        image_id = index + 1
        if record.width is not None and record.height is not None:
            width, height = int(record.width), int(record.height)
        elif any(g.mask_rle is not None for g in record.garments):
            height, width = (int(v) for v in next(g.mask_rle for g in record.garments if g.mask_rle)["size"])
        else:
            width, height = image_size(record.path, where=str(record.path))
        images.append({"id": image_id, "file_name": str(record.path), "width": width, "height": height})
        for g in record.garments:
            label = g.object_type if label_space == "object_type" else g.category
            if label is None:
                skipped["no_label"] += 1
                continue
            ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": image_id,
                                   "category_id": names.index(label) + 1, "iscrowd": 0}
            if g.categories:  # extra key (pycocotools ignores it): the allowed taxonomy categories
                ann["fashionlens_categories"] = list(g.categories)
            if g.mask_rle is not None:
                rle = g.mask_rle
                if isinstance(rle["counts"], list):
                    rle = mask_utils.frPyObjects(rle, *(int(v) for v in rle["size"]))
                rle = rle_to_str(rle)
                if [int(v) for v in rle["size"]] != [height, width]:
                    raise ValueError(f"{record.path}: mask size {rle['size']} differs from the image size "
                                     f"[height, width] = [{height}, {width}]")
                ann["segmentation"] = rle
                ann["area"] = float(mask_utils.area(_bytes_rle(rle)))
                box = mask_utils.toBbox(_bytes_rle(rle)).tolist() if g.bbox_xyxy is None else None
            elif g.bbox_xyxy is None:
                skipped["no_geometry"] += 1
                continue
            else:
                box = None
            if box is None:
                x0, y0, x1, y1 = g.bbox_xyxy  # type: ignore[misc]
                box = [x0, y0, x1 - x0, y1 - y0]
            ann["bbox"] = [float(v) for v in box]
            ann.setdefault("area", float(box[2] * box[3]))
            annotations.append(ann)
    if any(skipped.values()):
        logger.info("ground truth: skipped %s garments", skipped)
    return {"info": {"label_space": label_space, "skipped": skipped}, "images": images,
            "annotations": annotations, "categories": categories}


def _bytes_rle(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
