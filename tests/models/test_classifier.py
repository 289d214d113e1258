"""The multi-head garment classifier: heads from the taxonomy, forward shapes, weights files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fashionlens.models.classifier import (
    WEIGHTS_FORMAT,
    ClassifierMeta,
    GarmentClassifier,
    load_classifier,
    new_classifier_meta,
    save_classifier,
)
from fashionlens.models.heads import ATTRIBUTE_HEADS, HeadSpec
from fashionlens.taxonomy import load_taxonomy

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def test_new_classifier_meta_heads_follow_the_taxonomy() -> None:
    tax = load_taxonomy()
    meta = new_classifier_meta()
    names = [h.name for h in meta.heads]
    assert names == ["category", "pattern", "colours", "material", "sleeve", "neckline", "fit"]
    assert tuple(names[1:]) == ATTRIBUTE_HEADS
    cat = meta.head("category")
    assert cat.kind == "single"
    assert cat.num_outputs == 25
    assert cat.values == tax.categories
    for h in meta.heads[1:]:
        group = tax.attribute(h.name)
        assert h.kind == group.kind
        assert h.values == group.values
    assert meta.head("colours").kind == "multi"
    assert meta.backbone == "efficientnet_lite0"
    assert meta.input_size == 224
    assert meta.mean == (0.5, 0.5, 0.5) and meta.std == (0.5, 0.5, 0.5)
    with pytest.raises(KeyError, match="no head 'style'"):
        meta.head("style")


def test_new_classifier_meta_input_size_override() -> None:
    assert new_classifier_meta(input_size=160).input_size == 160
    assert new_classifier_meta(backbone="efficientnet_lite2").input_size == 260
    with pytest.raises(ValueError, match="unknown backbone"):
        new_classifier_meta(backbone="resnet")


def test_meta_dict_round_trip() -> None:
    meta = new_classifier_meta(name="x", version="3")
    meta.thresholds = {"colours": 0.35}
    meta.metrics = {"test": {"category_accuracy": 0.8}}
    back = ClassifierMeta.from_dict(meta.to_dict())
    assert back == meta
    assert all(isinstance(h, HeadSpec) for h in back.heads)


@pytest.fixture(scope="module")
def model() -> GarmentClassifier:
    torch.manual_seed(0)
    return GarmentClassifier(new_classifier_meta(), pretrained_backbone=False).eval()


def test_forward_gives_one_tensor_per_head(model: GarmentClassifier) -> None:
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        out = model(x)
    assert isinstance(out, tuple)
    assert len(out) == len(model.meta.heads)
    for head, logits in zip(model.meta.heads, out):
        assert logits.shape == (2, head.num_outputs), head.name
        assert torch.isfinite(logits).all()
    assert out[0].shape == (2, 25)


def test_save_load_round_trip(model: GarmentClassifier, tmp_path: Path) -> None:
    model.meta.thresholds = {"colours": 0.4}
    model.meta.metrics = {"test": {"category_accuracy": 0.5}}
    model.meta.extra = {"config": {"sources": ("rise",)}}
    path = tmp_path / "model.pt"
    save_classifier(model, path)
    assert not (tmp_path / "model.pt.tmp").exists()
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["format"] == WEIGHTS_FORMAT
    floats = [v for v in blob["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)

    loaded = load_classifier(path)
    assert not loaded.training
    assert loaded.meta.to_dict() == model.meta.to_dict()
    assert loaded.meta.heads == model.meta.heads
    assert loaded.meta.thresholds == {"colours": 0.4}
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        a, b = model(x), loaded(x)
    for ha, hb in zip(a, b):
        assert hb.dtype == torch.float32
        assert torch.allclose(ha, hb, atol=1e-2, rtol=0), float((ha - hb).abs().max())


def test_save_full_precision(model: GarmentClassifier, tmp_path: Path) -> None:
    path = tmp_path / "fp32.pt"
    save_classifier(model, path, half=False)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["state_dict"]["heads.category.weight"].dtype == torch.float32
    loaded = load_classifier(path)
    assert torch.equal(loaded.heads["category"].weight, model.heads["category"].weight)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_classifier(tmp_path / "nope.pt")


def test_load_non_fashionlens_file_raises(tmp_path: Path, model: GarmentClassifier) -> None:
    plain = tmp_path / "state_dict.pt"
    torch.save(model.state_dict(), plain)
    with pytest.raises(ValueError, match="expected a fashionlens/classifier-weights/v1 file"):
        load_classifier(plain)
    other = tmp_path / "other.pt"
    torch.save({"format": "something/else", "meta": {}, "state_dict": {}}, other)
    with pytest.raises(ValueError, match="something/else"):
        load_classifier(other)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="Tensor"):
        load_classifier(tensor)


def test_load_garbage_file_raises_value_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"hello, this is not a weights file")
    with pytest.raises(ValueError):
        load_classifier(garbage)
