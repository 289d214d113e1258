"""Classifier samples: the prepared image cache, target encoding and the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.io.records import GarmentAnnotation, ImageRecord
from fashionlens.io.splits import group_split
from fashionlens.models.heads import default_heads
from fashionlens.taxonomy import load_mapping, load_taxonomy
from fashionlens.train.samples import (
    SAMPLES_FILE,
    Sample,
    SampleDataset,
    allowed_categories,
    encode_targets,
    prepare_samples,
    read_samples,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

W, H = 120, 90


def _jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (W, H)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=95)
    return path


def _records(root: Path) -> list[ImageRecord]:
    """A tiny mixed data set: whole-photo labels, CCP-like boxes, object type only, unlabelled."""
    recs = [
        # whole photo, exact category + attributes
        ImageRecord(_jpeg(root / "a.jpg", (200, 30, 30)), "clothing", "clothing/1", [GarmentAnnotation(
            categories=("t-shirts",), attributes={"sleeve": "short", "colours": ("red",)}, source_label="T-Shirt")]),
        # same group as above: must land in the same split
        ImageRecord(_jpeg(root / "b.jpg", (30, 30, 200)), "clothing", "clothing/1", [GarmentAnnotation(
            categories=("jeans", "trousers"), source_label="Pants")]),
        # a street photo: one big box garment, one tiny box, one unmapped (skin)
        ImageRecord(_jpeg(root / "c.jpg", (30, 200, 30)), "ccp", "ccp/0001", [
            GarmentAnnotation(categories=("coats-jackets",), bbox_xyxy=(10, 5, 90, 80), source_label="coat"),
            GarmentAnnotation(categories=("hats",), bbox_xyxy=(0, 0, 6, 6), source_label="hat"),
            GarmentAnnotation(bbox_xyxy=(20, 20, 60, 60), source_label="skin"),
        ], width=W, height=H),
        # object type only
        ImageRecord(_jpeg(root / "d.jpg", (240, 240, 240)), "ccp", "ccp/0002", [
            GarmentAnnotation(object_type="footwear", bbox_xyxy=(0, 0, 120, 90), source_label="shoes")]),
        # no label at all
        ImageRecord(_jpeg(root / "e.jpg", (10, 10, 10)), "clothing", "clothing/2", [GarmentAnnotation()]),
        ImageRecord(_jpeg(root / "f.jpg", (10, 10, 10)), "clothing", "clothing/3", []),
    ]
    return recs


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[list[ImageRecord], Path, list[Sample]]:
    records = _records(tmp_path / "photos")
    out = tmp_path / "cache"
    samples = prepare_samples(records, out, size=48, seed=3, workers=2)
    return records, out, samples


def test_prepare_samples_writes_the_cache(prepared) -> None:
    records, out, samples = prepared
    # t-shirt, pants, coat, footwear; the tiny hat box, skin and the unlabelled photos are left out
    assert [s.source_label for s in samples] == ["T-Shirt", "Pants", "coat", "shoes"]
    assert (out / SAMPLES_FILE).is_file()
    meta = json.loads((out / "cache.json").read_text("utf-8"))
    assert meta["size"] == 48 and meta["seed"] == 3 and meta["count"] == 4
    assert meta["fractions"] == [0.7, 0.15, 0.15]
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(s.file).name for s in samples)
    for s in samples:
        with Image.open(out / s.file) as im:
            assert im.size == (48, 48)
            assert im.format == "JPEG"
    assert read_samples(out) == samples
    by_label = {s.source_label: s for s in samples}
    assert by_label["T-Shirt"].categories == ["t-shirts"]
    assert by_label["T-Shirt"].attributes == {"sleeve": "short", "colours": ["red"]}
    assert by_label["T-Shirt"].object_type == "upper-body"
    assert by_label["T-Shirt"].bbox_xyxy is None
    assert by_label["Pants"].categories == ["jeans", "trousers"]
    assert by_label["coat"].bbox_xyxy == [10.0, 5.0, 90.0, 80.0]
    assert by_label["coat"].origin == str(records[2].path)
    assert by_label["shoes"].categories == [] and by_label["shoes"].object_type == "footwear"


def test_crops_come_from_the_box(tmp_path: Path) -> None:
    photo = tmp_path / "two.png"
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:, :100] = (255, 0, 0)
    rgb[:, 100:] = (0, 0, 255)
    Image.fromarray(rgb).save(photo)
    rec = ImageRecord(photo, "ccp", "ccp/x", [
        GarmentAnnotation(categories=("jeans",), bbox_xyxy=(110, 10, 190, 90)),
        GarmentAnnotation(categories=("boots",), bbox_xyxy=(10, 10, 90, 90))])
    samples = prepare_samples([rec], tmp_path / "cache", size=32, margin=0.1, workers=1)
    crops = {s.categories[0]: np.asarray(Image.open(tmp_path / "cache" / s.file)).astype(int) for s in samples}
    assert crops["jeans"][..., 2].mean() > 200 and crops["jeans"][..., 0].mean() < 50
    assert crops["boots"][..., 0].mean() > 200 and crops["boots"][..., 2].mean() < 50


def test_splits_follow_groups(prepared) -> None:
    records, _, samples = prepared
    expected = {}
    for name, recs in group_split(records, seed=3).items():
        for r in recs:
            expected[str(r.path)] = name
    for s in samples:
        assert s.split == expected[s.origin]
    by_group: dict[str, set[str]] = {}
    for s in samples:
        by_group.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in by_group.values())


def test_splits_by_group_on_many_records(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "p.jpg", (128, 128, 128), (40, 40))
    records = [ImageRecord(photo, "clothing", f"clothing/{i % 7}", [GarmentAnnotation(categories=("hats",))])
               for i in range(40)]
    samples = prepare_samples(records, tmp_path / "cache", size=32, workers=2)
    assert len(samples) == 40
    splits_of_group: dict[str, set[str]] = {}
    for s in samples:
        splits_of_group.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in splits_of_group.values())
    assert {s.split for s in samples} == {"train", "val", "test"}


def test_rerun_reuses_existing_images(prepared) -> None:
    records, out, samples = prepared
    # replace one cached image: a re-run must keep it (it does not decode the photo again)
    marker = out / samples[0].file
    Image.new("RGB", (48, 48), (1, 2, 3)).save(marker, "JPEG")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    # a missing image is written again
    (out / samples[1].file).unlink()
    again = prepare_samples(records, out, size=48, seed=3, workers=1)
    assert again == samples
    after = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    assert set(after) == set(before)
    for name in before:
        if name != Path(samples[1].file).name:
            assert after[name] == before[name], name
    assert np.asarray(Image.open(marker)).reshape(-1, 3).mean(0)[2] < 20
    assert not list(out.glob("*.tmp")) and not list((out / "images").glob("*.tmp"))


def test_read_samples_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="prepare"):
        read_samples(tmp_path)


# --- targets -------------------------------------------------------------------------------

HEADS = default_heads()


def _sample(**kw) -> Sample:
    base = dict(file="x.jpg", source="clothing", group="g", split="train", categories=[], object_type=None)
    base.update(kw)
    return Sample(**base)


def test_encode_targets_coarse_label() -> None:
    tax = load_taxonomy()
    pants = load_mapping("clothing").resolve("Pants")
    t = encode_targets(_sample(categories=list(pants.categories), object_type="lower-body"), HEADS)
    mask = t["category"]
    assert mask.dtype == torch.bool and mask.shape == (25,)
    assert {tax.categories[i] for i in torch.nonzero(mask).flatten().tolist()} == {"jeans", "trousers"}


def test_encode_targets_exact_label() -> None:
    tax = load_taxonomy()
    t = encode_targets(_sample(categories=["hoodies"], object_type="upper-body"), HEADS)
    assert torch.nonzero(t["category"]).flatten().tolist() == [tax.category_index("hoodies")]


def test_encode_targets_object_type_only_allows_every_category_of_the_type() -> None:
    tax = load_taxonomy()
    s = _sample(object_type="footwear")
    assert allowed_categories(s) == ["trainers", "boots", "flats", "sandals", "heels"]
    t = encode_targets(s, HEADS)
    assert {tax.categories[i] for i in torch.nonzero(t["category"]).flatten().tolist()} == set(
        tax.categories_of("footwear"))


def test_encode_targets_no_label() -> None:
    t = encode_targets(_sample(), HEADS)
    assert not t["category"].any()
    assert allowed_categories(_sample()) == []


def test_encode_targets_attributes() -> None:
    tax = load_taxonomy()
    s = _sample(categories=["t-shirts"], attributes={"sleeve": "long", "colours": ["black", "white"],
                                                     "material": "cotton"})
    t = encode_targets(s, HEADS)
    assert t["sleeve"].dtype == torch.long and t["sleeve"].item() == tax.attribute("sleeve").index("long")
    assert t["material"].item() == tax.attribute("material").index("cotton")
    # missing single-label attributes: -1
    for name in ("pattern", "neckline", "fit"):
        assert t[name].item() == -1
    colours = tax.attribute("colours").values
    assert t["colours"].dtype == torch.float32 and t["colours"].shape == (len(colours),)
    assert {colours[i] for i in torch.nonzero(t["colours"]).flatten().tolist()} == {"black", "white"}
    assert t["colours_valid"].item() is True
    # missing multi-label attribute: zeros, not valid
    t2 = encode_targets(_sample(categories=["t-shirts"]), HEADS)
    assert not t2["colours"].any() and t2["colours_valid"].item() is False
    assert set(t) == {"category", "pattern", "colours", "colours_valid", "material", "sleeve", "neckline", "fit"}


# --- dataset ---------------------------------------------------------------------------------


def test_sample_dataset_returns_normalised_tensors(prepared) -> None:
    _, out, samples = prepared
    ds = SampleDataset(out, samples, HEADS, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=48)
    assert len(ds) == 4
    x, t = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 48, 48)
    assert x.is_contiguous()
    # red photo: R channel near +1, G and B near -1 (JPEG noise allowed)
    assert x[0].mean() > 0.4 and x[1].mean() < -0.6 and x[2].mean() < -0.6
    assert set(t) >= {"category", "colours", "colours_valid"}
    assert "sample_weight" not in t
    # the white footwear photo
    x3, _ = ds[3]
    assert x3.mean() > 0.8


def test_sample_dataset_resizes_transforms_and_weights(prepared) -> None:
    import albumentations as A

    _, out, samples = prepared
    ds = SampleDataset(out, samples, HEADS, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=32,
                       transform=A.Compose([A.HorizontalFlip(p=1.0)]), sample_weights=[1, 2, 3, 4])
    x, t = ds[2]
    assert x.shape == (3, 32, 32)
    assert t["sample_weight"].item() == 3.0
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, tb = next(iter(loader))
    assert xb.shape == (4, 3, 32, 32)
    assert tb["category"].shape == (4, 25)
    assert tb["sleeve"].tolist() == [load_taxonomy().attribute("sleeve").index("short"), -1, -1, -1]
