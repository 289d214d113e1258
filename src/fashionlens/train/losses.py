"""Masked multi-task losses: each sample contributes to the heads it has labels for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
