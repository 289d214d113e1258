"""Turn one source label (plus its box/mask) into a :class:`GarmentAnnotation`.

Shared by every reader in :mod:`fashionlens.io` so that all of them apply **one rule**:

* **With a mapping** (a :class:`LabelMapping` or the name of a packaged one): a label the mapping
  lists is resolved to its categories / object type / attributes. A label the mapping lists as
  ``unmapped`` (skin, background, sleeve, jewellery, ...) is **kept**: the garment is returned with
  ``categories=()``, ``object_type=None`` and ``source_label`` set, so no box or mask is silently
  lost; consumers drop them with ``g.object_type is None``. A label the mapping does not list at
  all raises :class:`ValueError` (the mapping is incomplete or is the wrong one for the file).
* **Without a mapping** (``mapping=None``): a label that is a taxonomy category name maps to that
  category, a label that is an object type name maps to that object type (this is how files
  written by :func:`fashionlens.io.coco.write_coco` read back), anything else is kept unmapped as
  above.

Every reader logs (INFO) how many garments it kept unmapped and under which labels.

The module also holds the small geometry/file helpers the readers share (polygons → RLE, image
size without decoding pixels, number checks) so each reader stays a thin format parser.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from fashionlens.io.records import AttributeValue, GarmentAnnotation, encode_mask
from fashionlens.taxonomy import (
    LabelMapping,
    MappedLabel,
    TaxonomyError,
    load_mapping,
    load_taxonomy,
)

MappingArg = LabelMapping | str | None


def resolve_mapping(mapping: MappingArg) -> LabelMapping | None:
    """Accept a :class:`LabelMapping`, the name of a packaged mapping, or ``None``."""
    if mapping is None or isinstance(mapping, LabelMapping):
        return mapping
    if isinstance(mapping, str):
        return load_mapping(mapping)
    raise ValueError(
        f"mapping must be a LabelMapping, the name of a packaged mapping or None, got {type(mapping).__name__}"
    )


def _identity(label: str) -> MappedLabel:
    tax = load_taxonomy()
    if label in tax.categories:
        return MappedLabel(source_label=label, categories=(label,), object_type=tax.object_type_of(label))
    if label in tax.object_types:
        return MappedLabel(source_label=label, object_type=label)
    return MappedLabel(source_label=label, unmapped="not a taxonomy category or object type (no mapping given)")


class LabelResolver:
    """Resolve source labels through an optional mapping and build garments; counts unmapped ones."""

    def __init__(self, mapping: MappingArg) -> None:
        self.mapping = resolve_mapping(mapping)
        self._cache: dict[str, MappedLabel] = {}
        self.unmapped: Counter[str] = Counter()
        self.mapped = 0

    def resolve(self, label: str, *, where: str = "") -> MappedLabel:
        """The :class:`MappedLabel` of ``label``; ``where`` (file, line) prefixes the error message."""
        if not isinstance(label, str):
            raise ValueError(f"{where}: label must be a string, got {type(label).__name__} {label!r}")
        hit = self._cache.get(label)
        if hit is None:
            if self.mapping is None:
                hit = _identity(label)
            else:
                try:
                    hit = self.mapping.resolve(label)
                except TaxonomyError as exc:
                    raise ValueError(f"{where}: {exc}" if where else str(exc)) from None
            self._cache[label] = hit
        return hit

    def garment(
        self,
        label: str,
        *,
        bbox_xyxy: tuple[float, float, float, float] | None = None,
        mask_rle: dict[str, Any] | None = None,
        extra_attributes: Mapping[str, AttributeValue] | None = None,
        where: str = "",
    ) -> GarmentAnnotation:
        """A garment for ``label``. ``extra_attributes`` (taxonomy attributes read from the source file,
        e.g. a pattern) fill the attribute groups the mapping leaves unset, unmapped labels included."""
        mapped = self.resolve(label, where=where)
        if mapped.unmapped is not None:
            self.unmapped[label] += 1
        else:
            self.mapped += 1
        attributes: dict[str, AttributeValue] = dict(mapped.attributes)
        for group, value in (extra_attributes or {}).items():
            attributes.setdefault(group, value)
        try:
            return GarmentAnnotation(
                categories=mapped.categories,
                object_type=mapped.object_type,
                bbox_xyxy=bbox_xyxy,
                mask_rle=mask_rle,
                attributes=attributes,
                source_label=label,
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}" if where else str(exc)) from None

    def log_summary(self, logger: logging.Logger, what: str) -> None:
        """Log how many garments were mapped and which labels were kept unmapped."""
        n_unmapped = sum(self.unmapped.values())
        if n_unmapped:
            top = ", ".join(f"{k!r}×{v}" for k, v in self.unmapped.most_common(10))
            more = "" if len(self.unmapped) <= 10 else f" and {len(self.unmapped) - 10} more labels"
            logger.info(
                "%s: %d garments mapped, %d kept unmapped (object_type=None): %s%s",
                what, self.mapped, n_unmapped, top, more,
            )
        else:
            logger.info("%s: %d garments mapped, none unmapped", what, self.mapped)


# --------------------------------------------------------------------------- shared helpers


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def as_number(value: Any, *, what: str, where: str = "") -> float:
    """``value`` as a finite float; bools and non-numbers raise ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_at(where)}{what} must be a number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{_at(where)}{what} must be finite, got {value!r}")
    return out


