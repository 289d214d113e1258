"""Reader for Clothing Co-Parsing (CCP, Apache-2.0): ``photos/NNNN.jpg`` + ``masks/NNNN.png``.

Masks are per *class* (pixel value = index into ``labels.json``), not per garment. Instances are
made with one stated rule:

* CCP photos show one person, so for every garment class except footwear all pixels of the class
  form **one** instance (a coat split in two by an arm or a bag strap is still one coat);
* footwear pixels are split into 8-connected components, one instance each (two shoes apart are
  two instances; touching shoes stay one instance, as the mask cannot separate them);
* components (and single-instance classes) smaller than ``min_area_frac`` of the photo are dropped.

Classes are mapped into the taxonomy through ``mappings/ccp.yaml``; unmapped classes (skin, hair,
underwear, small accessories) make no instances.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fashionlens.io.records import GarmentAnnotation, ImageRecord, encode_mask
from fashionlens.taxonomy import load_mapping

log = logging.getLogger(__name__)


def ccp_instances(class_mask: np.ndarray, labels: list[str], *, min_area_frac: float = 0.002
                  ) -> list[GarmentAnnotation]:
    """Garment instances of one ``H×W`` class-index mask (rule in the module docstring)."""
    mapping = load_mapping("ccp")
    h, w = class_mask.shape
    min_area = max(16, int(min_area_frac * h * w))
    garments: list[GarmentAnnotation] = []
    for value in np.unique(class_mask):
        if value >= len(labels):
            raise ValueError(f"mask value {value} is outside the {len(labels)} CCP labels")
        label = labels[int(value)]
        mapped = mapping.resolve(label)
        if not mapped.is_mapped:
            continue
        region = class_mask == value
        if mapped.object_type == "footwear":
            n, comp, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
            parts = [comp == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
        else:
            parts = [region] if region.sum() >= min_area else []
        for part in parts:
            ys, xs = np.nonzero(part)
            garments.append(GarmentAnnotation(
                categories=mapped.categories, object_type=mapped.object_type,
                bbox_xyxy=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                mask_rle=encode_mask(part), attributes=dict(mapped.attributes), source_label=label,
            ))
    return garments


def read_ccp(root: str | Path, *, min_area_frac: float = 0.002) -> list[ImageRecord]:
    """Read every photo that has a mask; each photo is its own group."""
    root = Path(root)
    labels_path = root / "labels.json"
    if not labels_path.is_file():
        raise FileNotFoundError(f"CCP data set: expected {labels_path}")
    labels = [str(x) for x in json.loads(labels_path.read_text("utf-8"))]
    records: list[ImageRecord] = []
    for mask_path in sorted((root / "masks").glob("*.png")):
        photo = root / "photos" / f"{mask_path.stem}.jpg"
        if not photo.is_file():
            log.warning("ccp: mask %s has no photo %s; left out", mask_path.name, photo.name)
            continue
        class_mask = np.asarray(Image.open(mask_path))
        if class_mask.ndim != 2:
            raise ValueError(f"{mask_path}: expected an 8-bit single-channel class mask, got shape {class_mask.shape}")
        h, w = class_mask.shape
        records.append(ImageRecord(
            path=photo, source="ccp", group=f"ccp/{mask_path.stem}", width=w, height=h,
            garments=ccp_instances(class_mask, labels, min_area_frac=min_area_frac),
        ))
    log.info("ccp: %d photos read", len(records))
    return records
