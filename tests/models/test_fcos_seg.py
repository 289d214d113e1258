"""FCOSSeg: semantic targets, the mask head, losses from cached features, masks read off the semantic map.

Detectors are the tiny 128 px ones of ``tests/conftest.py`` (no ImageNet weights)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from fashionlens.models.detector import EfficientNetLiteFPN, create_detector
from fashionlens.models.fcos_seg import (
    IGNORE_INDEX,
    FCOSSeg,
    SemanticMaskHead,
    fcos_seg_lite0_fpn,
    semantic_targets,
)

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch


def _mask(size: tuple[int, int], rows: slice, cols: slice) -> torch.Tensor:
    m = torch.zeros(size, dtype=torch.uint8)
    m[rows, cols] = 1
    return m


def _expected(size: tuple[int, int], *regions: tuple[slice, slice, int]) -> torch.Tensor:
    out = torch.zeros(size, dtype=torch.int64)
    for rows, cols, value in regions:
        out[rows, cols] = value
    return out


# ------------------------------------------------------------------------------ semantic_targets

SEMANTIC_CASES = [
    # (name, target, size, stride, expected (H/stride, W/stride))
    ("no masks key", {"labels": torch.tensor([1])}, (8, 8), 4, _expected((2, 2))),
    ("zero masks", {"masks": torch.zeros((0, 8, 8), dtype=torch.uint8), "labels": torch.zeros(0, dtype=torch.int64)},
     (8, 8), 4, _expected((2, 2))),
    ("one mask, stride 4 (nearest: pixel 4·i)",
     {"masks": _mask((16, 16), slice(0, 8), slice(4, 12))[None], "labels": torch.tensor([2])},
     (16, 16), 4, _expected((4, 4), (slice(0, 2), slice(1, 3), 2))),
    ("stride 1 keeps every pixel",
     {"masks": _mask((4, 4), slice(1, 3), slice(0, 1))[None], "labels": torch.tensor([6])},
     (4, 4), 1, _expected((4, 4), (slice(1, 3), slice(0, 1), 6))),
    ("later instances overwrite earlier ones",
     {"masks": torch.stack([_mask((4, 4), slice(0, 4), slice(0, 4)), _mask((4, 4), slice(0, 2), slice(0, 2))]),
      "labels": torch.tensor([1, 3])},
     (4, 4), 1, _expected((4, 4), (slice(0, 4), slice(0, 4), 1), (slice(0, 2), slice(0, 2), 3))),
    ("box-only instances are ignored",
     {"masks": torch.stack([_mask((4, 4), slice(0, 2), slice(0, 4)), _mask((4, 4), slice(2, 4), slice(0, 4))]),
      "labels": torch.tensor([1, 2]), "mask_from_box": torch.tensor([False, True])},
     (4, 4), 1, _expected((4, 4), (slice(0, 2), slice(0, 4), 1), (slice(2, 4), slice(0, 4), IGNORE_INDEX))),
    ("masks smaller than the padded size sit top-left",
     {"masks": _mask((2, 3), slice(0, 2), slice(0, 3))[None], "labels": torch.tensor([4])},
     (4, 4), 1, _expected((4, 4), (slice(0, 2), slice(0, 3), 4))),
]


@pytest.mark.parametrize("name, target, size, stride, expected", SEMANTIC_CASES, ids=[c[0] for c in SEMANTIC_CASES])
def test_semantic_targets(name: str, target: dict[str, torch.Tensor], size: tuple[int, int], stride: int,
                          expected: torch.Tensor) -> None:
    out = semantic_targets([target], size, stride)
    assert out.dtype == torch.int64 and out.shape == (1, *expected.shape)
    assert torch.equal(out[0], expected)


def test_semantic_targets_batches_images() -> None:
    a = {"masks": _mask((4, 4), slice(0, 1), slice(0, 1))[None], "labels": torch.tensor([5])}
    b = {"labels": torch.zeros(0, dtype=torch.int64)}
    out = semantic_targets([a, b], (4, 4), stride=1)
    assert out.shape == (2, 4, 4)
    assert int(out[0, 0, 0]) == 5 and int(out[0].sum()) == 5 and int(out[1].sum()) == 0


# ------------------------------------------------------------------------------ SemanticMaskHead


@pytest.mark.parametrize("channels, groups", [(32, 16), (12, 1)])
def test_semantic_mask_head_shapes(channels: int, groups: int) -> None:
    head = SemanticMaskHead(8, 7, channels=channels)
    out = head(torch.rand(2, 8, 5, 6))
    assert out.shape == (2, 7, 5, 6)
    norms = [m for m in head.tower if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 2 and all(n.num_groups == groups for n in norms)


# ------------------------------------------------------------------------------ builder


def test_builder_and_registry() -> None:
    model = create_detector("fcos-seg-lite0-fpn", pretrained_backbone=False, min_size=128, max_size=128,
                            fpn_channels=64, seg_channels=16, num_classes=3, seg_loss_weight=0.5)
    assert isinstance(model, FCOSSeg)
    assert model.seg_head.classifier.out_channels == 4  # 3 garment classes + background
    assert model.head.classification_head.num_classes == 4
    assert model.seg_loss_weight == 0.5
    assert model.transform.min_size == (128,) and model.transform.max_size == 128


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, "num_classes"),
    ({"min_size": 256, "max_size": 128}, "min_size"),
    ({"min_size": 16, "max_size": 16}, "min_size"),
])
def test_builder_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fcos_seg_lite0_fpn(pretrained_backbone=False, **kwargs)


def test_builder_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        fcos_seg_lite0_fpn(6)  # type: ignore[misc]


# ------------------------------------------------------------------------------ backbone stem split


def test_forward_stem_then_rest_equals_forward() -> None:
    torch.manual_seed(0)
    body = EfficientNetLiteFPN(pretrained=False, out_channels=32).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        stem = body.forward_stem(x)
        split = body.forward_from_stem(stem)
        whole = body(x)
    assert stem.shape[-2:] == (8, 12)  # stride 8: the first pyramid level's input
    assert stem.shape[1] == body.feature_channels[0]
    assert list(split) == list(whole) == ["0", "1", "2"]  # no extra block
    for k in whole:
        torch.testing.assert_close(split[k], whole[k])


# ------------------------------------------------------------------------------ training


def _targets() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 128, 128, generator=g)]
    masks = torch.stack([_mask((128, 128), slice(10, 60), slice(20, 80)), _mask((128, 128), slice(90, 120), slice(30, 60))])
    return images, [{"boxes": torch.tensor([[20.0, 10.0, 80.0, 60.0], [30.0, 90.0, 60.0, 120.0]]),
                     "labels": torch.tensor([1, 4]), "masks": masks}]


def test_training_needs_targets(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector().train()
    with pytest.raises(ValueError, match="targets are required"):
        model([torch.rand(3, 64, 64)])


def test_losses_finite_and_semantic_argument_matches_targets(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector().train()
    images, targets = _targets()
    image_list, targets = model.transform(images, targets)
    features = model.backbone(image_list.tensors)
    losses = model.losses_from_features(image_list, features, targets)
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness", "seg"}
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    semantic = semantic_targets(targets, tuple(image_list.tensors.shape[-2:]))
    again = model.losses_from_features(image_list, features, targets, semantic)
    torch.testing.assert_close(again["seg"], losses["seg"])
    sum(losses.values()).backward()
    assert model.seg_head.classifier.weight.grad is not None


def test_seg_loss_weight_scales_the_seg_loss(make_detector: Callable[..., FCOSSeg]) -> None:
    images, targets = _targets()
    one = make_detector().train()(images, [dict(t) for t in targets])["seg"]
    half = make_detector(seg_loss_weight=0.5).train()(images, [dict(t) for t in targets])["seg"]
    torch.testing.assert_close(half, 0.5 * one)


def test_seg_loss_ignores_box_only_pixels(make_detector: Callable[..., FCOSSeg]) -> None:
    """With every garment pixel ignored and no background left, the seg loss has nothing to count."""
    model = make_detector().train()
    images = [torch.rand(3, 128, 128)]
    full = torch.ones((1, 128, 128), dtype=torch.uint8)
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 128.0, 128.0]]), "labels": torch.tensor([2]), "masks": full,
                "mask_from_box": torch.tensor([True])}]
    loss = model(images, targets)["seg"]
    assert math.isnan(float(loss)) or float(loss) == 0.0


# ------------------------------------------------------------------------------ inference


def test_eval_outputs_and_masks(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector(score_thresh=0.0)
    with torch.no_grad():
        [out] = model([torch.rand(3, 100, 160)])
    n = len(out["boxes"])
    assert n == 10  # detections_per_img
    assert out["masks"].shape == (n, 1, 100, 160) and out["masks"].dtype == torch.float32
    assert float(out["masks"].min()) >= 0.0 and float(out["masks"].max()) <= 1.0
    assert bool((out["labels"] >= 1).all()) and bool((out["labels"] <= 6).all())
    # masks are 0 outside their box
    ys = torch.arange(100)[:, None] + 0.5
    xs = torch.arange(160)[None, :] + 0.5
    for m, (x0, y0, x1, y1) in zip(out["masks"][:, 0], out["boxes"]):
        outside = (xs < x0) | (xs > x1) | (ys < y0) | (ys > y1)
        assert float(m[outside].abs().sum()) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_background_is_never_a_detection(seed: int, make_detector: Callable[..., FCOSSeg]) -> None:
    """torchvision's FCOS scores label 0 like any class; an untrained network would report it."""
    model = make_detector(seed=seed, score_thresh=0.0, detections_per_img=200, topk_candidates=1000)
    with torch.no_grad():
        [out] = model([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(seed))])
    assert len(out["labels"]) > 0 and int(out["labels"].min()) >= 1


