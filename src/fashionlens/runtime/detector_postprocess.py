"""The detector's pre- and post-processing in NumPy: torchvision's, ported for the ONNX runtime path.

Each function follows the torchvision code it replaces, in float32 and in the same order of
operations, so the ONNX path (:mod:`fashionlens.runtime.detector_onnx`) gives the PyTorch path's
detections up to floating-point noise (``tests/runtime/test_detector_numpy_parity.py``):

* :func:`resize_normalise` — ``GeneralizedRCNNTransform``: scale ``min(min_size / short side,
  max_size / long side)``, output size ``int(side · scale)``, bilinear resize (``align_corners=False``,
  source index ``(i + ½)·in/out − ½`` clamped at 0, no antialias), normalisation, zero padding to a
  multiple of ``size_divisible``;
* :func:`fcos_detections` — FCOS post-processing: anchors (``AnchorGenerator``), per-level score
  filter and top-k, box decoding (``BoxLinearCoder``), clipping, batched NMS (torchvision's
  coordinate-offset trick, or per class beyond 1,000 boxes) and the top detections;
* :func:`roi_levels` — ``MultiScaleRoIAlign``'s scale inference and FPN level mapping;
* :func:`paste_masks` — ``paste_masks_in_image``: 28×28 masks padded by one pixel, boxes expanded
  to match, resized bilinearly into the photo;
* :func:`semantic_instance_masks` — :meth:`FCOSSeg._instance_masks` (``P(label) inside the box``);
* :func:`resize_boxes` — ``transform.postprocess``'s box rescaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

F32 = np.float32

__all__ = ["DetectorConfig", "bilinear_resize", "box_iou", "fcos_detections", "level_sizes", "nms", "paste_masks",
           "resize_boxes", "resize_normalise", "roi_levels", "semantic_instance_masks"]


@dataclass(frozen=True)
class DetectorConfig:
    """What the ONNX runner needs besides the graphs (stored as JSON in the export's metadata)."""

    min_size: int
    max_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    anchor_sizes: tuple[int, ...]
    topk_candidates: int
    mask_size_limit: int
    roi_masks: bool
    size_divisible: int = 32
    roi_canonical_scale: int = 224
    roi_canonical_level: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        d = dict(d)
        for k in ("image_mean", "image_std", "anchor_sizes"):
            d[k] = tuple(d[k])
        return cls(**d)


# ------------------------------------------------------------------------------ resizing


def _linear_indices(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's ``compute_source_index_and_lambda`` (bilinear, ``align_corners=False``)."""
    if in_size == out_size:
        idx = np.arange(out_size)
        return idx, idx, np.ones(out_size, F32), np.zeros(out_size, F32)
    ratio = F32(in_size) / F32(out_size)
    # ratio·(i + ½) − ½ rounded once, as the fused multiply-add of PyTorch's x86 build computes it
    # (the float64 product of two float32 values is exact): 0.5 ulp instead of 1 ulp of the index
    src = (np.float64(ratio) * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5).astype(F32)
    src = np.maximum(src, F32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    l1 = np.clip(src - i0.astype(F32), F32(0), F32(1)).astype(F32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (F32(1) - l1).astype(F32), l1


def bilinear_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)`` of ``(..., H, W)``
    float32 (no antialias): ``(x00·wx0 + x01·wx1)·wy0 + (x10·wx0 + x11·wx1)·wy1`` as PyTorch's kernel."""
    h, w = x.shape[-2:]
    y0, y1, wy0, wy1 = _linear_indices(h, out_h)
    x0, x1, wx0, wx1 = _linear_indices(w, out_w)
    top, bottom = x[..., y0, :], x[..., y1, :]
    t0 = top[..., x0] * wx0 + top[..., x1] * wx1
    t1 = bottom[..., x0] * wx0 + bottom[..., x1] * wx1
    return (t0 * wy0[:, None] + t1 * wy1[:, None]).astype(F32, copy=False)


def _nearest_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``F.interpolate(x, (out_h, out_w), mode="nearest")`` of ``(..., H, W)``."""
    def index(in_size: int, out_size: int) -> np.ndarray:
        if in_size == out_size:
            return np.arange(out_size)
        if out_size == 2 * in_size:
            return np.arange(out_size) >> 1
        scale = F32(in_size) / F32(out_size)
        return np.minimum(np.floor(np.arange(out_size, dtype=F32) * scale).astype(np.int64), in_size - 1)

    h, w = x.shape[-2:]
    return x[..., index(h, out_h), :][..., index(w, out_w)]


def resize_normalise(rgb: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, tuple[int, int]]:
    """An ``H×W×3`` uint8 photo → the network's input ``(1, 3, H', W')`` float32 (resized, normalised,
    zero-padded to a multiple of ``size_divisible``) and the resized size before padding."""
    h, w = rgb.shape[:2]
    scale = min(config.min_size / min(h, w), config.max_size / max(h, w))
    rh, rw = int(h * scale), int(w * scale)
    if rh < 1 or rw < 1:
        raise ValueError(f"a {w}×{h} photo resizes to {rw}×{rh} px for the detector; letterbox it first")
    mean = np.asarray(config.image_mean, F32)[:, None, None]
    std = np.asarray(config.image_std, F32)[:, None, None]
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(F32) / F32(255.0)
    x = (x - mean) / std
    x = bilinear_resize(x, rh, rw)
    d = config.size_divisible
    ph, pw = -(-rh // d) * d, -(-rw // d) * d
    out = np.zeros((1, 3, ph, pw), F32)
    out[0, :, :rh, :rw] = x
    return out, (rh, rw)


# ------------------------------------------------------------------------------ FCOS boxes


def level_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Pyramid level sizes for a padded input: strides 8, 16, 32, then P6/P7 (3×3 convs, stride 2, pad 1)."""
    sizes = [(-(-height // s), -(-width // s)) for s in (8, 16, 32)]
    for _ in range(2):
        h, w = sizes[-1]
        sizes.append(((h - 1) // 2 + 1, (w - 1) // 2 + 1))
    return sizes


def _anchors(padded: tuple[int, int], sizes: Sequence[tuple[int, int]], anchor_sizes: Sequence[int]
             ) -> list[np.ndarray]:
    """``AnchorGenerator`` with one square anchor per location: ``(h·w, 4)`` float32 per level."""
    out = []
    for (gh, gw), size in zip(sizes, anchor_sizes):
        sh, sw = padded[0] // gh, padded[1] // gw
        half = F32(size) / F32(2)
        base = np.round(np.array([-half, -half, half, half], F32))
        shift_y, shift_x = np.meshgrid(np.arange(gh, dtype=np.int32) * sh, np.arange(gw, dtype=np.int32) * sw,
                                       indexing="ij")
        shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], axis=1)
        out.append((shifts.astype(F32) + base[None]).astype(F32))
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (F32(1) / (F32(1) + np.exp(-x))).astype(F32, copy=False)


def _decode(rel: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``BoxLinearCoder(normalize_by_size=True).decode``."""
    ctr_x = F32(0.5) * (anchors[:, 0] + anchors[:, 2])
    ctr_y = F32(0.5) * (anchors[:, 1] + anchors[:, 3])
    bw, bh = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    rel = rel * np.stack([bw, bh, bw, bh], axis=1)
    return np.stack([ctr_x - rel[:, 0], ctr_y - rel[:, 1], ctr_x + rel[:, 2], ctr_y + rel[:, 3]], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """torchvision's ``nms`` (CPU kernel): greedy in descending score (stable order for ties),
    suppressing later boxes with IoU ``>`` the threshold; indices of the kept boxes, best first."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        if not len(rest):
            break
        w = np.maximum(F32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(F32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # empty boxes: NaN, never suppressing (as torch)
            ovr = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[ovr.astype(np.float64) > iou_threshold]] = True
    return np.asarray(keep, np.int64)


def _batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """torchvision's ``batched_nms``: the coordinate-offset trick up to 1,000 boxes, else per class."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    if boxes.size <= 4000:
        offsets = labels.astype(F32) * (boxes.max() + F32(1))
        return nms(boxes + offsets[:, None], scores, iou_threshold)
    keep_mask = np.zeros(len(boxes), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep_mask[idx[nms(boxes[idx], scores[idx], iou_threshold)]] = True
    kept = np.flatnonzero(keep_mask)
    return kept[np.argsort(-scores[kept], kind="stable")]


def fcos_detections(cls_logits: np.ndarray, bbox_regression: np.ndarray, bbox_ctrness: np.ndarray,
                    padded: tuple[int, int], resized: tuple[int, int], config: DetectorConfig, *,
                    score_thresh: float, nms_thresh: float, detections_per_img: int
                    ) -> dict[str, np.ndarray]:
    """FCOS post-processing of one image's raw head outputs (``(L, K)``, ``(L, 4)``, ``(L, 1)`` over
    all pyramid locations) → ``boxes`` (in the resized image's pixels), ``scores``, ``labels``.
    Label 0 (background) never scores: torchvision's FCOS would rank it like any class."""
    sizes = level_sizes(*padded)
    counts = [h * w for h, w in sizes]
    if sum(counts) != len(cls_logits):
        raise RuntimeError(f"the detector network returned {len(cls_logits)} locations, expected {sum(counts)} "
                           f"for a {padded[1]}×{padded[0]} input")
    anchors = _anchors(padded, sizes, config.anchor_sizes)
    num_classes = cls_logits.shape[-1]
    cls_prob = _sigmoid(cls_logits)
    cls_prob[:, 0] = 0.0
    scores_all = np.sqrt(cls_prob * _sigmoid(bbox_ctrness))
    rh, rw = resized
    boxes, scores, labels = [], [], []
    start = 0
    for n, level_anchors in zip(counts, anchors):
        level_scores = scores_all[start:start + n].ravel()
        reg = bbox_regression[start:start + n]
        start += n
        candidates = np.flatnonzero(level_scores > F32(score_thresh))
        order = np.argsort(-level_scores[candidates], kind="stable")[:config.topk_candidates]
        idx = candidates[order]
        anchor_idx = idx // num_classes
        level_boxes = _decode(reg[anchor_idx], level_anchors[anchor_idx])
        level_boxes[:, 0::2] = np.clip(level_boxes[:, 0::2], 0, rw)
        level_boxes[:, 1::2] = np.clip(level_boxes[:, 1::2], 0, rh)
        boxes.append(level_boxes.astype(F32, copy=False))
        scores.append(level_scores[idx])
        labels.append(idx % num_classes)
    all_boxes, all_scores, all_labels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
    kept = _batched_nms(all_boxes, all_scores, all_labels, nms_thresh)[:detections_per_img]
    return {"boxes": all_boxes[kept].reshape(-1, 4), "scores": all_scores[kept],
            "labels": all_labels[kept].astype(np.int64)}


def resize_boxes(boxes: np.ndarray, resized: tuple[int, int], original: tuple[int, int]) -> np.ndarray:
    """Boxes from the resized image's pixels to the original's (``transform.postprocess``)."""
    ratio_h = F32(original[0]) / F32(resized[0])
    ratio_w = F32(original[1]) / F32(resized[1])
    return (boxes * np.array([ratio_w, ratio_h, ratio_w, ratio_h], F32)).astype(F32, copy=False)


# ------------------------------------------------------------------------------ masks


def roi_levels(boxes: np.ndarray, feature_sizes: Sequence[tuple[int, int]], resized: tuple[int, int],
               config: DetectorConfig) -> tuple[list[float], np.ndarray]:
    """``MultiScaleRoIAlign``'s spatial scale of each feature level (``2^round(log2(feature / image))``)
    and the level of each box (FPN's ``floor(4 + log2(√area / 224))``, clamped to the levels)."""
    scales = [float(2 ** float(np.round(np.log2(F32(fh / resized[0]))))) for fh, _ in feature_sizes]
    k_min = int(-np.log2(F32(scales[0])))
    k_max = int(-np.log2(F32(scales[-1])))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    s = np.sqrt(area.astype(F32))
    with np.errstate(divide="ignore"):
        target = np.floor(F32(config.roi_canonical_level) + np.log2(s / F32(config.roi_canonical_scale))
                          + F32(1e-6))
    target = np.clip(target, k_min, k_max)
    return scales, (target.astype(np.int64) - k_min)


def paste_masks(masks: np.ndarray, boxes: np.ndarray, size: tuple[int, int], padding: int = 1) -> np.ndarray:
    """``paste_masks_in_image``: ``(N, M, M)`` mask probabilities into ``(N, 1, H, W)`` float32 at
    ``boxes`` (original pixels), each mask padded by ``padding`` and its box expanded to match."""
    im_h, im_w = size
    out = np.zeros((len(masks), 1, im_h, im_w), F32)
    if not len(masks):
        return out
    m = masks.shape[-1]
    padded = np.pad(masks.astype(F32, copy=False), ((0, 0), (padding, padding), (padding, padding)))
    scale = F32(float(m + 2 * padding) / m)
    w_half = (boxes[:, 2] - boxes[:, 0]) * F32(0.5) * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * F32(0.5) * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * F32(0.5)
    y_c = (boxes[:, 3] + boxes[:, 1]) * F32(0.5)
    expanded = np.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1).astype(np.int64)
    for k, (mask, (b0, b1, b2, b3)) in enumerate(zip(padded, expanded.tolist())):
        w, h = max(int(b2 - b0 + 1), 1), max(int(b3 - b1 + 1), 1)
        x0, x1, y0, y1 = max(b0, 0), min(b2 + 1, im_w), max(b1, 0), min(b3 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            continue
        resized = bilinear_resize(mask, h, w)
        out[k, 0, y0:y1, x0:x1] = resized[y0 - b1:y1 - b1, x0 - b0:x1 - b0]
    return out


def semantic_instance_masks(probs: np.ndarray, boxes: np.ndarray, labels: np.ndarray, size: tuple[int, int],
                            mask_size_limit: int) -> np.ndarray:
    """:meth:`FCOSSeg._instance_masks`: the semantic map ``probs`` ``(K, h, w)`` (the image's valid
    part) resized to the photo; each detection's mask is its label's probability inside its box.
    Beyond ``mask_size_limit`` pixels in all, masks are made smaller and upsampled (nearest)."""
    n = len(boxes)
    h, w = size
    scale = 1.0
    if n * h * w > mask_size_limit:
        scale = (mask_size_limit / max(1, n * h * w)) ** 0.5
    mh, mw = max(1, int(h * scale)), max(1, int(w * scale))
    if n == 0:
        return np.zeros((0, 1, h, w), F32)
    wanted, inverse = np.unique(labels, return_inverse=True)
    full = bilinear_resize(np.ascontiguousarray(probs[wanted]), mh, mw)
    out = full[inverse.ravel()]
    b = (boxes * F32(scale)).astype(F32)
    ys = (np.arange(mh, dtype=F32) + F32(0.5))[None, :, None]
    xs = (np.arange(mw, dtype=F32) + F32(0.5))[None, None, :]
    inside = ((xs >= b[:, 0, None, None]) & (xs <= b[:, 2, None, None])
              & (ys >= b[:, 1, None, None]) & (ys <= b[:, 3, None, None]))
    out = (out * inside)[:, None]
    if scale != 1.0:
        out = _nearest_resize(out, h, w)
    return out.astype(F32, copy=False)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of ``xyxy`` boxes (torchvision's ``box_iou``, in float32)."""
    a, b = np.asarray(a, F32).reshape(-1, 4), np.asarray(b, F32).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)

