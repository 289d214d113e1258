"""End-to-end smoke tests of classifier training on a tiny generated sample cache (CPU, 64 px)."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.models.backbones import create_backbone
from fashionlens.models.classifier import load_classifier
from fashionlens.taxonomy import load_mapping, load_taxonomy
from fashionlens.train.classifier import balance_weights, ensure_cache, train_classifier
from fashionlens.train.config import ClassifierTrainConfig
from fashionlens.train.samples import SAMPLES_FILE, Sample

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

FRACTIONS = (0.7, 0.15, 0.15)
CLOTHING_LABELS = ("T-Shirt", "Longsleeve", "Pants", "Shoes", "Dress", "Hat", "Shorts", "Skirt")
RISE_TYPES = ("Sweater", "Jacket", "Cardigan", "Hoodie", "Vest")


def _write_cache(cache: Path, n: int = 24, seed: int = 0, fractions=FRACTIONS) -> list[Sample]:
    """A cache folder as ``prepare_samples`` would write it, with random coloured 64×64 JPEGs."""
    rng = random.Random(1)
    np_rng = np.random.default_rng(1)
    tax = load_taxonomy()
    colours = tax.attribute("colours")
    (cache / "images").mkdir(parents=True)
    splits = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    samples = []
    for i in range(n):
        name = rng.choice(colours.values[:-1])  # no multicolour: it has no reference RGB
        rgb = np.clip(np.array(colours.rgb[name]) + np_rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
        file = f"images/gen_{i:03d}.jpg"
        Image.fromarray(rgb).save(cache / file, "JPEG", quality=90)
        kind = i % 3
        if kind == 0:
            label = CLOTHING_LABELS[i // 3 % len(CLOTHING_LABELS)]
            m = load_mapping("clothing").resolve(label)
            s = Sample(file=file, source="clothing", group=f"clothing/{i}", split=splits[i],
                       categories=list(m.categories), object_type=m.object_type,
                       attributes={**m.attributes, "colours": [name]}, source_label=label)
        elif kind == 1:
            label = RISE_TYPES[i // 3 % len(RISE_TYPES)]
            m = load_mapping("rise").resolve(label)
            s = Sample(file=file, source="rise", group=f"rise/{i}", split=splits[i],
                       categories=list(m.categories), object_type=m.object_type,
                       attributes={"colours": [name], "material": rng.choice(["cotton", "wool", "polyester"]),
                                   "fit": "regular"}, source_label=label)
        else:
            cat = tax.categories[i % len(tax.categories)]
            s = Sample(file=file, source="ccp", group=f"ccp/{i}", split=splits[i], categories=[cat],
                       object_type=tax.object_type_of(cat), source_label=cat)
        samples.append(s)
    with (cache / SAMPLES_FILE).open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(asdict(s)) + "\n")
    meta = {"size": 64, "seed": seed, "fractions": list(fractions), "margin": 0.1, "quality": 90, "count": n}
    (cache / "cache.json").write_text(json.dumps(meta), "utf-8")
    return samples


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train") / "cache"
    _write_cache(path)
    return path


def _config(cache: Path, out: Path, **kw) -> ClassifierTrainConfig:
    base = dict(data_root=str(cache.parent / "no-datasets"), cache_dir=str(cache), out_dir=str(out),
                input_size=64, epochs=2, batch_size=8, workers=0, mode="linear_probe", balance="oversample",
                device="cpu", seed=0, split_fractions=FRACTIONS, warmup_epochs=0.5, patience=10)
    base.update(kw)
    return ClassifierTrainConfig(**base)


def _metrics_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text("utf-8").splitlines() if line.strip()]


def _check_outputs(out: Path, epochs: int) -> dict:
    for name in ("metrics.jsonl", "last.pt", "best.pt", "model.pt", "eval.json", "config.json"):
        assert (out / name).is_file(), name
    lines = _metrics_lines(out)
    assert [m["epoch"] for m in lines] == list(range(1, epochs + 1))
    for m in lines:
        assert np.isfinite(m["train_loss"]) and 0 <= m["val_score"] <= 1
    result = json.loads((out / "eval.json").read_text("utf-8"))
    assert set(result) == {"val", "test", "thresholds"}
    assert result["test"]["n_samples"] == 4 and result["val"]["n_samples"] == 4
    assert "colours" in result["thresholds"]
    model = load_classifier(out / "model.pt")
    assert model.meta.input_size == 64
    assert model.meta.thresholds == result["thresholds"]
    assert model.meta.metrics["test"]["n"] == 4
    assert model.meta.extra["splits"] == {"train": 16, "val": 4, "test": 4}
    with torch.inference_mode():
        outs = model(torch.zeros(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [h.num_outputs for h in model.meta.heads]
    return result


def test_linear_probe_trains_resumes_and_does_not_retrain(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    # a run "killed" after epoch 1 ...
    train_classifier(_config(cache, out, epochs=1))
    assert [m["epoch"] for m in _metrics_lines(out)] == [1]
    # ... continues from last.pt with epoch 2 only
    result = train_classifier(_config(cache, out, epochs=2))
    _check_outputs(out, epochs=2)
    assert result["test"]["n_samples"] == 4
    # the frozen backbone (weights and BN statistics) is still the ImageNet one
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    imagenet = create_backbone("efficientnet_lite0").state_dict()
    for k, v in imagenet.items():
        assert torch.equal(best[f"backbone.{k}"], v), k
    # a completed run is not trained again
    last_mtime = (out / "last.pt").stat().st_mtime_ns
    train_classifier(_config(cache, out, epochs=2))
    assert len(_metrics_lines(out)) == 2
    assert (out / "last.pt").stat().st_mtime_ns == last_mtime


def test_finetune_with_class_weights(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "finetune"
    train_classifier(_config(cache, out, mode="finetune", balance="class_weights"))
    _check_outputs(out, epochs=2)
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    stem = create_backbone("efficientnet_lite0").state_dict()["conv_stem.weight"]
    assert not torch.equal(best["backbone.conv_stem.weight"], stem)
    config = json.loads((out / "config.json").read_text("utf-8"))
    assert config["mode"] == "finetune" and config["balance"] == "class_weights"


def test_finetune_top_on_cached_features(cache: Path, tmp_path: Path) -> None:
    from fashionlens.models.classifier import GarmentClassifier, new_classifier_meta
    from fashionlens.train.feature_cache import FrozenStem, TopOnly

    out = tmp_path / "top"
    train_classifier(_config(cache, out, mode="finetune_top", freeze_blocks=5, feature_views=2,
                             balance="class_weights"))
    _check_outputs(out, epochs=2)
    size = _config(cache, out).input_size
    assert sorted(p.name for p in cache.glob("features-*.pt")) == [
        f"features-efficientnet_lite0-packaged-{size}px-k5-test-v1-s0.pt",
        f"features-efficientnet_lite0-packaged-{size}px-k5-train-v2-s0.pt",
        f"features-efficientnet_lite0-packaged-{size}px-k5-val-v1-s0.pt"]
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    imagenet = create_backbone("efficientnet_lite0").state_dict()
    # stem and blocks 0-4 frozen; blocks 5-6 and the head conv trained
    for k, v in imagenet.items():
        frozen = k.startswith(("conv_stem.", "bn1.")) or (k.startswith("blocks.") and int(k.split(".")[1]) < 5)
        if frozen:
            assert torch.equal(best[f"backbone.{k}"], v), k
    assert not torch.equal(best["backbone.blocks.6.0.conv_pw.weight"], imagenet["blocks.6.0.conv_pw.weight"])
    assert not torch.equal(best["backbone.conv_head.weight"], imagenet["conv_head.weight"])
    # what was trained on cached (fp16) stem features is the full model that gets saved
    model = GarmentClassifier(new_classifier_meta(input_size=64), pretrained_backbone=False)
    model.load_state_dict(best)
    model.eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        full = model(x)
        split = TopOnly(model, 5).eval()(FrozenStem(model.backbone, 5).eval()(x).half())
    for a, b in zip(full, split):
        assert torch.allclose(a.softmax(-1), b.softmax(-1), atol=1e-2)


def test_cache_prepared_with_other_split_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _write_cache(cache, n=6, seed=5)
    with pytest.raises(ValueError, match="another cache_dir"):
        ensure_cache(_config(cache, tmp_path / "out"))


def test_ensure_cache_filters_sources(cache: Path, tmp_path: Path) -> None:
    samples = ensure_cache(_config(cache, tmp_path / "out", sources=["rise"]))
    assert samples and {s.source for s in samples} == {"rise"}


def test_balance_weights() -> None:
    def s(cat: str) -> Sample:
        return Sample(file="", source="ccp", group="", split="train", categories=[cat], object_type=None)

    samples = [s("jeans")] * 9 + [s("hats")]
    w = balance_weights(samples)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] == pytest.approx(3 * w[0])  # 1/sqrt(1) vs 1/sqrt(9)
