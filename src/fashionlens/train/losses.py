"""Masked losses: each sample contributes only what it is labelled for.

* :func:`multitask_loss` (classifier): each sample contributes to the heads it has labels for;
* :func:`fcos_losses_ignoring` (detector): FCOS's losses where an image may *ignore* some classes
  (pseudo-labelled photos whose tags name a type no confident box covers, issue 28): those classes
  are neither positive nor negative anywhere in that image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fashionlens.models.heads import HeadSpec


def set_cross_entropy(logits: torch.Tensor, allowed: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-sample ``-log Σ_{c ∈ allowed} p(c)`` for set-valued labels (``allowed``: ``(B, C)`` bool).

    A single allowed class makes it ordinary cross-entropy; a coarse label ("any footwear") only
    asks the model to put its mass somewhere inside the set. Rows with no allowed class give 0.
    With ``label_smoothing`` ε the target is (1-ε)·set + ε·uniform, as in ``F.cross_entropy``.
    """
    log_p = logits.log_softmax(dim=-1)
    valid = allowed.any(dim=-1)
    masked = log_p.masked_fill(~allowed, float("-inf"))
    in_set = torch.logsumexp(masked, dim=-1)
    loss = -in_set
    if label_smoothing > 0:
        loss = (1 - label_smoothing) * loss - label_smoothing * log_p.mean(dim=-1)
    return torch.where(valid, loss, torch.zeros_like(loss))


def multitask_loss(outputs: Sequence[torch.Tensor], targets: Mapping[str, torch.Tensor], heads: Sequence[HeadSpec], *,
                   weights: Mapping[str, float], sample_weight: torch.Tensor | None = None,
                   label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum over heads of each head's mean loss over the samples labelled for it."""
    total = outputs[0].new_zeros(())
    parts: dict[str, float] = {}
    for head, logits in zip(heads, outputs):
        w = float(weights.get(head.name, 1.0))
        if w == 0:
            continue
        if head.name == "category":
            allowed = targets["category"]
            valid = allowed.any(dim=-1)
            per = set_cross_entropy(logits, allowed, label_smoothing=label_smoothing)
        elif head.kind == "single":
            y = targets[head.name]
            valid = y >= 0
            per = F.cross_entropy(logits, y.clamp(min=0), reduction="none", label_smoothing=label_smoothing)
        else:
            y = targets[head.name]
            valid = targets[f"{head.name}_valid"]
            per = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=-1)
        sw = valid.float() if sample_weight is None or head.name != "category" else valid.float() * sample_weight
        denom = sw.sum()
        if denom > 0:
            loss = (per * sw).sum() / denom
            total = total + w * loss
            parts[head.name] = float(loss.detach())
    return total, parts


# ------------------------------------------------------------------ FCOS with per-image ignored classes


def ignore_mask(ignore_labels: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """``(B, num_classes)`` bool: ``True`` where image ``b`` ignores class ``c`` (detector label space)."""
    mask = torch.zeros((len(ignore_labels), num_classes), dtype=torch.bool)
    for b, labels in enumerate(ignore_labels):
        for c in labels:
            if not 0 <= int(c) < num_classes:
                raise ValueError(f"ignored label {c} is outside the detector's {num_classes} classes")
            mask[b, int(c)] = True
    return mask


def focal_loss_ignoring(cls_logits: torch.Tensor, one_hot: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
    """Summed sigmoid focal loss (torchvision's, α 0.25, γ 2) without the *negative* terms of each image's
    ignored classes: for image ``b`` and ignored class ``c`` the anchors that are not positives of ``c``
    contribute nothing (``c`` is neither learnt as present nor as absent there); positives still count.
    ``cls_logits``/``one_hot``: ``(B, A, C)``; ``ignore``: ``(B, C)`` bool."""
    from torchvision.ops import sigmoid_focal_loss

    per = sigmoid_focal_loss(cls_logits, one_hot, reduction="none")
    dropped = ignore[:, None, :].to(per.device) & (one_hot == 0)
    return per.masked_fill(dropped, 0.0).sum()


class _IgnoringFCOSHead:
    """Stands in for ``FCOSHead`` in :meth:`FCOS.compute_loss` (which only calls ``head.compute_loss``):
    the same three losses as torchvision's ``FCOSHead.compute_loss``, with the classification loss of
    :func:`focal_loss_ignoring`."""

    def __init__(self, head: Any, ignore: torch.Tensor) -> None:
        self.box_coder = head.box_coder
        self.ignore = ignore

    def compute_loss(self, targets: list[dict[str, torch.Tensor]], head_outputs: dict[str, torch.Tensor],
                     anchors: list[torch.Tensor], matched_idxs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        from torchvision.ops import generalized_box_iou_loss

        cls_logits = head_outputs["cls_logits"]
        all_classes, all_boxes = [], []
        for t, m in zip(targets, matched_idxs):
            if len(t["labels"]) == 0:
                classes = t["labels"].new_zeros((len(m),))
                boxes = t["boxes"].new_zeros((len(m), 4))
            else:
                classes = t["labels"][m.clip(min=0)]
                boxes = t["boxes"][m.clip(min=0)]
            classes[m < 0] = -1
            all_classes.append(classes)
            all_boxes.append(boxes)
        gt_boxes, gt_classes, anchors_t = torch.stack(all_boxes), torch.stack(all_classes), torch.stack(anchors)
        foreground = gt_classes >= 0
        num_foreground = foreground.sum().item()
        one_hot = torch.zeros_like(cls_logits)
        one_hot[foreground, gt_classes[foreground]] = 1.0
        loss_cls = focal_loss_ignoring(cls_logits, one_hot, self.ignore)
        pred_boxes = self.box_coder.decode(head_outputs["bbox_regression"], anchors_t)
        loss_reg = generalized_box_iou_loss(pred_boxes[foreground], gt_boxes[foreground], reduction="sum")
        reg_targets = self.box_coder.encode(anchors_t, gt_boxes)
        if len(reg_targets) == 0:
            ctr_targets = reg_targets.new_zeros(reg_targets.size()[:-1])
        else:
            lr, tb = reg_targets[:, :, [0, 2]], reg_targets[:, :, [1, 3]]
            ctr_targets = torch.sqrt((lr.min(dim=-1)[0] / lr.max(dim=-1)[0]) * (tb.min(dim=-1)[0] / tb.max(dim=-1)[0]))
        loss_ctr = F.binary_cross_entropy_with_logits(head_outputs["bbox_ctrness"].squeeze(dim=2)[foreground],
                                                      ctr_targets[foreground], reduction="sum")
        n = max(1, num_foreground)
        return {"classification": loss_cls / n, "bbox_regression": loss_reg / n, "bbox_ctrness": loss_ctr / n}


def fcos_losses_ignoring(model: Any, targets: list[dict[str, torch.Tensor]], head_outputs: dict[str, torch.Tensor],
                         anchors: list[torch.Tensor], num_anchors_per_level: list[int],
                         ignore: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision FCOS's training losses (its own anchor matching) with per-image ignored classes
    (``ignore``: ``(B, C)`` bool, :func:`ignore_mask`); with no class ignored they equal ``model.compute_loss``."""
    from types import SimpleNamespace

    from torchvision.models.detection import FCOS

    proxy = SimpleNamespace(center_sampling_radius=model.center_sampling_radius,
                            head=_IgnoringFCOSHead(model.head, ignore))
    return FCOS.compute_loss(proxy, targets, head_outputs, anchors, num_anchors_per_level)  # type: ignore[arg-type]
