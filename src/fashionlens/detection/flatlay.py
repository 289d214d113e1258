"""Flat-lay auto-annotation: one box (and a filled-contour mask) around the garment of a product photo.

The source deliverable's method, for single-garment photos on a plain background (flat-lays,
hanging shots): grey → Gaussian blur → Canny edges → morphological close (an elliptical kernel
``close_frac`` of the shorter side, to join the garment's outline) → external contours. The
largest contour is the garment; other contours at least ``secondary_frac`` of its box area join it
(a pair of shoes, a garment cut in two by a fold). The mask is the union of the filled contours,
opened with an elliptical kernel ``open_frac`` of the shorter side to cut thin attachments (a
measuring tape or string touching the garment) when that keeps at least half of the mask and 40 % of the box area; the box
is the opened mask's bounding box (else the union of the contours' bounding boxes). Canny thresholds follow the blurred image's median
(``0.66·m``, ``1.33·m``, the usual automatic rule) unless ``canny`` is given.

No box is returned — with a reason, never silently — when there are no edges (``"no_edges"``: a
blank photo), or no contour is larger than ``min_area_frac`` of the photo (``"too_small"``).
A box covering nearly the whole photo (``> max_cover_frac``) is kept and flagged
``"covers_photo"`` (a textured background or a tight crop: the box is then the photo).

Work happens on a copy whose shorter side is at most ``work_side`` px (JPEGs decode at reduced
scale); boxes and masks are given in full-resolution pixels of the EXIF-oriented photo.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from fashionlens.imageio import ImageDecodeError, iter_image_paths, load_image
from fashionlens.io.records import GarmentAnnotation, ImageRecord, encode_mask

log = logging.getLogger(__name__)

Reason = Literal["no_edges", "too_small", "decode_error"]


@dataclass(frozen=True)
class FlatlayParams:
    """Settings of :func:`detect_flatlay` (defaults used for the data check in docs/detection.md)."""

    work_side: int = 384
    blur: int = 5
    canny: tuple[int, int] | None = None
    close_frac: float = 0.03
    open_frac: float = 0.04
    min_area_frac: float = 0.01
    secondary_frac: float = 0.25
    max_cover_frac: float = 0.97

    def __post_init__(self) -> None:
        if self.work_side < 32:
            raise ValueError(f"expected work_side >= 32, got {self.work_side}")
        if self.blur < 1 or self.blur % 2 == 0:
            raise ValueError(f"expected an odd blur kernel >= 1, got {self.blur}")
        for name in ("close_frac", "open_frac", "min_area_frac", "secondary_frac", "max_cover_frac"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"expected 0 <= {name} <= 1, got {v}")


@dataclass
class FlatlayBox:
    """The result for one photo: ``bbox_xyxy``/``mask`` are None when ``reason`` says why not."""

    bbox_xyxy: tuple[float, float, float, float] | None
    mask: np.ndarray | None  # H×W bool at full resolution
    reason: Reason | None = None
    flags: tuple[str, ...] = ()
    contours: int = 0


def detect_flatlay(rgb: np.ndarray, *, params: FlatlayParams = FlatlayParams(),
                   full_size: tuple[int, int] | None = None) -> FlatlayBox:
    """Box + mask of the garment in an ``H×W×3`` uint8 RGB photo.

    ``full_size`` ``(width, height)``: the photo's full-resolution size when ``rgb`` is a reduced
    decode; box and mask are scaled to it. Default: ``rgb``'s own size.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
    h0, w0 = rgb.shape[:2]
    full_w, full_h = full_size if full_size is not None else (w0, h0)
    scale = min(1.0, params.work_side / min(h0, w0))
    small = cv2.resize(rgb, (max(1, round(w0 * scale)), max(1, round(h0 * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    h, w = small.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (params.blur, params.blur), 0)
    if params.canny is not None:
        lo, hi = params.canny
    else:
        m = float(np.median(grey))
        lo, hi = int(max(10, 0.66 * m)), int(max(30, min(255, 1.33 * m)))
    edges = cv2.Canny(grey, lo, hi)
    if not edges.any():
        return FlatlayBox(None, None, "no_edges")
    k = max(3, int(round(params.close_frac * min(h, w))) | 1)
    closed = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rects = [cv2.boundingRect(c) for c in contours]
    areas = [rw * rh for _, _, rw, rh in rects]
    order = sorted(range(len(contours)), key=lambda i: -areas[i])
    if not order or areas[order[0]] < params.min_area_frac * h * w:
        return FlatlayBox(None, None, "too_small", contours=len(contours))
    keep = [i for i in order if areas[i] >= params.secondary_frac * areas[order[0]]]
    mask_small = np.zeros((h, w), np.uint8)
    cv2.drawContours(mask_small, [contours[i] for i in keep], -1, 1, thickness=cv2.FILLED)
    x0 = min(rects[i][0] for i in keep)
    y0 = min(rects[i][1] for i in keep)
    x1 = max(rects[i][0] + rects[i][2] for i in keep)
    y1 = max(rects[i][1] + rects[i][3] for i in keep)
    ko = int(round(params.open_frac * min(h, w))) | 1
    if ko >= 3:
        # opening removes thin attachments (RISE's measuring tape, hanger wires, strings)
        opened = cv2.morphologyEx(mask_small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ko, ko)))
        if opened.sum() >= max(0.5 * mask_small.sum(), params.min_area_frac * h * w):
            ys, xs = np.nonzero(opened)
            ox0, oy0, ox1, oy1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            # an outline that did not close fills only a part: keep the contours' box then
            if (ox1 - ox0) * (oy1 - oy0) >= 0.4 * (x1 - x0) * (y1 - y0):
                mask_small = opened
                x0, y0, x1, y1 = ox0, oy0, ox1, oy1
    sx, sy = full_w / w, full_h / h
    box = (x0 * sx, y0 * sy, min(full_w, x1 * sx), min(full_h, y1 * sy))
    mask = cv2.resize(mask_small, (full_w, full_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    flags = ("covers_photo",) if (x1 - x0) * (y1 - y0) > params.max_cover_frac * h * w else ()
    return FlatlayBox(box, mask, None, flags, contours=len(contours))


@dataclass
class FlatlayReport:
    """What :func:`annotate_flatlay` did: boxed records plus every photo left without a box."""

    records: list[ImageRecord]
    no_box: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    flagged: list[dict[str, Any]] = field(default_factory=list)  # {"path", "flags"}
    unlabelled: int = 0

    def summary(self) -> dict[str, Any]:
        return {"boxed": len(self.records), "no_box": len(self.no_box),
                "no_box_reasons": {r: sum(1 for x in self.no_box if x["reason"] == r)
                                   for r in sorted({x["reason"] for x in self.no_box})},
                "covers_photo": sum(1 for x in self.flagged if "covers_photo" in x["flags"]),
                "unlabelled": self.unlabelled}


def dataset_labels(dataset: str, root: str | os.PathLike[str]) -> dict[Path, ImageRecord]:
    """Records of a single-garment data set (``clothing`` or ``rise``) keyed by resolved image path."""
    if dataset == "clothing":
        from fashionlens.io.clothing import read_clothing

        records = read_clothing(root)
    elif dataset == "rise":
        from fashionlens.io.rise import read_rise

        records = read_rise(root)
    else:
        raise ValueError(f"dataset must be 'clothing' or 'rise', got {dataset!r}")
    return {r.path.resolve(): r for r in records}


def render_flatlay(rgb: np.ndarray, result: FlatlayBox, label: str | None = None) -> np.ndarray:
    """A copy of ``rgb`` with the mask tinted, the box drawn (red) and the label written."""
    out = rgb.copy()
    if result.mask is not None and result.mask.shape == out.shape[:2]:
        out[result.mask] = (0.6 * out[result.mask] + 0.4 * np.array([0, 160, 255])).astype(np.uint8)
    if result.bbox_xyxy is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in result.bbox_xyxy)
        t = max(2, min(out.shape[:2]) // 150)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 0, 0), t)
        text = label or "garment"
    else:
        text = f"no box: {result.reason}"
    cv2.putText(out, text, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, max(0.6, min(out.shape[:2]) / 600), (255, 0, 0), 2)
    return out


def annotate_flatlay(inputs: Sequence[str | os.PathLike[str]], *, labels: dict[Path, ImageRecord] | None = None,
                     params: FlatlayParams = FlatlayParams(), render_dir: str | os.PathLike[str] | None = None,
                     max_pixels: int = 40_000_000) -> FlatlayReport:
    """Box every photo of ``inputs`` (files, folders, globs).

    Each boxed photo becomes an :class:`ImageRecord` (source ``flatlay``, group = the data set's
    group when labelled, else the path) with one garment: the data set's label (categories, object
    type, attributes) when ``labels`` has the photo, else an unlabelled garment (counted in
    ``unlabelled``). Photos without a box, or that fail to decode, are listed in ``no_box`` with the
    reason and make no record. ``render_dir`` gets ``<stem>.png`` with the box drawn, for every photo.
    """
    report = FlatlayReport(records=[])
    out_dir = Path(render_dir) if render_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in iter_image_paths(inputs):
        try:
            img = load_image(path, max_pixels=max_pixels, min_side=params.work_side)
        except ImageDecodeError as exc:
            report.no_box.append({"path": str(path), "reason": "decode_error", "detail": f"{exc.code}: {exc}"})
            continue
        result = detect_flatlay(img.rgb, params=params, full_size=(img.width, img.height))
        source = labels.get(path.resolve()) if labels is not None else None
        garment_src = source.garments[0] if source is not None and source.garments else None
        label_text = None
        if garment_src is not None:
            label_text = garment_src.category or garment_src.object_type or garment_src.source_label
        if out_dir is not None:
            small = FlatlayBox(None if result.bbox_xyxy is None else tuple(v * img.scale for v in result.bbox_xyxy),
                               None if result.mask is None else cv2.resize(
                                   result.mask.astype(np.uint8), (img.rgb.shape[1], img.rgb.shape[0]),
                                   interpolation=cv2.INTER_NEAREST).astype(bool),
                               result.reason, result.flags)
            cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(render_flatlay(img.rgb, small, label_text),
                                                                        cv2.COLOR_RGB2BGR))
        if result.bbox_xyxy is None:
            report.no_box.append({"path": str(path), "reason": str(result.reason)})
            log.info("%s: no box (%s)", path, result.reason)
            continue
        if result.flags:
            report.flagged.append({"path": str(path), "flags": list(result.flags)})
        if garment_src is None:
            report.unlabelled += 1
            garment = GarmentAnnotation(bbox_xyxy=result.bbox_xyxy, mask_rle=encode_mask(result.mask))
        else:
            garment = GarmentAnnotation(categories=garment_src.categories, object_type=garment_src.object_type,
                                        bbox_xyxy=result.bbox_xyxy, mask_rle=encode_mask(result.mask),
                                        attributes=dict(garment_src.attributes), source_label=garment_src.source_label)
        report.records.append(ImageRecord(
            path=path, source="flatlay", group=source.group if source is not None else str(path),
            garments=[garment], width=img.width, height=img.height,
            meta={"flatlay_flags": list(result.flags), "dataset_source": source.source if source else None},
        ))
    log.info("flat-lay: %s", report.summary())
    return report


def write_flatlay_coco(report: FlatlayReport, json_path: str | os.PathLike[str], *, object_types: bool = False,
                       image_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write the boxed records as COCO: taxonomy categories via :func:`fashionlens.io.coco.write_coco`
    (garments with a coarse or missing category are skipped and counted), or with ``object_types``
    the detector's object-type categories (:func:`fashionlens.io.coco.records_to_coco`)."""
    if object_types:
        import json

        from fashionlens.io.coco import records_to_coco

        doc = records_to_coco(report.records, label_space="object_type")
        root = Path(image_root) if image_root is not None else Path(json_path).parent
        for img in doc["images"]:
            img["file_name"] = Path(os.path.relpath(Path(img["file_name"]).absolute(), root.absolute())).as_posix()
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        return {"images": len(doc["images"]), "annotations": len(doc["annotations"]),
                "skipped": sum(doc["info"]["skipped"].values())}
    from fashionlens.io.coco import write_coco

    s = write_coco(report.records, json_path, image_root=image_root)
    return {"images": s.images, "annotations": s.annotations, "skipped": s.skipped}
