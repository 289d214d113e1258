"""Mirror test-time augmentation for the detector: run a photo and its mirror, merge the two.

The detector sees the photo and its left–right mirror in one batch of two. The mirror's
detections are flipped back (:func:`unmirror`) and the two sets merged per object type by one
of :data:`MERGES`:

* ``"nms"`` — concatenate and suppress with torchvision's class-wise NMS (the usual merge for
  one-stage detectors);
* ``"wbf"`` — weighted box fusion (Solovyev et al., 2021): detections of one type that overlap a
  cluster's fused box by ``iou_thresh`` join it; a cluster's box and mask are the score-weighted
  means of its members, its score is the mean member score times ``min(members, views) / views``,
  so a garment found in only one view is down-weighted.

Detections are the network's output dicts (``boxes``, ``labels``, ``scores``, optional
``masks`` ``(N, 1, H, W)`` probabilities), in the photo's pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

#: Ways of merging the detections of the views.
MERGES = ("nms", "wbf")


def unmirror(det: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Detections made on a mirrored photo of ``width`` pixels → the original photo's pixels."""
    out = dict(det)
    boxes = det["boxes"]
    out["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    if "masks" in det:
        out["masks"] = det["masks"].flip(-1)
    return out


def _concat(dets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    keys = set.intersection(*(set(d) for d in dets))
    return {k: torch.cat([d[k] for d in dets]) for k in keys}


def _top(det: dict[str, Tensor], order: Tensor) -> dict[str, Tensor]:
    return {k: v[order] for k, v in det.items()}


def merge_nms(dets: list[dict[str, Tensor]], *, iou_thresh: float, max_detections: int) -> dict[str, Tensor]:
    """Concatenate the views' detections and keep the best of each overlapping same-type group."""
    allx = _concat(dets)
    keep = batched_nms(allx["boxes"], allx["scores"], allx["labels"], iou_thresh)[:max_detections]
    return _top(allx, keep)


def merge_wbf(dets: list[dict[str, Tensor]], *, iou_thresh: float = 0.55, max_detections: int = 100
              ) -> dict[str, Tensor]:
    """Weighted box fusion of the views' detections (see the module docstring)."""
    views = len(dets)
    allx = _concat(dets)
    order = allx["scores"].argsort(descending=True)
    boxes, scores, labels = allx["boxes"][order], allx["scores"][order], allx["labels"][order]
    members: list[list[int]] = []
    fused: list[Tensor] = []
    cluster_label: list[int] = []
    for i in range(len(boxes)):
        best, best_iou = -1, iou_thresh
        same = [c for c, lab in enumerate(cluster_label) if lab == int(labels[i])]
        if same:
            ious = box_iou(boxes[i:i + 1], torch.stack([fused[c] for c in same]))[0]
            j = int(ious.argmax())
            if float(ious[j]) > best_iou:
                best = same[j]
        if best < 0:
            members.append([i])
            fused.append(boxes[i])
            cluster_label.append(int(labels[i]))
        else:
            members[best].append(i)
            w = scores[members[best]]
            fused[best] = (boxes[members[best]] * w[:, None]).sum(0) / w.sum()
    out: dict[str, Tensor] = {
        "boxes": torch.stack(fused) if fused else boxes.new_zeros((0, 4)),
        "labels": torch.tensor(cluster_label, dtype=labels.dtype),
        "scores": torch.stack([scores[m].mean() * min(len(m), views) / views for m in members])
        if members else scores.new_zeros(0),
    }
    if "masks" in allx:
        masks = allx["masks"][order]
        out["masks"] = (torch.stack([(masks[m] * scores[m][:, None, None, None]).sum(0) / scores[m].sum()
                                     for m in members]) if members else masks[:0])
    keep = out["scores"].argsort(descending=True)[:max_detections]
    return _top(out, keep)


def merge_views(dets: list[dict[str, Tensor]], merge: str, *, iou_thresh: float, max_detections: int
                ) -> dict[str, Tensor]:
    """Merge detections of several views of one photo (all in its pixels) with ``merge``."""
    if merge == "nms":
        return merge_nms(dets, iou_thresh=iou_thresh, max_detections=max_detections)
    if merge == "wbf":
        return merge_wbf(dets, max_detections=max_detections)
    raise ValueError(f"merge: expected one of {MERGES}, got {merge!r}")
