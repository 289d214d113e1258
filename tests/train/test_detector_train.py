"""Detector training: config validation, reading a generated COCO data set, and a smoke run of
``train_detector`` (12 synthetic photos, 128 px, one epoch) that saves, evaluates and resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fashionlens.io.records import decode_mask, encode_mask
from fashionlens.models.detector_weights import load_detector, set_detector_defaults
from fashionlens.models.fcos_seg import FCOSSeg
from fashionlens.train.config import ConfigError, load_config
from fashionlens.train.detector import (
    ZOOM_MIN_VISIBLE,
    DetectorTrainConfig,
    mask_training_views,
    read_detection_data,
    train_detector,
    zoom_crop,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize("kwargs, message", [
    ({}, None),
    ({"sources": [], "data": [{"format": "coco", "annotations": "a.json", "split": "val"}], "warmup_iters": 0,
      "seed": 0, "size": 64, "lr": 0, "arch": "maskrcnn-lite0-fpn"}, None),
    ({"arch": "yolo"}, "arch: expected one of"),
    ({"sources": ("ccp", "deepfashion")}, "sources: unknown \\['deepfashion'\\]"),
    ({"data": [{"format": "csv"}]}, "data: each entry needs format"),
    ({"data": ["coco"]}, "data: each entry needs format"),
    ({"data": [{"format": "coco", "split": "dev"}]}, "data: split must be train, val or test, got 'dev'"),
    ({"epochs": 0}, "epochs: expected a positive integer, got 0"),
    ({"batch_size": True}, "batch_size: expected a positive integer"),
    ({"eval_every": 1.5}, "eval_every: expected a positive integer"),
    ({"patience": "3"}, "patience"),
    ({"seed": -1}, "seed"),
    ({"warmup_iters": -5}, "warmup_iters"),
    ({"lr": -0.1}, "lr: expected a non-negative number, got -0.1"),
    ({"backbone_lr": "fast"}, "backbone_lr"),
    ({"weight_decay": None}, "weight_decay"),
    ({"grad_clip": False}, "grad_clip"),
    ({"size": 32}, "size: expected >= 64 px, got 32"),
    ({"zoom_views": -1}, "zoom_views: expected a non-negative integer, got -1"),
    ({"zoom_views": True}, "zoom_views"),
    ({"zoom_min_scale": 0.1}, "zoom_min_scale: expected a number in \\[0.2, 1\\], got 0.1"),
    ({"zoom_min_scale": "small"}, "zoom_min_scale: expected a number in \\[0.2, 1\\], got 'small'"),
    ({"size": 0}, "size: expected a positive integer"),
    ({"roi_mask_only": True, "roi_mask_epochs": 2}, "roi_mask_only: expected init_from"),
    ({"roi_mask_only": True, "init_from": "model.pt"}, "roi_mask_epochs >= 1, got init_from='model.pt', roi_mask_epochs=0"),
])
def test_config_validation(kwargs: dict[str, Any], message: str | None) -> None:
    if message is None:
        config = DetectorTrainConfig(**kwargs)
        assert isinstance(config.sources, tuple) and isinstance(config.split_fractions, tuple)
        assert config.to_dict()["arch"] == config.arch
        return
    with pytest.raises(ConfigError, match=message):
        DetectorTrainConfig(**kwargs)


def test_shipped_config_loads() -> None:
    config = load_config(CONFIGS / "detector_fcos_seg_lite0.yaml", config_class=DetectorTrainConfig)
    assert config.arch == "fcos-seg-lite0-fpn" and config.sources == ("ccp",)


def test_config_typo_suggests_the_option() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'eval_every'"):
        load_config(overrides={"eval_evry": 2}, config_class=DetectorTrainConfig)


# ------------------------------------------------------------------------------ a generated COCO data set

W, H = 128, 96
CATEGORIES = ["t-shirts", "jeans", "trainers"]  # taxonomy category names: no mapping needed


def _polygon(box: tuple[int, int, int, int]) -> list[float]:
    x0, y0, x1, y1 = box
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def make_coco(root: Path, n: int = 12) -> tuple[Path, Path]:
    """``n`` photos (noise) with a red ellipse (t-shirts, RLE mask) and a blue rectangle (jeans or
    trainers, polygon), written as a COCO instances file. Returns (annotations JSON, image folder)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(n):
        arr = rng.integers(90, 160, (H, W, 3), dtype=np.uint8)
        photo = Image.fromarray(arr)
        draw = ImageDraw.Draw(photo)
        ellipse = (10 + i, 8, 60 + i, 50)
        draw.ellipse(ellipse, fill=(210, 30, 30))
        m = np.zeros((H, W), np.uint8)
        mask_img = Image.fromarray(m)
        ImageDraw.Draw(mask_img).ellipse(ellipse, fill=1)
        rect = (70, 40 + i % 4, 120, 90)
        draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=(30, 40, 200))
        name = f"photo{i:02d}.jpg"
        photo.save(images_dir / name, quality=92)
        images.append({"id": i + 1, "file_name": name, "width": W, "height": H})
        rle = encode_mask(np.asarray(mask_img).astype(bool))
        ys, xs = np.nonzero(np.asarray(mask_img))
        annotations.append({"id": 2 * i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                            "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                     int(ys.max() - ys.min() + 1)],
                            "area": int(np.asarray(mask_img).sum()), "segmentation": rle})
        annotations.append({"id": 2 * i + 2, "image_id": i + 1, "category_id": 2 + i % 2, "iscrowd": 0,
                            "bbox": [rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]],
                            "area": (rect[2] - rect[0]) * (rect[3] - rect[1]), "segmentation": [_polygon(rect)]})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CATEGORIES)]}
    path = root / "instances.json"
    path.write_text(json.dumps(coco))
    return path, images_dir


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_coco(tmp_path_factory.mktemp("coco"))