def test_forced_detector_masks_fill_their_boxes(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector("footwear")
    with torch.no_grad():
        [out] = model([torch.rand(3, 100, 160)])
    assert len(out["boxes"]) > 0
    assert set(out["labels"].tolist()) == {4}  # footwear = object type 3 + 1
    assert bool((out["scores"] > 0.99).all())
    for m, (x0, y0, x1, y1) in zip(out["masks"][:, 0], out["boxes"]):
        area = float((x1 - x0) * (y1 - y0))
        assert abs(float((m > 0.5).sum()) - area) <= 0.05 * area + 2 * float(x1 - x0 + y1 - y0)


def test_no_detections_gives_empty_outputs(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector(score_thresh=1.0)
    with torch.no_grad():
        [out] = model([torch.rand(3, 64, 80)])
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,)
    assert out["masks"].shape == (0, 1, 64, 80)


def test_detect_from_features_without_masks(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector("bag")
    image = torch.rand(3, 96, 128)
    image_list, _ = model.transform([image])
    features = model.backbone(image_list.tensors)
    [out] = model.detect_from_features(image_list, features, [(96, 128)], with_masks=False)
    assert "masks" not in out and len(out["boxes"]) > 0


def test_mask_size_limit_lowers_mask_resolution_not_output_size(make_detector: Callable[..., FCOSSeg]) -> None:
    image = torch.rand(3, 100, 160)
    model = make_detector("upper-body")
    with torch.no_grad():
        [full] = model([image])
        model.mask_size_limit = 2_000  # n·H·W = 10·100·160 ≫ limit
        [low] = model([image])
    torch.testing.assert_close(low["boxes"], full["boxes"])
    assert low["masks"].shape == full["masks"].shape == (len(full["boxes"]), 1, 100, 160)
    # coarser, but about the same pixels
    agree = ((low["masks"] > 0.5) == (full["masks"] > 0.5)).float().mean()
    assert float(agree) > 0.8


# ----------------------------------------------------------------------------- RoI mask head


def test_roi_mask_head_loss_and_masks_per_detection(make_detector: Callable[..., FCOSSeg], one_thread: None) -> None:
    model = make_detector("upper-body", roi_masks=True)
    assert model.roi_mask is not None
    image = torch.rand(3, 96, 128)
    image_list, _ = model.transform([image])
    features = model.backbone(image_list.tensors)
    box = torch.tensor([[10.0, 10.0, 70.0, 60.0]])
    mask = torch.zeros((1, *image_list.tensors.shape[-2:]), dtype=torch.uint8)
    mask[0, 20:50, 20:60] = 1
    head = model.roi_mask
    head.train()
    loss = head.loss(features, [{"boxes": box, "labels": torch.tensor([1]), "masks": mask}], image_list.image_sizes)
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    assert head.predictor.mask_fcn_logits.weight.grad is not None
    head.eval()
    with torch.no_grad():
        [out] = model([image])
    n = len(out["boxes"])
    assert n > 0 and out["masks"].shape == (n, 1, 96, 128)
    # masks come from the RoI head (pasted per box), not the semantic map: nothing outside the box (+1 px)
    x0, y0, x1, y1 = out["boxes"][0].tolist()
    m = out["masks"][0, 0]
    assert float(m[:, int(x1) + 2:].sum()) == 0.0 and float(m[int(y1) + 2:, :].sum()) == 0.0


def test_roi_mask_head_with_no_boxes(make_detector: Callable[..., FCOSSeg]) -> None:
    model = make_detector(roi_masks=True)
    image_list, _ = model.transform([torch.rand(3, 64, 64)])
    features = model.backbone(image_list.tensors)
    [probs] = model.roi_mask.predict(features, [torch.zeros((0, 4))], [torch.zeros(0, dtype=torch.int64)],
                                     image_list.image_sizes)
    assert probs.shape == (0, 1, 28, 28)
