"""Alignment training on a toy sample cache (generated images, fake caption encoder): the loss
goes down, the best heads are saved and load back, evaluation runs on the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.models.alignment import (
    AlignmentHeads,
    AlignmentMeta,
    load_alignment,
    save_alignment,
)
from fashionlens.train.alignment import (
    AlignmentTrainConfig,
    contrastive_loss,
    train_alignment,
)
from fashionlens.train.config import ConfigError, load_config

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

KINDS = [("sweaters", "upper-body", "Sweater", (200, 30, 35)), ("jeans", "lower-body", "Jeans", (40, 80, 180)),
         ("dresses", "full-body", "Dress", (240, 220, 50)), ("boots", "footwear", "Boots", (20, 20, 20))]
COLOURS = {(200, 30, 35): "red", (40, 80, 180): "blue", (240, 220, 50): "yellow", (20, 20, 20): "black"}




@pytest.fixture
def fake_text(monkeypatch: pytest.MonkeyPatch, fake_text_encoder):
    import fashionlens.evaluate.search_report as report
    from fashionlens.search import text

    enc = fake_text_encoder
    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **k: enc)
    monkeypatch.setattr(report, "_TEXT_CACHE", {})
    return enc


def make_toy_cache(root: Path, per_split: tuple[tuple[str, int], ...] = (("train", 24), ("val", 8), ("test", 8))
                   ) -> Path:
    """A prepared sample cache: 64-px pictures whose colour and shape follow their labels."""
    (root / "images").mkdir(parents=True)
    rows = []
    n = 0
    for split, count in per_split:
        for i in range(count):
            cat, otype, label, rgb = KINDS[i % len(KINDS)]
            colour = rgb if (i // len(KINDS)) % 2 == 0 else (240, 240, 240)
            img = np.full((64, 64, 3), 128, np.uint8)
            h = 16 + 10 * (i % len(KINDS))
            img[8:8 + h, 8:56] = colour
            name = f"images/toy_{n:04d}.jpg"
            Image.fromarray(img).save(root / name, quality=95)
            rows.append({"file": name, "source": "rise" if i % 2 else "clothing", "group": f"g{n}", "split": split,
                         "categories": [cat], "object_type": otype, "source_label": label, "origin": f"x/{n}.jpg",
                         "attributes": {"colours": [COLOURS.get(colour, "white")]}, "bbox_xyxy": None})
            n += 1
    (root / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (root / "cache.json").write_text(json.dumps({"size": 64, "seed": 0, "fractions": [0.7, 0.15, 0.15]}), "utf-8")
    return root


def test_contrastive_loss_values() -> None:
    import torch

    img = torch.eye(3)
    txt = torch.eye(3)
    scale = torch.tensor(np.log(2.0), dtype=torch.float32)
    # perfect pairs, logits 2 on the diagonal, 0 elsewhere: each row's softmax gives e^2 / (e^2 + 2)
    expected = -np.log(np.e ** 2 / (np.e ** 2 + 2))
    assert float(contrastive_loss(img, txt, scale)) == pytest.approx(expected, rel=1e-5)
    # label-aware: all three positives for everyone → uniform targets = uniform logits' optimum
    pos = torch.ones(3, 3, dtype=torch.bool)
    same = torch.ones(3, 3) / np.sqrt(3)
    assert float(contrastive_loss(same, same, scale, pos)) == pytest.approx(np.log(3), rel=1e-5)


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_config(None, {"epoch": 3}, config_class=AlignmentTrainConfig)
    with pytest.raises(ConfigError, match="sources"):
        AlignmentTrainConfig(sources="rise")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="caption_keep"):
        AlignmentTrainConfig(caption_keep=0)
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "alignment.yaml", {"ship_to": None},
                      config_class=AlignmentTrainConfig)
    assert cfg.sources == ("clothing", "rise") and cfg.seed == 0 and cfg.ship_to is None


def test_train_on_a_toy_set(tmp_path: Path, fake_text, one_thread: None) -> None:
    cache = make_toy_cache(tmp_path / "cache")
    config = AlignmentTrainConfig(cache_dir=str(cache), data_root=str(tmp_path / "no-data"), out_dir=str(tmp_path / "out"),
                                  embedding_cache=str(tmp_path / "emb"), dim=16, epochs=12, batch_size=8, lr=1e-2,
                                  captions_per_sample=4, patience=50, threads=1, ship_to=str(tmp_path / "ship.npz"))
    summary = train_alignment(config, progress=False)
    history = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert len(history) == 12
    assert history[-1]["loss"] < history[0]["loss"]  # it learns
    assert summary["train_samples"] == 24 and summary["val_samples"] == 8
    best = max(history, key=lambda r: r["val_score"])
    assert summary["best"]["epoch"] == best["epoch"]
    heads = load_alignment(tmp_path / "out" / "alignment.npz")
    shipped = load_alignment(tmp_path / "ship.npz")
    assert heads.meta.to_dict() == shipped.meta.to_dict()
    assert (heads.meta.image_dim, heads.meta.text_dim, heads.meta.dim) == (1280, 384, 16)
    assert heads.meta.metrics["epoch"] == best["epoch"]
    assert heads.meta.temperature == pytest.approx(best["temperature"])
    x = np.random.default_rng(0).standard_normal((5, 1280)).astype(np.float32)
    p = heads.project_image(x)
    assert p.shape == (5, 16) and np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    # image embeddings (train with mirrors, val) and caption embeddings are cached
    assert len(list((tmp_path / "emb").glob("embeddings-*.npz"))) == 2
    assert len(list((tmp_path / "emb").glob("text-*.npy"))) == 1

    # evaluation on the toy test split
    from fashionlens.evaluate.search_report import evaluate_search

    result = evaluate_search(alignment=tmp_path / "out" / "alignment.npz", cache_dir=cache,
                             data_root=tmp_path / "no-data", embedding_cache=tmp_path / "emb",
                             out_dir=tmp_path / "eval", imagenet_baseline=False, progress=False)
    assert result["garments"] == 8
    for family in ("category", "category+colour", "full"):
        r = result["text_to_image"][family]
        assert r["queries"] >= 1 and 0 <= r["recall@1"] <= r["recall@5"] <= r["recall@10"] <= 1
    assert result["text_to_image"]["category"]["queries"] == 4
    cat = result["category"]
    assert cat["n"] == 8 and all(0 <= cat[k] <= 1 for k in ("zero_shot", "supervised", "linear_probe"))
    assert set(result["image_to_image"]) == {"finetuned_1280", "aligned_16"}
    assert json.loads((tmp_path / "eval" / "search_metrics.json").read_text())["garments"] == 8


def test_heads_file_round_trip_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    meta = AlignmentMeta(image_dim=6, text_dim=4, dim=3, hidden=5, temperature=0.05)
    arrays = {"image.0.weight": rng.standard_normal((5, 6)), "image.0.bias": rng.standard_normal(5),
              "image.2.weight": rng.standard_normal((3, 5)), "image.2.bias": rng.standard_normal(3),
              "text.0.weight": rng.standard_normal((5, 4)), "text.0.bias": rng.standard_normal(5),
              "text.2.weight": rng.standard_normal((3, 5)), "text.2.bias": rng.standard_normal(3)}
    path = save_alignment(meta, arrays, tmp_path / "h.npz")
    heads = load_alignment(path)
    assert heads.meta == meta
    # NumPy inference equals the torch modules used in training (fp16 storage)
    import torch
    from torch import nn

    mlp = nn.Sequential(nn.Linear(6, 5), nn.GELU(approximate="tanh"), nn.Linear(5, 3))
    mlp.load_state_dict({k.removeprefix("image."): torch.tensor(v.astype(np.float16).astype(np.float32))
                         for k, v in arrays.items() if k.startswith("image.")})
    x = rng.standard_normal((4, 6)).astype(np.float32)
    want = nn.functional.normalize(mlp(torch.from_numpy(x)), dim=-1).detach().numpy()
    np.testing.assert_allclose(heads.project_image(x), want, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected shape \(n, 4\)"):
        heads.project_text(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="missing arrays"):
        AlignmentHeads(meta, {k: v for k, v in arrays.items() if k != "text.2.bias"})
    with pytest.raises(ValueError, match="expected shape"):
        save_alignment(AlignmentMeta(image_dim=7, text_dim=4, dim=3, hidden=5), arrays, tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="could not read"):
        load_alignment(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_alignment(tmp_path / "missing.npz")


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
CACHE = Path(__file__).resolve().parents[2] / "runs" / "cache" / "classifier-224-s0"


@pytest.mark.data
@pytest.mark.skipif(not (SHARED / "rise").is_dir() or not (SHARED / "clothing").is_dir()
                    or not (CACHE / "samples.jsonl").is_file(),
                    reason="../shared/datasets or the prepared sample cache not present")
def test_cache_split_is_the_seeded_group_split() -> None:
    """The alignment trains on the cache's train split: it must be group_split(seed=0)'s, so no test
    photo (or sender/item group) reaches training."""
    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split
    from fashionlens.train.alignment_data import alignment_samples, facts_for_samples

    samples = alignment_samples(AlignmentTrainConfig(data_root=str(SHARED), cache_dir=str(CACHE)), progress=False)
    split_of = {}
    for name in ("clothing", "rise"):
        for split, recs in group_split(read_dataset(name, SHARED), seed=0).items():
            split_of.update({(name, Path(r.path).name): split for r in recs})
    assert samples and all(split_of[(s.source, Path(s.origin).name)] == s.split for s in samples)
    groups = {split: {s.group for s in samples if s.split == split} for split in ("train", "val", "test")}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    facts = facts_for_samples([s for s in samples if s.source == "rise"][:50], SHARED)
    assert any(f.gender for f in facts)  # RISE extras are read