def test_read_detection_data_coco(coco_data: tuple[Path, Path]) -> None:
    annotations, images = coco_data
    records = read_detection_data({"format": "coco", "annotations": str(annotations), "images": str(images),
                                   "split": "train"})  # split is the trainer's key, not the reader's
    assert len(records) == 12
    first = records[0]
    assert first.path == images / "photo00.jpg" and (first.width, first.height) == (W, H)
    assert [g.object_type for g in first.garments] == ["upper-body", "lower-body"]
    assert [g.categories for g in first.garments] == [("t-shirts",), ("jeans",)]
    assert records[1].garments[1].categories == ("trainers",) and records[1].garments[1].object_type == "footwear"
    shirt, jeans = (decode_mask(g.mask_rle) for g in first.garments)
    assert shirt.shape == jeans.shape == (H, W)
    assert jeans[40:90, 70:120].all() and jeans.sum() == pytest.approx(50 * 50, rel=0.1)  # polygon → mask
    assert shirt[29, 35] and not shirt[0, 0]  # ellipse centre in, corner out


def _one_label_coco(tmp_path: Path, label: str) -> str:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}],
                                "categories": [{"id": 1, "name": label}]}))
    return str(path)


@pytest.mark.parametrize("label, mapping, object_type, exception", [
    ("jeans", None, "lower-body", None),  # a taxonomy category name
    ("footwear", None, "footwear", None),  # an object type name
    ("short sleeve top", None, None, None),  # unknown without a mapping: kept, no object type
    ("short sleeve top", "deepfashion2", "upper-body", None),
    ("trousers", "deepfashion2", "lower-body", None),
    ("tee", "deepfashion2", None, "tee"),  # a mapping that does not list the label
])
def test_read_detection_data_mappings(label: str, mapping: str | None, object_type: str | None,
                                      exception: str | None, tmp_path: Path) -> None:
    entry = {"format": "coco", "annotations": _one_label_coco(tmp_path, label)}
    if mapping:
        entry["mapping"] = mapping
    if exception:
        with pytest.raises(ValueError, match=exception):
            read_detection_data(entry)
        return
    [record] = read_detection_data(entry)
    assert record.path == tmp_path / "a.jpg"  # images default to the JSON file's folder
    assert [g.object_type for g in record.garments] == [object_type]


# ------------------------------------------------------------------------------ smoke run


