"""The one in-memory record type every dataset reader produces.

Coordinates are named by format: ``bbox_xyxy`` is ``(x_min, y_min, x_max, y_max)`` in pixels of
the original image (x to the right, y down, max exclusive like COCO's ``x + w``). Masks are stored
as COCO RLE (``{"size": [h, w], "counts": str}``) so a data set's worth of masks fits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from fashionlens.taxonomy import load_taxonomy

AttributeValue = str | tuple[str, ...]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Encode an ``H×W`` boolean/0-1 mask as COCO RLE with a ``str`` ``counts``."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed ``str``/``bytes`` counts or uncompressed ``list`` counts) to ``H×W`` bool."""
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(counts, str):
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


@dataclass
class GarmentAnnotation:
    """One garment of an image as a data set labels it, already mapped to the taxonomy.

    ``categories`` is the set of allowed taxonomy categories: one for an exact label, several
    for a coarse label ("any footwear"), empty when only ``object_type`` (or nothing) is known.
    """

    categories: tuple[str, ...] = ()
    object_type: str | None = None
    bbox_xyxy: tuple[float, float, float, float] | None = None
    mask_rle: dict[str, Any] | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    source_label: str | None = None

    def __post_init__(self) -> None:
        tax = load_taxonomy()
        self.categories = tuple(self.categories)
        for c in self.categories:
            tax.category_index(c)
        if self.object_type is None and self.categories:
            types = {tax.object_type_of(c) for c in self.categories}
            if len(types) == 1:
                self.object_type = types.pop()
        if self.object_type is not None:
            tax.object_type_index(self.object_type)
        if self.bbox_xyxy is not None:
            x0, y0, x1, y1 = (float(v) for v in self.bbox_xyxy)
            if not (x1 >= x0 and y1 >= y0):
                raise ValueError(f"bbox_xyxy must have x_max >= x_min and y_max >= y_min, got {self.bbox_xyxy}")
            self.bbox_xyxy = (x0, y0, x1, y1)
        for group, value in self.attributes.items():
            spec = tax.attribute(group)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                spec.index(v)

    @property
    def category(self) -> str | None:
        """The exact category, or None for coarse/unknown labels."""
        return self.categories[0] if len(self.categories) == 1 else None

    def mask(self) -> np.ndarray | None:
        return None if self.mask_rle is None else decode_mask(self.mask_rle)


@dataclass
class ImageRecord:
    """One image and its garments. ``group`` keys group-aware splits (sender, item, photo)."""

    path: Path
    source: str
    group: str
    garments: list[GarmentAnnotation] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