def as_int(value: Any, *, what: str, where: str = "") -> int:
    """``value`` as an int (an integral float such as ``3.0`` is accepted)."""
    if isinstance(value, bool):
        raise ValueError(f"{_at(where)}{what} must be an integer, got bool {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{_at(where)}{what} must be an integer, got {type(value).__name__} {value!r}")


def image_size(path: Path, *, where: str = "") -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header (pixels are not decoded)."""
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        raise ValueError(f"{_at(where)}image file {path} not found (needed for its size)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{_at(where)}cannot read the size of image {path}: {exc}") from None


def rle_to_str(rle: dict[str, Any]) -> dict[str, Any]:
    """A pycocotools RLE (``bytes`` counts) as the records' form ``{"size": [h, w], "counts": str}``."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def rle_bbox_xyxy(rle: dict[str, Any]) -> tuple[float, float, float, float]:
    """Tight ``(x0, y0, x1, y1)`` box of a str- or bytes-counts RLE (all zeros for an empty mask)."""
    counts = rle["counts"]
    raw = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    x, y, w, h = (float(v) for v in mask_utils.toBbox(raw))
    return (x, y, x + w, y + h)


def polygons_to_rle(polygons: Any, height: int, width: int, *, where: str = "") -> dict[str, Any]:
    """COCO-style polygons (a list of flat ``[x1, y1, x2, y2, ...]`` lists, pixel coordinates) → RLE.

    Polygons with fewer than 3 points cover no area and are ignored (pycocotools would read a
    4-number list as a box); an odd number of coordinates or a non-number raises ValueError.
    """
    if not isinstance(polygons, list):
        raise ValueError(f"{_at(where)}polygons must be a list of coordinate lists, got {type(polygons).__name__}")
    kept: list[list[float]] = []
    for i, poly in enumerate(polygons):
        if not isinstance(poly, (list, tuple)):
            raise ValueError(
                f"{_at(where)}polygon {i} must be a list of numbers [x1, y1, x2, y2, ...], got {type(poly).__name__}"
            )
        if len(poly) % 2:
            raise ValueError(f"{_at(where)}polygon {i} has an odd number of coordinates ({len(poly)}); expected x,y pairs")
        coords = [as_number(v, what=f"polygon {i} coordinate", where=where) for v in poly]
        if len(coords) >= 6:
            kept.append(coords)
    if not kept:
        return encode_mask(np.zeros((height, width), dtype=bool))
    return rle_to_str(mask_utils.merge(mask_utils.frPyObjects(kept, height, width)))
