"""FCOS with a semantic mask head: boxes from FCOS, instance masks from a per-pixel object-type map.

Mask R-CNN predicts a 28×28 mask per RoI, and on this CPU its RoI heads and mask pasting cost
several times the whole of FCOS (``docs/detection.md``). Garments of one object type rarely
overlap in a photo (a person wears one pair of trousers), so an instance mask can be read off a
*semantic* map instead: a small head on the stride-8 pyramid level predicts, for every pixel,
background or one of the six object types; the mask of a detection with label ``c`` and box ``b``
is ``P(c | pixel) ≥ 0.5`` inside ``b``. This is the "box ∩ semantic map" decomposition used by
panoptic FPN-style systems, at the cost of merging two touching garments of the same type (two
shoes) inside their overlapping boxes.

Training losses are FCOS's (focal classification, GIoU box regression, centre-ness) plus a
cross-entropy on the semantic map at stride 4 (logits upsampled ×2), weighted by
``seg_loss_weight``. The semantic target is built from the instance masks (later instances
overwrite earlier ones); pixels of box-only instances (``mask_from_box``) are ignored, not
counted as garment or background.

Optionally (``roi_masks=True``) a :class:`RoIMaskHead` — Mask R-CNN's mask branch on the FCOS
boxes — predicts one mask per detection instead; it is trained in a second stage with the rest
frozen (:func:`fashionlens.train.detector.train_roi_masks`). It separates what the semantic map
merges (a shirt under a jacket, both upper-body) and recovers small garments whose semantic
probability stays under 0.5 (bags, hats), at the cost of RoIAlign and a small conv stack on the
kept boxes. When present it replaces the semantic masks at inference.

:meth:`FCOSSeg.losses_from_features` and :meth:`FCOSSeg.detect_from_features` take pyramid
features, so a trainer can cache the frozen stem (:meth:`EfficientNetLiteFPN.forward_stem`) and
run only the rest (:mod:`fashionlens.train.detector`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.models.fpn import EfficientNetLiteFPN, check_detector_sizes

__all__ = ["IGNORE_INDEX", "DetectionLimits", "FCOSSeg", "RoIMaskHead", "SemanticMaskHead", "fcos_seg_lite0_fpn",
           "semantic_targets"]

#: Label of ignored pixels in semantic targets.
IGNORE_INDEX = 255


class SemanticMaskHead(nn.Module):
    """Two 3×3 conv + GroupNorm + ReLU layers and a 1×1 classifier over ``num_classes + 1`` labels."""

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 96) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(2):
            layers += [nn.Conv2d(c, channels, 3, padding=1, bias=False), nn.GroupNorm(16 if channels % 16 == 0 else 1, channels),
                       nn.ReLU(inplace=True)]
            c = channels
        self.tower = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.tower(x))


def semantic_targets(targets: list[dict[str, Tensor]], size: tuple[int, int], stride: int = 4) -> Tensor:
    """Per-pixel labels ``(B, H/stride, W/stride)`` int64 from instance ``masks``/``labels`` at ``size`` (padded input)."""
    h, w = size
    out = []
    for t in targets:
        sem = torch.zeros((h, w), dtype=torch.int64)
        masks = t.get("masks")
        if masks is not None and len(masks):
            from_box = t.get("mask_from_box", torch.zeros(len(masks), dtype=torch.bool))
            mh, mw = masks.shape[-2:]
            for m, label, boxy in zip(masks, t["labels"], from_box):
                region = torch.zeros((h, w), dtype=torch.bool)
                region[:mh, :mw] = m.bool()
                sem[region] = IGNORE_INDEX if bool(boxy) else int(label)
        out.append(sem)
    sem_b = torch.stack(out)[:, None].float()
    return F.interpolate(sem_b, size=(h // stride, w // stride), mode="nearest")[:, 0].long()


class RoIMaskHead(nn.Module):
    """Per-detection masks (Mask R-CNN's mask branch) on FCOS boxes, trained after the detector.

    RoIAlign (14×14) on the three backbone pyramid levels → four 3×3 convs → a 2× deconvolution →
    one 28×28 mask logit map per class. It separates garments the semantic map cannot (a shirt
    under a jacket: both upper-body) and small ones (bags, hats). Trained with Mask R-CNN's
    loss on ground-truth boxes jittered by a few per cent, the rest of the detector frozen.
    """

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 128) -> None:
        super().__init__()
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
        from torchvision.ops import MultiScaleRoIAlign

        self.num_classes = num_classes
        self.pool = MultiScaleRoIAlign(["0", "1", "2"], output_size=14, sampling_ratio=2)
        self.head = MaskRCNNHeads(in_channels, [channels] * 4, dilation=1)
        self.predictor = MaskRCNNPredictor(channels, channels, num_classes)

    def logits(self, features: "OrderedDict[str, Tensor]", boxes: list[Tensor],
               image_sizes: list[tuple[int, int]]) -> Tensor:
        return self.predictor(self.head(self.pool(features, boxes, image_sizes)))

    def loss(self, features: "OrderedDict[str, Tensor]", targets: list[dict[str, Tensor]],
             image_sizes: list[tuple[int, int]], *, jitter: float = 0.05) -> Tensor:
        from torchvision.models.detection.roi_heads import maskrcnn_loss

        boxes = []
        for t in targets:
            b = t["boxes"]
            wh = (b[:, 2:] - b[:, :2]).repeat(1, 2)
            boxes.append(b + (torch.rand_like(b) * 2 - 1) * jitter * wh if self.training else b)
        logits = self.logits(features, boxes, image_sizes)
        return maskrcnn_loss(logits, boxes, [t["masks"] for t in targets], [t["labels"] for t in targets],
                             [torch.arange(len(t["boxes"])) for t in targets])

    @torch.no_grad()
    def predict(self, features: "OrderedDict[str, Tensor]", boxes: list[Tensor], labels: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Mask probabilities ``(N, 1, 28, 28)`` per image for boxes in the resized image's pixels."""
        from torchvision.models.detection.roi_heads import maskrcnn_inference

        if sum(len(b) for b in boxes) == 0:
            return [torch.zeros((0, 1, 28, 28)) for _ in boxes]
        return maskrcnn_inference(self.logits(features, boxes, image_sizes), labels)


class FCOSSeg(FCOS):
    """torchvision :class:`~torchvision.models.detection.FCOS` plus a :class:`SemanticMaskHead`.

    Outputs (eval) follow Mask R-CNN: ``boxes``, ``labels``, ``scores`` and ``masks``
    ``(N, 1, H, W)`` float in ``[0, 1]`` at the original image size (the class probability inside
    the box, 0 outside). ``mask_size_limit`` caps ``N·H·W`` per image: beyond it masks are
    computed at a lower resolution and upsampled, so a huge photo cannot exhaust memory.
    """

    def __init__(self, backbone: EfficientNetLiteFPN, num_classes: int, *, seg_channels: int = 96,
                 seg_loss_weight: float = 1.0, mask_size_limit: int = 200_000_000, roi_masks: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        self.seg_head = SemanticMaskHead(backbone.out_channels, num_classes, channels=seg_channels)
        self.seg_loss_weight = seg_loss_weight
        self.mask_size_limit = mask_size_limit
        self.roi_mask: RoIMaskHead | None = (RoIMaskHead(backbone.out_channels, num_classes)
                                             if roi_masks else None)

    def reset_roi_mask(self) -> None:
        """Replace the RoI mask head with a freshly initialised one (to retrain it on frozen boxes)."""
        if self.roi_mask is None:
            raise ValueError("this detector was built without an RoI mask head (roi_masks=False)")
        self.roi_mask = RoIMaskHead(self.backbone.out_channels, self.roi_mask.num_classes)

    # ----------------------------------------------------------------- training

    def losses_from_features(self, images: ImageList, features: OrderedDict[str, Tensor],
                             targets: list[dict[str, Tensor]], semantic: Tensor | None = None) -> dict[str, Tensor]:
        """FCOS losses + ``seg`` loss; ``semantic`` = stride-4 labels (built from targets when ``None``)."""
        feats = list(features.values())
        head_outputs = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        num_anchors_per_level = [x.size(2) * x.size(3) for x in feats]
        losses = self.compute_loss(targets, head_outputs, anchors, num_anchors_per_level)
        h, w = images.tensors.shape[-2:]
        if semantic is None:
            semantic = semantic_targets(targets, (h, w))
        logits = self.seg_head(features["0"])
        logits = F.interpolate(logits, size=semantic.shape[-2:], mode="bilinear", align_corners=False)
        losses["seg"] = self.seg_loss_weight * F.cross_entropy(logits, semantic.to(logits.device),
                                                               ignore_index=IGNORE_INDEX)
        return losses

    # ----------------------------------------------------------------- inference

    @torch.no_grad()
    def detect_from_features(self, images: ImageList, features: "OrderedDict[str, Tensor]",
                             original_image_sizes: list[tuple[int, int]], *, with_masks: bool = True,
                             limits: DetectionLimits | None = None) -> list[dict[str, Tensor]]:
        feats = list(features.values())
        head_outputs = self.head(feats)
        probs = self.seg_head(features["0"]).softmax(1) if with_masks else None
        return self.detect_from_outputs(images, head_outputs, [tuple(f.shape[-2:]) for f in feats], probs,
                                        original_image_sizes, features if with_masks else None, limits=limits)

    @torch.no_grad()
    def detect_from_outputs(self, images: ImageList, head_outputs: dict[str, Tensor],
                            level_sizes: list[tuple[int, int]], seg_probs: Tensor | None,
                            original_image_sizes: list[tuple[int, int]],
                            features: "OrderedDict[str, Tensor] | None" = None, *,
                            limits: DetectionLimits | None = None) -> list[dict[str, Tensor]]:
        """Post-processing from raw network outputs (also what the ONNX runtime path calls):
        ``head_outputs`` = FCOS head's ``cls_logits``/``bbox_regression``/``bbox_ctrness``,
        ``level_sizes`` = ``(h, w)`` of each pyramid level, ``seg_probs`` = softmaxed semantic map."""
        # label 0 is background: torchvision's FCOS scores it like any class, so an under-trained
        # network could report "__background__" detections; they never compete for the top-k
        head_outputs = {**head_outputs, "cls_logits": head_outputs["cls_logits"].clone()}
        head_outputs["cls_logits"][..., 0] = float("-inf")
        grids = [torch.empty((1, 1, h, w)) for h, w in level_sizes]
        anchors = self.anchor_generator(images, grids)
        num_anchors_per_level = [h * w for h, w in level_sizes]
        split_head_outputs = {k: list(v.split(num_anchors_per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(num_anchors_per_level)) for a in anchors]
        detections = self.postprocess_detections(split_head_outputs, split_anchors, images.image_sizes, limits)
        if self.roi_mask is not None and features is not None:
            probs = self.roi_mask.predict(features, [d["boxes"] for d in detections], [d["labels"] for d in detections],
                                          images.image_sizes)
            for det, m in zip(detections, probs):
                det["masks"] = m
            # transform.postprocess rescales the boxes and pastes the 28×28 masks at the original size
            return self.transform.postprocess(detections, images.image_sizes, original_image_sizes)
        detections = self.transform.postprocess(detections, images.image_sizes, original_image_sizes)
        if seg_probs is None:
            return detections
        stride = images.tensors.shape[-1] / seg_probs.shape[-1]
        for i, det in enumerate(detections):
            ih, iw = images.image_sizes[i]
            valid = seg_probs[i:i + 1, :, : max(1, round(ih / stride)), : max(1, round(iw / stride))]
            det["masks"] = self._instance_masks(valid, det, original_image_sizes[i])
        return detections

    @property
    def limits(self) -> DetectionLimits:
        """The limits the network was built with (used when a call passes none)."""
        return DetectionLimits(float(self.score_thresh), float(self.nms_thresh), int(self.detections_per_img))

    def postprocess_detections(self, head_outputs: dict[str, list[Tensor]], anchors: list[list[Tensor]],
                               image_shapes: list[tuple[int, int]], limits: DetectionLimits | None = None
                               ) -> list[dict[str, Tensor]]:
        """torchvision's FCOS post-processing (score filter and top-k per level, box decoding, batched
        NMS, top detections) with ``limits`` per call instead of the network's attributes."""
        limits = limits or self.limits
        detections: list[dict[str, Tensor]] = []
        for index, (anchors_per_image, image_shape) in enumerate(zip(anchors, image_shapes)):
            boxes, scores, labels = [], [], []
            for box_reg, logits, ctrness, level_anchors in zip(
                    [br[index] for br in head_outputs["bbox_regression"]], [cl[index] for cl in head_outputs["cls_logits"]],
                    [bc[index] for bc in head_outputs["bbox_ctrness"]], anchors_per_image):
                num_classes = logits.shape[-1]
                level_scores = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(ctrness)).flatten()
                keep = level_scores > limits.score_thresh
                level_scores = level_scores[keep]
                topk_idxs = torch.where(keep)[0]
                level_scores, idxs = level_scores.topk(det_utils._topk_min(topk_idxs, self.topk_candidates, 0))
                topk_idxs = topk_idxs[idxs]
                anchor_idxs = torch.div(topk_idxs, num_classes, rounding_mode="floor")
                level_boxes = self.box_coder.decode(box_reg[anchor_idxs], level_anchors[anchor_idxs])
                boxes.append(box_ops.clip_boxes_to_image(level_boxes, image_shape))
                scores.append(level_scores)
                labels.append(topk_idxs % num_classes)
            image_boxes, image_scores, image_labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
            kept = box_ops.batched_nms(image_boxes, image_scores, image_labels, limits.nms_thresh)
            kept = kept[: limits.detections_per_img]
            detections.append({"boxes": image_boxes[kept], "scores": image_scores[kept], "labels": image_labels[kept]})
        return detections

    @staticmethod
    def level_sizes(height: int, width: int) -> list[tuple[int, int]]:
        """Pyramid level sizes for a padded input: strides 8, 16, 32, then P6/P7 (3×3 convs, stride 2, pad 1)."""
        sizes = [(-(-height // s), -(-width // s)) for s in (8, 16, 32)]
        for _ in range(2):
            h, w = sizes[-1]
            sizes.append(((h - 1) // 2 + 1, (w - 1) // 2 + 1))
        return sizes

    def _instance_masks(self, probs: Tensor, det: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        n = len(det["boxes"])
        h, w = size
        scale = 1.0
        if n * h * w > self.mask_size_limit:
            scale = (self.mask_size_limit / max(1, n * h * w)) ** 0.5
        mh, mw = max(1, int(h * scale)), max(1, int(w * scale))
        if n == 0:
            return torch.zeros((0, 1, h, w))
        full = F.interpolate(probs, size=(mh, mw), mode="bilinear", align_corners=False)[0]
        out = full[det["labels"]]  # (N, mh, mw)
        boxes = det["boxes"] * scale
        ys = torch.arange(mh, dtype=boxes.dtype)[None, :, None] + 0.5
        xs = torch.arange(mw, dtype=boxes.dtype)[None, None, :] + 0.5
        inside = ((xs >= boxes[:, 0, None, None]) & (xs <= boxes[:, 2, None, None])
                  & (ys >= boxes[:, 1, None, None]) & (ys <= boxes[:, 3, None, None]))
        out = (out * inside)[:, None]
        if scale != 1.0:
            out = F.interpolate(out, size=(h, w), mode="nearest")
        return out

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None,  # type: ignore[override]
                limits: DetectionLimits | None = None) -> Any:
        if self.training and targets is None:
            raise ValueError("targets are required in training mode")
        original_image_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        if self.training:
            return self.losses_from_features(image_list, features, targets)  # type: ignore[arg-type]
        return self.detect_from_features(image_list, features, original_image_sizes, limits=limits)


def fcos_seg_lite0_fpn(*, num_classes: int = 6, pretrained_backbone: bool = True, min_size: int = 384,
                       max_size: int = 384, fpn_channels: int = 128, score_thresh: float = 0.05,
                       nms_thresh: float = 0.6, detections_per_img: int = 100, topk_candidates: int = 1000,
                       freeze_bn: bool = True, seg_channels: int = 96, seg_loss_weight: float = 1.0,
                       roi_masks: bool = False, **kwargs: Any) -> FCOSSeg:
    """FCOS + semantic mask head on EfficientNet-Lite0 strides 8/16/32 + P6/P7.

    ``min_size = max_size = S`` makes the longer side of every photo ``S`` px.
    """
    check_detector_sizes(num_classes, min_size, max_size)
    body = EfficientNetLiteFPN(backbone="efficientnet_lite0", pretrained=pretrained_backbone,
                               out_indices=(2, 3, 4), out_channels=fpn_channels,
                               extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels), freeze_bn=freeze_bn)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5)
    return FCOSSeg(body, num_classes + 1, min_size=min_size, max_size=max_size, image_mean=body.image_mean,
                   image_std=body.image_std, anchor_generator=anchors, score_thresh=score_thresh,
                   nms_thresh=nms_thresh, detections_per_img=detections_per_img, topk_candidates=topk_candidates,
                   seg_channels=seg_channels, seg_loss_weight=seg_loss_weight, roi_masks=roi_masks, **kwargs)
