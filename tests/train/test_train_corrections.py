"""Retraining from review corrections (issue 25, item 5): reading the store's reviewed labels (unknown values,
contradictions, missing photos), cutting the garments, the heads-only fine-tune, and the whole
``train classifier --corrections`` command on a tiny generated cache (CPU, 64 px)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.models.classifier import (
    GarmentClassifier,
    load_classifier,
    new_classifier_meta,
    save_classifier,
)
from fashionlens.review.queue import build_queue
from fashionlens.review.store import ReviewStore
from fashionlens.taxonomy import load_taxonomy
from fashionlens.train.corrections import (
    NoCorrectionsError,
    prepare_correction_samples,
    read_corrections,
)
from fashionlens.train.feature_cache import fit_heads, head_probs
from fashionlens.train.samples import SAMPLES_FILE, Sample

pytestmark = pytest.mark.train  # needs torch


def _photo(path: Path, colour: tuple[int, int, int] = (40, 80, 180), size: tuple[int, int] = (96, 128)) -> Path:
    w, h = size
    img = np.full((h, w, 3), 235, np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def _garment(bbox: tuple[int, int, int, int], category: dict[str, Any], object_type: str = "upper-body",
             attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"object_type": object_type, "score": 0.95, "bbox": list(bbox), "mask": None, "category": category,
            "attributes": attributes or {}}


def _unsure(*candidates: tuple[str, float]) -> dict[str, Any]:
    return {"id": None, "score": candidates[0][1], "uncertain": True,
            "candidates": [{"id": c, "score": s} for c, s in candidates]}


def _results(path: Path, lines: list[tuple[Path, list[dict[str, Any]]]]) -> Path:
    path.write_text("".join(json.dumps({"schema": "fashionlens/result/v2",
                                        "image": {"path": str(photo), "width": 96, "height": 128},
                                        "garments": garments, "error": None}) + "\n"
                            for photo, garments in lines), "utf-8")
    return path


def _heads():
    return new_classifier_meta().heads


BOX = (24, 32, 48, 64)


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    """Tasks (queue order aside): two copies of one garment answered differently, a sure jeans garment with an
    out-of-vocabulary pattern, a garment whose photo is gone, one whose object type and category disagree,
    one left pending and one skipped."""
    photo = _photo(tmp_path / "photos" / "a.jpg")
    other = _photo(tmp_path / "photos" / "b.jpg", colour=(200, 30, 30))
    gone = tmp_path / "photos" / "gone.jpg"
    tshirt_or_shirt = _unsure(("t-shirts", 0.45), ("shirts", 0.40))
    jeans = _garment((10, 60, 60, 60), {"id": "jeans", "score": 0.97}, "lower-body",
                     {"pattern": {"id": "houndstooth-x", "score": 0.9}})
    first = _results(tmp_path / "first.jsonl", [(photo, [_garment(BOX, tshirt_or_shirt), jeans]),
                                                (gone, [_garment(BOX, {"id": "dresses", "score": 0.95},
                                                                 "full-body", {"pattern": _unsure(("plain", 0.5),
                                                                                                  ("striped", 0.3))})]),
                                                (other, [_garment(BOX, tshirt_or_shirt)] * 3)])
    second = _results(tmp_path / "second.jsonl", [(photo, [_garment(BOX, tshirt_or_shirt)])])
    s = ReviewStore(tmp_path / "review.sqlite")
    build_queue(first, s, include_sure=True)
    build_queue(second, s, include_sure=True)
    tasks = {(Path(t.source).name, t.line, t.index): t.id for t in s.tasks()}
    s.answer(tasks[("first.jsonl", 1, 0)], "category", "t-shirts", reviewer="ann")
    s.finish(tasks[("first.jsonl", 1, 0)], "accept")
    s.answer(tasks[("second.jsonl", 1, 0)], "category", "shirts", reviewer="bob")   # contradicts ann
    s.finish(tasks[("second.jsonl", 1, 0)], "accept")
    s.finish(tasks[("first.jsonl", 1, 1)], "accept")                                 # jeans, pattern unknown
    s.answer(tasks[("first.jsonl", 2, 0)], "pattern", "striped")
    s.finish(tasks[("first.jsonl", 2, 0)], "accept")                                 # photo gone
    s.answer(tasks[("first.jsonl", 3, 0)], "category", "t-shirts")
    s.answer(tasks[("first.jsonl", 3, 0)], "object_type", "footwear")                # disagrees with t-shirts
    s.finish(tasks[("first.jsonl", 3, 0)], "accept")
    s.answer(tasks[("first.jsonl", 3, 1)], "category", "shirts")                     # pending: not read
    s.finish(tasks[("first.jsonl", 3, 2)], "skip")                                   # skipped: not read
    return s


def test_read_corrections_counts_what_it_leaves_out(store: ReviewStore) -> None:
    corrections, report = read_corrections(store, _heads())
    assert report.tasks == 5 and report.garments == 4   # two copies of one garment
    assert report.contradictions == {"category": 1, "category/object_type": 1}
    assert report.unknown == {"pattern": 1} and report.unknown_examples["pattern"] == ["'houndstooth-x'"]
    assert report.skipped == {"photo_missing": 1, "no_usable_label": 1}
    by_category = {c.category: c for c in corrections}
    assert set(by_category) == {None, "jeans"} and report.used == 2
    merged = by_category[None]          # the contradicting copies: category dropped, agreed object type kept
    assert merged.object_type == "upper-body" and len(merged.task_ids) == 2 and merged.bbox_xywh == BOX
    jeans = by_category["jeans"]
    assert jeans.object_type == "lower-body" and "pattern" not in jeans.attributes
    assert report.to_json()["skipped"] == {"photo_missing": 1, "no_usable_label": 1}


def test_correction_samples_cut_the_box(store: ReviewStore, tmp_path: Path) -> None:
    corrections, _ = read_corrections(store, _heads())
    samples, failed = prepare_correction_samples(corrections, store, tmp_path / "crops", size=64)
    assert not failed and len(samples) == 2
    upper = next(s for s in samples if s.object_type == "upper-body")
    assert upper.categories == [] and upper.split == "train" and upper.bbox_xyxy == [24.0, 32.0, 72.0, 96.0]
    crop = np.asarray(Image.open(tmp_path / "crops" / upper.file))
    assert crop.shape == (64, 64, 3)
    centre = crop[24:40, 24:40].reshape(-1, 3).mean(0)
    assert np.allclose(centre, (40, 80, 180), atol=25)     # the blue garment, not the grey photo


def test_fit_heads_learns_and_leaves_the_backbone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GarmentClassifier(new_classifier_meta(input_size=64), pretrained_backbone=False).eval()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    cats = ["jeans", "dresses", "t-shirts"]
    tax = load_taxonomy()
    centres = torch.randn(3, 1280) * 3
    samples, rows = [], []
    for i in range(90):
        c = i % 3
        rows.append(centres[c] + torch.randn(1280) * 0.5)
        samples.append(Sample(file=f"x{i}.jpg", source="test", group=str(i), split="train", categories=[cats[c]],
                              object_type=tax.object_type_of(cats[c])))
    feats = torch.stack(rows)
    losses = fit_heads(model, feats, samples, epochs=10, lr=1e-3, batch_size=32, seed=0)
    assert losses[-1] < losses[0]
    probs = head_probs(model, feats)["category"]
    predicted = [model.meta.heads[0].values[j] for j in probs.argmax(1)]
    assert predicted == [cats[i % 3] for i in range(90)]
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="feature rows"):
        fit_heads(model, feats[:10], samples, epochs=1)


# ------------------------------------------------------------------------------ the command, end to end


def _tiny_recipe(root: Path) -> tuple[Path, Path]:
    """A sample cache of 64 px crops (train 24, val 24, test 8) and a recipe YAML pointing at it."""
    tax = load_taxonomy()
    cache = root / "cache"
    (cache / "images").mkdir(parents=True)
    cats = ["jeans", "dresses", "t-shirts", "skirts"]
    colours = [(30, 60, 160), (200, 40, 40), (240, 240, 240), (40, 160, 60)]
    rng = np.random.default_rng(0)
    samples = []
    splits = ["train"] * 24 + ["val"] * 24 + ["test"] * 8
    for i, split in enumerate(splits):
        c = i % 4
        rgb = np.clip(np.array(colours[c]) + rng.normal(0, 10, (64, 64, 3)), 0, 255).astype(np.uint8)
        file = f"images/gen_{i:03d}.jpg"
        Image.fromarray(rgb).save(cache / file, "JPEG", quality=90)
        samples.append(Sample(file=file, source="clothing", group=f"clothing/{i}", split=split,
                              categories=[cats[c]], object_type=tax.object_type_of(cats[c]),
                              attributes={"colours": ["blue", "red", "white", "green"][c:c + 1]}))
    (cache / SAMPLES_FILE).write_text("".join(json.dumps(asdict(s)) + "\n" for s in samples), "utf-8")
    (cache / "cache.json").write_text(json.dumps({"size": 64, "seed": 0, "fractions": [0.7, 0.15, 0.15],
                                                  "margin": 0.1, "quality": 90, "count": len(samples)}), "utf-8")
    recipe = root / "recipe.yaml"
    recipe.write_text(f"sources: [clothing]\ncache_dir: {cache}\nout_dir: {root / 'unused'}\n"
                      f"data_root: {root / 'no-datasets'}\ninput_size: 64\nseed: 0\nbatch_size: 16\nworkers: 1\n",
                      "utf-8")
    return cache, recipe


def test_train_classifier_corrections_command(store: ReviewStore, tmp_path: Path) -> None:
    from fashionlens.cli.main import main

    _, recipe = _tiny_recipe(tmp_path)
    torch.manual_seed(0)
    base = GarmentClassifier(new_classifier_meta(input_size=64), pretrained_backbone=False).eval()
    save_classifier(base, tmp_path / "base.pt")
    out = tmp_path / "out"
    rc = main(["train", "classifier", "--corrections", str(store.path), "--config", str(recipe),
               "--base-weights", str(tmp_path / "base.pt"), "--out", str(out), "--head-epochs", "3"])
    assert rc == 0
    summary = json.loads((out / "corrections.json").read_text("utf-8"))
    assert summary["corrections"]["used"] == 2 and summary["train_samples"] == 24
    assert summary["corrections"]["contradicting_fields_dropped"] == {"category": 1, "category/object_type": 1}
    trained = load_classifier(out / "model.pt")
    reference = load_classifier(tmp_path / "base.pt")
    assert all(torch.equal(v, reference.backbone.state_dict()[k]) for k, v in trained.backbone.state_dict().items())
    assert not torch.equal(trained.heads["category"].weight, reference.heads["category"].weight)
    assert trained.meta.extra["corrections"]["used"] == 2
    sidecar = out / "model.calibration.json"
    assert sidecar.is_file() and summary["calibration"]["saved"] == str(sidecar)
    # a second run reuses the cached pooled features of the split
    assert list((tmp_path / "cache").glob("pooled-*-train.pt"))


def test_corrections_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fashionlens.cli.main import main

    _, recipe = _tiny_recipe(tmp_path)
    save_classifier(GarmentClassifier(new_classifier_meta(input_size=64), pretrained_backbone=False),
                    tmp_path / "base.pt")
    args = ["--config", str(recipe), "--base-weights", str(tmp_path / "base.pt"), "--out", str(tmp_path / "out")]
    assert main(["train", "classifier", "--corrections", str(tmp_path / "missing.sqlite"), *args]) == 2
    assert "expected a review store" in capsys.readouterr().err
    empty = ReviewStore(tmp_path / "empty.sqlite")
    assert main(["train", "classifier", "--corrections", str(empty.path), *args]) == 2
    err = capsys.readouterr().err
    assert "expected at least one accepted or corrected garment" in err
    with pytest.raises(NoCorrectionsError):
        from fashionlens.train.config import load_config
        from fashionlens.train.corrections import retrain_from_corrections

        retrain_from_corrections(empty.path, load_config(recipe), base_weights=tmp_path / "base.pt",
                                 out_dir=tmp_path / "out", recalibrate=False)


def test_corrected_test_photos_are_left_out_and_validation_photos_counted(tmp_path: Path) -> None:
    from fashionlens.train.corrections import CorrectionsReport, _outside_test_split
    from fashionlens.train.samples import Sample

    def sample(origin: str, split: str) -> Sample:
        return Sample(file="x.jpg", source="s", group=origin, split=split, categories=[], object_type=None,
                      origin=origin)

    photos = {name: str(tmp_path / f"{name}.jpg") for name in ("a", "b", "c")}
    by_split = {"train": [sample(photos["a"], "train")], "val": [sample(photos["b"], "val")],
                "test": [sample(photos["c"], "test")]}
    corrections = [sample(p, "train") for p in photos.values()] + [sample(str(tmp_path / "new.jpg"), "train")]
    report = CorrectionsReport()
    kept = _outside_test_split(corrections, by_split, report)
    assert [s.origin for s in kept] == [photos["a"], photos["b"], str(tmp_path / "new.jpg")]
    assert report.skipped["photo_in_test_split"] == 1 and report.validation_photos == 1
    assert report.to_json()["validation_photos_used"] == 1