def test_train_detector_smoke_and_resume(coco_data: tuple[Path, Path], tmp_path: Path) -> None:
    annotations, images = coco_data
    config = DetectorTrainConfig(
        data_root=str(tmp_path), sources=(), data=[{"format": "coco", "annotations": str(annotations),
                                                    "images": str(images)}],
        builder_kwargs={"fpn_channels": 64, "seg_channels": 16, "topk_candidates": 50, "detections_per_img": 10},
        size=128, epochs=1, eval_every=1, batch_size=4, warmup_iters=0, threads=1,
        cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "out"), model_name="smoke", model_version="0")

    summary = train_detector(config)

    out = tmp_path / "out"
    assert {"config.json", "metrics.jsonl", "last.pt", "best.pt", "model.pt", "eval.json"} <= {
        p.name for p in out.iterdir()}
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1
    records = summary["records"]
    assert sum(records.values()) == 12 and records["train"] > 0 and records["val"] > 0
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["epochs_run"] == 1 and "bbox" in evaluation["val"] and evaluation["records"] == records
    [line] = (out / "metrics.jsonl").read_text().splitlines()
    logged = json.loads(line)
    assert logged["epoch"] == 1 and set(logged["loss"]) == {"classification", "bbox_regression", "bbox_ctrness", "seg"}
    assert set(logged["val"]) == {"box_ap", "box_ap50", "mask_ap", "mask_ap50"}
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2 + bool(records["test"])  # train, val (, test)

    model, meta = load_detector(out / "model.pt")
    assert isinstance(model, FCOSSeg) and meta.name == "smoke" and meta.arch == "fcos-seg-lite0-fpn"
    assert meta.builder_kwargs["min_size"] == meta.builder_kwargs["max_size"] == 128
    assert meta.class_names[0] == "__background__" and set(meta.metrics) == {"val", "test"}
    assert meta.extra["config"]["epochs"] == 1

    # a second call resumes from last.pt: the epochs are done, so nothing is retrained
    before = (out / "last.pt").stat().st_mtime_ns
    again = train_detector(config)
    assert again["epochs_run"] == 1 and again["best_epoch"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert (out / "last.pt").stat().st_mtime_ns == before
    assert load_detector(out / "model.pt")[1].name == "smoke"


def _small_run(coco_data: tuple[Path, Path], tmp_path: Path, *, roi_masks: bool) -> dict[str, Any]:
    """Settings of a one-epoch run of a tiny detector on the generated COCO data."""
    annotations, images = coco_data
    builder: dict[str, Any] = {"fpn_channels": 64, "seg_channels": 16, "topk_candidates": 50, "detections_per_img": 10}
    return {
        "data_root": str(tmp_path), "sources": (),
        "data": [{"format": "coco", "annotations": str(annotations), "images": str(images)}],
        "builder_kwargs": {**builder, "roi_masks": True} if roi_masks else builder,
        "size": 128, "epochs": 1, "eval_every": 1, "batch_size": 4, "warmup_iters": 0, "threads": 1,
        "evaluate_test": False, "cache_dir": str(tmp_path / "cache"), "model_name": "smoke",
        "roi_mask_epochs": 1 if roi_masks else 0}


def test_roi_mask_only_retrains_the_mask_head_and_keeps_the_rest(coco_data: tuple[Path, Path], tmp_path: Path) -> None:
    common = _small_run(coco_data, tmp_path, roi_masks=True)
    train_detector(DetectorTrainConfig(**common, out_dir=str(tmp_path / "base")))
    base = tmp_path / "base" / "model.pt"
    defaults = {"score_thresh": 0.4, "nms_thresh": 0.6, "rules": [], "measured_on": "test fixture"}
    set_detector_defaults(base, defaults)

    config = DetectorTrainConfig(**{**common, "roi_mask_epochs": 2}, out_dir=str(tmp_path / "masks"),
                                 init_from=str(base), roi_mask_only=True, model_version="1")
    summary = train_detector(config)

    out = tmp_path / "masks"
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("mask_head_epoch") for r in logged] == [1, 2]  # no box epochs
    assert summary["best_epoch"] is None and "bbox" in summary["val"]
    before, _ = load_detector(base)
    after, meta = load_detector(out / "model.pt")
    assert meta.version == "1" and meta.extra["defaults"] == defaults
    old, new = before.state_dict(), after.state_dict()
    assert old.keys() == new.keys()
    for key in old:
        same = bool((old[key] == new[key]).all())
        assert same != key.startswith("roi_mask."), key  # the head changed, nothing else did


