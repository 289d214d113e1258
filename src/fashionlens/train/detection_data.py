"""``ImageRecord`` s → torchvision detection samples (image tensor + target dict).

Each item is ``(image, target)``: ``image`` is a float ``(3, S, S)`` tensor in ``[0, 1]`` and
``target`` holds ``boxes`` (float32 ``(N, 4)``, ``xyxy`` in pixels of the resized image),
``labels`` (int64 ``(N,)``, taxonomy object-type index + 1, 0 is background — see
:func:`fashionlens.models.detector.detector_class_names`), ``masks`` (uint8 ``(N, S, S)``, only
with ``with_masks=True``), ``image_id`` (int64, the record's index in the list given) and
``iscrowd`` (int64 zeros). ``collate_detection`` keeps them as lists, as torchvision's detectors
expect.

Which garments and records are used (decided once, when the data set is built, without decoding
any image):

* a garment is **usable** when it has an ``object_type`` and a box or a mask (a box is derived
  from a mask when only the mask is there); garments without ``object_type`` (unmapped labels)
  are ignored and their pixels count as background;
* a record whose garments are all **without geometry** (clothing/RISE single-garment labels: the
  garment is somewhere in the photo, location unknown) is **skipped** — it is not a negative;
* a record with **no garments at all** is a negative (empty targets) and kept when
  ``keep_negatives=True`` (default), else skipped;
* a record that has garments with geometry but none usable (only unmapped labels) is kept as a
  negative under the same switch.

Skips are counted in :attr:`DetectionDataset.skipped` (reason → count) and logged. With
``with_masks=True`` a usable garment without a mask gets its box filled as its mask and is flagged
in ``target["mask_from_box"]`` (bool ``(N,)``).

Geometry: the image is resized to ``size × size`` (``keep_aspect=False``, the default, stretches;
``keep_aspect=True`` scales the longer side to ``size`` and pads right/bottom with zeros, or leaves the
other side as it is with ``pad=False``); boxes and masks follow. With ``hflip_prob > 0`` the image, boxes
and masks are flipped together (``x' = S - x``). ``augment`` (:class:`Augment`, online training) adds
random crops from the borders and brightness/contrast jitter (hue and saturation untouched, so garment
colours stay what they are). Transforms are albumentations; a box that the resize makes thinner than
``min_box_side`` px is dropped together with its mask, and with crops a garment with less than
``Augment.min_visibility`` of its box left in the crop is dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fashionlens.imageio import load_image
from fashionlens.io.records import GarmentAnnotation, ImageRecord, decode_mask
from fashionlens.taxonomy import load_taxonomy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augment:
    """Online augmentation of :class:`DetectionDataset` (the GPU recipe; scale jitter is the trainer's).

    ``crop``: up to this share of each side is cut away (``crop_prob`` of the time);
    ``brightness_contrast``: ± this brightness and contrast change (``0`` = off)."""

    crop: float = 0.15
    crop_prob: float = 0.5
    brightness_contrast: float = 0.2
    min_visibility: float = 0.3

    def __post_init__(self) -> None:
        for name in ("crop", "crop_prob", "brightness_contrast", "min_visibility"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= (0.45 if name == "crop" else 1.0):
                raise ValueError(f"augment.{name}: expected a number in [0, {0.45 if name == 'crop' else 1}], got {value!r}")


@dataclass(frozen=True)
class _Item:
    record_index: int
    garments: tuple[GarmentAnnotation, ...]


def _has_geometry(g: GarmentAnnotation) -> bool:
    return g.bbox_xyxy is not None or g.mask_rle is not None


def _box_of(g: GarmentAnnotation) -> tuple[float, float, float, float]:
    if g.bbox_xyxy is not None:
        return g.bbox_xyxy
    mask = decode_mask(g.mask_rle)  # type: ignore[arg-type]
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def select_detection_items(records: Sequence[ImageRecord], *, keep_negatives: bool = True
                           ) -> tuple[list[_Item], Counter[str]]:
    """Apply the record/garment rule of the module docstring; returns kept items and skip counts."""
    items: list[_Item] = []
    skipped: Counter[str] = Counter()
    for i, record in enumerate(records):
        with_geometry = [g for g in record.garments if _has_geometry(g)]
        if record.garments and not with_geometry:
            skipped["no_geometry"] += 1
            continue
        usable = tuple(g for g in with_geometry if g.object_type is not None)
        if not usable and not keep_negatives:
            skipped["negative"] += 1
            continue
        items.append(_Item(i, usable))
    return items, skipped


class DetectionDataset(Dataset):
    """Detection samples from records (rules and shapes in the module docstring)."""

    def __init__(self, records: Sequence[ImageRecord], *, size: int = 512, keep_aspect: bool = False,
                 hflip_prob: float = 0.0, with_masks: bool = True, keep_negatives: bool = True,
                 min_box_side: float = 1.0, max_pixels: int = 40_000_000, seed: int | None = None,
                 pad: bool = True, augment: Augment | None = None) -> None:
        if size < 16:
            raise ValueError(f"expected size >= 16, got {size}")
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"expected 0 <= hflip_prob <= 1, got {hflip_prob}")
        self.records = list(records)
        self.size = size
        self.with_masks = with_masks
        self.min_box_side = float(min_box_side)
        self.max_pixels = max_pixels
        self._tax = load_taxonomy()
        self.items, self.skipped = select_detection_items(self.records, keep_negatives=keep_negatives)
        if self.skipped:
            log.info("detection data: %d records kept, skipped %s", len(self.items), dict(self.skipped))
        geometry: list[A.BasicTransform] = []
        if augment is not None and augment.crop > 0 and augment.crop_prob > 0:
            c = augment.crop
            geometry.append(A.RandomCropFromBorders(crop_left=c, crop_right=c, crop_top=c, crop_bottom=c,
                                                    p=augment.crop_prob))
        geometry += (
            [A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR)]
            + ([A.PadIfNeeded(min_height=size, min_width=size, position="top_left",
                              border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)] if pad else [])
            if keep_aspect else [A.Resize(size, size, interpolation=cv2.INTER_LINEAR)]
        )
        if hflip_prob > 0:
            geometry.append(A.HorizontalFlip(p=hflip_prob))
        if augment is not None and augment.brightness_contrast > 0:
            bc = augment.brightness_contrast
            geometry.append(A.RandomBrightnessContrast(brightness_limit=bc, contrast_limit=bc, p=0.8))
        self.transform = A.Compose(
            geometry,
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["garment_index"], clip=True, min_area=0.0,
                                     min_visibility=augment.min_visibility if augment is not None else 0.0),
            seed=seed,
        )

    def _garment_geometry(self, item: _Item, h: int, w: int, *, with_masks: bool
                          ) -> tuple[list[tuple[float, float, float, float]], list[np.ndarray], list[bool]]:
        """Clipped boxes, masks (box-filled when a garment has none) and box-mask flags, full size."""
        record = self.records[item.record_index]
        boxes, masks, from_box = [], [], []
        for g in item.garments:
            x0, y0, x1, y1 = _box_of(g)
            x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
            y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
            boxes.append((x0, y0, x1, y1))
            if not with_masks:
                continue
            if g.mask_rle is not None:
                mh, mw = (int(v) for v in g.mask_rle["size"])
                if (mh, mw) != (h, w):
                    raise ValueError(f"{record.path}: mask size [h, w] = [{mh}, {mw}] differs from the image [{h}, {w}]")
                masks.append(decode_mask(g.mask_rle).astype(np.uint8))
                from_box.append(False)
            else:
                m = np.zeros((h, w), np.uint8)
                m[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = 1
                masks.append(m)
                from_box.append(True)
        return boxes, masks, from_box

    def full_size_targets(self, item: _Item, h: int, w: int
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Untransformed targets of ``item`` for an ``h × w`` photo: ``boxes`` float32 ``(N, 4)``,
        ``labels`` int64, ``masks`` uint8 ``(N, h, w)``, ``mask_from_box`` bool; degenerate boxes dropped."""
        boxes, masks, from_box = self._garment_geometry(item, h, w, with_masks=True)
        keep = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x1 > x0 and y1 > y0]
        labels = [self._tax.object_type_index(item.garments[i].object_type) + 1 for i in keep]  # type: ignore[arg-type]
        return (torch.tensor([boxes[i] for i in keep], dtype=torch.float32).reshape(-1, 4),
                torch.tensor(labels, dtype=torch.int64),
                torch.from_numpy(np.stack([masks[i] for i in keep])) if keep else torch.zeros((0, h, w), dtype=torch.uint8),
                torch.tensor([from_box[i] for i in keep], dtype=torch.bool))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item = self.items[index]
        record = self.records[item.record_index]
        rgb = load_image(record.path, max_pixels=self.max_pixels).rgb
        h, w = rgb.shape[:2]
        if record.width is not None and record.height is not None and (record.width, record.height) != (w, h):
            raise ValueError(f"{record.path}: record says {record.width}x{record.height} (w x h), "
                             f"decoded image is {w}x{h}")
        boxes, masks, from_box = self._garment_geometry(item, h, w, with_masks=self.with_masks)
        # albumentations drops degenerate boxes; track garments by index so masks stay in step
        valid = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x1 > x0 and y1 > y0]
        kwargs: dict[str, Any] = {"image": rgb, "bboxes": np.array([boxes[i] for i in valid], np.float32).reshape(-1, 4),
                                  "garment_index": valid}
        if self.with_masks:
            kwargs["masks"] = [masks[i] for i in valid] if valid else []
        out = self.transform(**kwargs)
        kept_boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        kept_index = [int(i) for i in out["garment_index"]]
        out_masks = {i: m for i, m in zip(valid, out.get("masks", []))} if self.with_masks else {}
        keep = [k for k, (x0, y0, x1, y1) in enumerate(kept_boxes)
                if x1 - x0 >= self.min_box_side and y1 - y0 >= self.min_box_side]
        kept_boxes = kept_boxes[keep]
        kept_index = [kept_index[k] for k in keep]
        image = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1).float().div_(255.0)
        s_h, s_w = image.shape[1:]
        target: dict[str, torch.Tensor] = {
            "boxes": torch.from_numpy(kept_boxes).reshape(-1, 4),
            "labels": torch.tensor([self._tax.object_type_index(item.garments[i].object_type) + 1  # type: ignore[arg-type]
                                    for i in kept_index], dtype=torch.int64),
            "image_id": torch.tensor(item.record_index, dtype=torch.int64),
            "iscrowd": torch.zeros(len(kept_index), dtype=torch.int64),
        }
        if self.with_masks:
            target["masks"] = (torch.from_numpy(np.stack([np.asarray(out_masks[i]) for i in kept_index])).to(torch.uint8)
                               if kept_index else torch.zeros((0, s_h, s_w), dtype=torch.uint8))
            target["mask_from_box"] = torch.tensor([from_box[i] for i in kept_index], dtype=torch.bool)
        return image, target


def collate_detection(batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]]
                      ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Keep images and targets as lists (torchvision detection input)."""
    return [b[0] for b in batch], [b[1] for b in batch]
