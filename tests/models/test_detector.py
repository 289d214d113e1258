"""Detectors: builders, registry, train/eval forward on tiny synthetic images, packaged backbone weights."""

from __future__ import annotations

import math

import pytest
import torch

from fashionlens.models.backbones import create_backbone
from fashionlens.models.detector import (
    DETECTORS,
    EfficientNetLiteFPN,
    create_detector,
    detector_class_names,
    fcos_lite0_fpn,
    maskrcnn_lite0_fpn,
)
from fashionlens.taxonomy import load_taxonomy

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def _batch(with_masks: bool) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 256, 256, generator=g) for _ in range(2)]
    targets = []
    for boxes, labels in (([[20.0, 30.0, 120.0, 200.0], [150.0, 60.0, 240.0, 250.0]], [1, 4]),
                          ([[40.0, 40.0, 200.0, 180.0]], [2])):
        t = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels, dtype=torch.int64)}
        if with_masks:
            masks = torch.zeros(len(boxes), 256, 256, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes):
                masks[i, int(y0):int(y1), int(x0):int(x1)] = 1
            t["masks"] = masks
        targets.append(t)
    return images, targets


def test_class_names_are_background_plus_object_types() -> None:
    names = detector_class_names()
    assert names[0] == "__background__"
    assert names[1:] == list(load_taxonomy().object_types)
    assert len(names) == 7


def test_registry_and_errors() -> None:
    assert set(DETECTORS) == {"fcos-lite0-fpn", "fcos-seg-lite0-fpn", "maskrcnn-lite0-fpn"}
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        create_detector("yolo")
    with pytest.raises(ValueError, match="num_classes"):
        fcos_lite0_fpn(num_classes=0, pretrained_backbone=False)
    with pytest.raises(ValueError, match="min_size"):
        maskrcnn_lite0_fpn(min_size=512, max_size=256, pretrained_backbone=False)
    with pytest.raises(TypeError):
        fcos_lite0_fpn(6)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize("name, with_masks", [("fcos-lite0-fpn", False), ("fcos-seg-lite0-fpn", True),
                                              ("maskrcnn-lite0-fpn", True)])
def test_train_losses_finite_and_eval_outputs(name: str, with_masks: bool) -> None:
    torch.manual_seed(0)
    # 256×256 inputs; the detector's transform resizes them to 128 px to keep the test fast on 2 cores
    small = {"box_batch_size_per_image": 64, "rpn_batch_size_per_image": 64, "box_detections_per_img": 10,
             "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100} if name.startswith("maskrcnn") else {
             "detections_per_img": 10}
    model = create_detector(name, pretrained_backbone=False, min_size=128, max_size=128, **small)
    assert model.backbone.out_channels == 128
    images, targets = _batch(with_masks)
    model.train()
    losses = model(images, targets)
    assert losses and all(math.isfinite(float(v.detach())) for v in losses.values())
    if with_masks:
        assert ("loss_mask" if name.startswith("maskrcnn") else "seg") in losses
    sum(losses.values()).backward()

    model.eval()
    with torch.no_grad():
        out = model(images[:1])
    [pred] = out
    n = pred["boxes"].shape[0]
    assert pred["boxes"].shape == (n, 4) and pred["labels"].shape == (n,) and pred["scores"].shape == (n,)
    assert pred["labels"].dtype == torch.int64
    if n:
        assert int(pred["labels"].min()) >= 1 and int(pred["labels"].max()) <= 6
    if with_masks:
        assert pred["masks"].shape == (n, 1, 256, 256)


def test_backbone_weights_equal_the_packaged_ones() -> None:
    fpn = EfficientNetLiteFPN(pretrained=True, freeze_bn=False)
    reference = create_backbone("efficientnet_lite0", pretrained=True).state_dict()
    feats = fpn.body.state_dict()
    assert len(feats) == 288
    for key, value in feats.items():
        assert torch.equal(value, reference[key]), key
    # frozen batch norm keeps the same values (minus num_batches_tracked)
    frozen = EfficientNetLiteFPN(pretrained=True, freeze_bn=True).body.state_dict()
    for key, value in frozen.items():
        assert torch.equal(value, reference[key]), key
    assert fpn.feature_channels == [40, 112, 320] and fpn.feature_strides == [8, 16, 32]


def test_fpn_output_levels() -> None:
    det = fcos_lite0_fpn(pretrained_backbone=False)
    feats = det.backbone(torch.zeros(1, 3, 128, 128))
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