def test_roi_mask_only_adds_a_mask_head_to_a_detector_without_one(coco_data: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    train_detector(DetectorTrainConfig(**_small_run(coco_data, tmp_path, roi_masks=False),
                                       out_dir=str(tmp_path / "base")))
    base = tmp_path / "base" / "model.pt"
    assert load_detector(base)[0].roi_mask is None

    train_detector(DetectorTrainConfig(**_small_run(coco_data, tmp_path, roi_masks=True),
                                       out_dir=str(tmp_path / "masks"), init_from=str(base), roi_mask_only=True))
    before, _ = load_detector(base)
    after, _ = load_detector(tmp_path / "masks" / "model.pt")
    assert after.roi_mask is not None
    old, new = before.state_dict(), after.state_dict()
    assert set(new) - set(old) == {k for k in new if k.startswith("roi_mask.")}
    assert all(bool((old[k] == new[k]).all()) for k in old)  # everything else is init_from's


def test_an_interrupted_mask_stage_resumes_where_it_stopped(coco_data: tuple[Path, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import fashionlens.train.detector as detector_training

    common = _small_run(coco_data, tmp_path, roi_masks=True)
    train_detector(DetectorTrainConfig(**common, out_dir=str(tmp_path / "base")))
    masks = {**common, "roi_mask_epochs": 3, "init_from": str(tmp_path / "base" / "model.pt"), "roi_mask_only": True}
    train_detector(DetectorTrainConfig(**masks, out_dir=str(tmp_path / "straight")))

    real_tqdm = detector_training.tqdm

    def crash_in_epoch_2(items: Any, desc: str = "", **kwargs: Any) -> Any:
        if desc == "mask head 2/3":
            raise KeyboardInterrupt
        return real_tqdm(items, desc=desc, **kwargs)

    config = DetectorTrainConfig(**masks, out_dir=str(tmp_path / "resumed"))
    monkeypatch.setattr(detector_training, "tqdm", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_detector(config)
    out = tmp_path / "resumed"
    assert (out / "roi_mask_last.pt").is_file() and not (out / "model.pt").exists()
    monkeypatch.setattr(detector_training, "tqdm", real_tqdm)
    train_detector(config)

    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["mask_head_epoch"] for r in logged] == [1, 2, 3]  # epoch 1 is not trained twice
    assert not (out / "roi_mask_last.pt").exists() and (out / "roi_mask.pt").is_file()
    straight = torch.load(tmp_path / "straight" / "roi_mask.pt", weights_only=True)
    resumed = torch.load(out / "roi_mask.pt", weights_only=True)
    for key, value in straight.items():  # the same head as without the interruption
        torch.testing.assert_close(resumed[key], value, msg=key)

    trained = (out / "roi_mask.pt").stat().st_mtime_ns
    train_detector(config, resume=False)  # --restart: the stage is trained again, the log starts over
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["mask_head_epoch"] for r in logged] == [1, 2, 3]
    assert (out / "roi_mask.pt").stat().st_mtime_ns != trained


def test_mask_training_views_can_leave_out_flat_lay_photos() -> None:
    from types import SimpleNamespace

    records = [SimpleNamespace(source=s) for s in ("ccp", "flatlay-clothing", "ccp", "flatlay-rise")]
    views = [SimpleNamespace(record_index=i) for i in (0, 0, 1, 2, 3, 3)]
    assert mask_training_views(views, records, DetectorTrainConfig()) == views  # type: ignore[arg-type]
    kept = mask_training_views(views, records, DetectorTrainConfig(roi_mask_flatlay=False))  # type: ignore[arg-type]
    assert [v.record_index for v in kept] == [0, 0, 2]


# ------------------------------------------------------------------------------ zoom-crop views


def _zoom_scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    image = torch.rand(3, 100, 80)
    masks = torch.zeros((3, 100, 80), dtype=torch.uint8)
    masks[0, 10:50, 10:40] = 1   # a garment in the upper left
    masks[1, 60:100, 0:80] = 1   # one across the bottom
    masks[2] = 0                 # a box-only garment (flat-lay style): its mask is not used
    boxes = torch.tensor([[10, 10, 40, 50], [0, 60, 80, 100], [70, 0, 80, 10]], dtype=torch.float32)
    return image, boxes, masks, torch.tensor([False, False, True])


@pytest.mark.parametrize("seed", range(20))
def test_zoom_crop_keeps_targets_consistent(seed: int) -> None:
    import random

    image, boxes, masks, from_box = _zoom_scene()
    crop, b, m, fb, idx = zoom_crop(image, boxes, masks, from_box, random.Random(seed), 0.6)
    ch, cw = crop.shape[-2:]
    assert 0.6 * 100 - 1 <= ch <= 100 and 0.6 * 80 - 1 <= cw <= 80
    assert abs(cw / ch - 0.8) < 0.03  # aspect kept
    assert len(b) == len(m) == len(fb) == len(idx) and m.shape[-2:] == (ch, cw)
    assert ((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= cw) & (b[:, 3] <= ch)).all()
    for box, mask, is_box, i in zip(b, m, fb, idx.tolist()):
        assert bool(is_box) == bool(from_box[i])
        if not is_box:  # box re-fitted to the mask pixels left in the crop
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert mask.sum() >= ZOOM_MIN_VISIBLE * masks[i].sum()


def test_zoom_crop_drops_garments_mostly_cut_away() -> None:
    import random

    image, boxes, masks, from_box = _zoom_scene()
    kept = dropped = 0
    for seed in range(100):
        crop, _, _, _, idx = zoom_crop(image, boxes, masks, from_box, random.Random(seed), 0.3)
        ch, cw = crop.shape[-2:]
        # where the crop came from: the unique offset whose pixels match (the image is random noise)
        [(y0, x0)] = [(y, x) for y in range(100 - ch + 1) for x in range(80 - cw + 1)
                      if torch.equal(image[0, y, x:x + cw], crop[0, 0]) and torch.equal(image[:, y:y + ch, x:x + cw], crop)]
        visible = float(masks[0, y0:y0 + ch, x0:x0 + cw].sum() / masks[0].sum())
        assert (0 in idx.tolist()) == (visible >= ZOOM_MIN_VISIBLE)
        kept += 0 in idx.tolist()
        dropped += 0 not in idx.tolist()
    assert kept and dropped  # both cases occur at this zoom range


def test_build_views_adds_seeded_zoom_views(coco_data: tuple[Path, Path]) -> None:
    from fashionlens.train.detector import build_model, build_views

    annotations, images = coco_data
    records = read_detection_data({"format": "coco", "annotations": str(annotations), "images": str(images)})[:3]
    config = DetectorTrainConfig(size=128, builder_kwargs={"fpn_channels": 64, "seg_channels": 16})
    model = build_model(config)
    plain = build_views(model, records, flips=(False, True), freeze_stem=True)
    zoomed = build_views(model, records, flips=(False, True), freeze_stem=True, zooms=2, seed=5)
    again = build_views(model, records, flips=(False, True), freeze_stem=True, zooms=2, seed=5)
    assert len(plain) == 6 and len(zoomed) == 12
    assert [v.record_index for v in zoomed] == [i for i in range(3) for _ in range(4)]
    for a, b in zip(zoomed, again):  # seeded: the same crops every time
        assert a.original_size == b.original_size and torch.equal(a.target["boxes"], b.target["boxes"])
    for v in zoomed:
        h, w = v.image_size
        assert max(h, w) == 128 and v.inputs.shape[0] > 3  # resized like any view; stem features cached
        boxes = v.target["boxes"]
        assert ((boxes[:, 2] <= w + 1e-3) & (boxes[:, 3] <= h + 1e-3)).all()
        assert len(boxes) == len(v.target["labels"]) == len(v.target["masks"])
    assert any(v.original_size != (H, W) for v in zoomed)  # the zoom views are crops of the photo
