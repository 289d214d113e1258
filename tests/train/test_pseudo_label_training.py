"""Training on pseudo-labelled photos (issue 28): FCOS's focal loss with per-image ignored classes, and a
smoke run whose training data includes a pseudo-label file (ignored types reach the cached views)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_detector_train import (
    make_coco,  # tests/train is on sys.path (pytest's rootdir import mode)
)

from fashionlens.models.fcos_seg import IGNORE_INDEX, fcos_seg_lite0_fpn
from fashionlens.train.config import ConfigError
from fashionlens.train.detector import (
    DetectorTrainConfig,
    cached_views,
    split_records,
    train_detector,
)
from fashionlens.train.losses import (
    fcos_losses_ignoring,
    focal_loss_ignoring,
    ignore_mask,
)
from fashionlens.train.pseudo_labels import (
    Candidate,
    PseudoLabelRules,
    label_photos,
    write_pseudo_coco,
)

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch


def test_ignore_mask_checks_labels() -> None:
    assert ignore_mask([(1, 3), ()], 4).tolist() == [[False, True, False, True], [False] * 4]
    with pytest.raises(ValueError, match="outside the detector's 4 classes"):
        ignore_mask([(4,)], 4)


def test_focal_loss_drops_only_the_negatives_of_ignored_classes() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3, requires_grad=True)
    one_hot = torch.zeros(2, 5, 3)
    one_hot[0, 1, 2] = 1.0  # image 0: a positive of class 2 at anchor 1
    ignore = torch.tensor([[False, False, True], [False, False, False]])
    loss = focal_loss_ignoring(logits, one_hot, ignore)
    loss.backward()
    grad = logits.grad
    assert grad is not None
    assert torch.all(grad[0, [0, 2, 3, 4], 2] == 0)  # negatives of the ignored class: no signal
    assert grad[0, 1, 2] != 0  # its positive still learns
    assert torch.all(grad[1, :, 2] != 0)  # the other image is untouched
    from torchvision.ops import sigmoid_focal_loss

    full = sigmoid_focal_loss(logits.detach(), one_hot, reduction="none")
    assert torch.isclose(loss.detach(), full.sum() - full[0, [0, 2, 3, 4], 2].sum())


def test_fcos_losses_equal_torchvision_without_ignored_classes_and_drop_with() -> None:
    torch.manual_seed(0)
    model = fcos_seg_lite0_fpn(num_classes=6, pretrained_backbone=False, min_size=128, max_size=128, fpn_channels=32)
    model.train()
    images = [torch.rand(3, 96, 128), torch.rand(3, 96, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 80.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}]
    image_list, targets = model.transform(images, targets)
    feats = list(model.backbone(image_list.tensors).values())
    head_outputs = model.head(feats)
    anchors = model.anchor_generator(image_list, feats)
    per_level = [x.size(2) * x.size(3) for x in feats]
    reference = model.compute_loss(targets, head_outputs, anchors, per_level)
    none = fcos_losses_ignoring(model, targets, head_outputs, anchors, per_level, ignore_mask([(), ()], 7))
    for k in reference:
        assert torch.allclose(reference[k], none[k]), k
    some = fcos_losses_ignoring(model, targets, head_outputs, anchors, per_level, ignore_mask([(2, 3), (1,)], 7))
    assert some["classification"] < reference["classification"]
    assert torch.allclose(some["bbox_regression"], reference["bbox_regression"])


def _pseudo_file(root: Path, images: Path, n: int = 4) -> Path:
    """A pseudo-label file over ``n`` of the generated photos: one kept box each, 'bag' ignored."""
    names = sorted(p.name for p in images.glob("*.jpg"))[:n]
    cands = {n: ([Candidate((70.0, 40.0, 120.0, 90.0), "lower-body", 0.9)], (128, 96)) for n in names}
    tags = {n: ["jeans", "bag"] for n in names}
    root.mkdir(parents=True, exist_ok=True)
    out = root / "pseudo.json"
    write_pseudo_coco(label_photos(cands, tags, PseudoLabelRules(0.6, 0.3)), out, images=str(images),
                      file_names={n: n for n in names}, tags=tags, info={})
    return out


def test_training_reads_pseudo_labels_into_train_only_with_ignored_types(tmp_path: Path) -> None:
    annotations, images = make_coco(tmp_path / "coco")
    other_images = tmp_path / "tagonly"
    other_images.mkdir()
    for p in sorted(images.glob("*.jpg"))[:4]:  # tag-only photos: copies outside the labelled set
        (other_images / p.name).write_bytes(p.read_bytes())
    pseudo = _pseudo_file(tmp_path, other_images)
    config = DetectorTrainConfig(
        data_root=str(tmp_path), sources=(), data=[{"format": "coco", "annotations": str(annotations),
                                                    "images": str(images)}], pseudo_labels=[str(pseudo)],
        builder_kwargs={"fpn_channels": 32, "seg_channels": 16, "topk_candidates": 50, "detections_per_img": 10},
        size=128, epochs=1, eval_every=1, batch_size=4, warmup_iters=0, threads=1, evaluate_test=False,
        cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "out"), model_name="smoke", model_version="0")
    splits = split_records(config)
    pseudo_train = [r for r in splits["train"] if r.source.startswith("pseudo-")]
    assert len(pseudo_train) == 4 and not any(r.source.startswith("pseudo-") for r in splits["val"] + splits["test"])
    from fashionlens.train.detector import build_model

    views = cached_views(build_model(config), config, "train", splits["train"])
    bag = 1 + 4  # detector label of 'bag' (object-type index 4)
    pseudo_views = [v for v in views if splits["train"][v.record_index].source.startswith("pseudo-")]
    assert len(pseudo_views) == 8 and all(v.ignore_labels == (bag,) for v in pseudo_views)
    assert all(bool((v.semantic == IGNORE_INDEX).all()) for v in pseudo_views)
    assert all(v.ignore_labels == () for v in views if not splits["train"][v.record_index].source.startswith("pseudo-"))
    summary = train_detector(config)
    logged = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[0])
    assert summary["epochs_run"] == 1 and all(math.isfinite(v) for v in logged["loss"].values())  # finite, not NaN

    # pseudo-labels over all the labelled photos include validation photos: refused
    clash = DetectorTrainConfig(**{**config.to_dict(), "pseudo_labels": [str(_pseudo_file(tmp_path / "x", images, 12))]})
    with pytest.raises(ConfigError, match="labels [0-9]+ validation/test photos"):
        split_records(clash)


# ------------------------------------------------------------------------------ the GPU recipe, on the CPU


def test_gpu_recipe_two_step_smoke_run_on_the_cpu_and_resume(tmp_path: Path) -> None:
    """configs/detector_v3_gpu.yaml as shipped (device auto → CPU here, backbone unfrozen, online augmentation,
    pseudo-labels with ignored types), on 8 synthetic training photos: 2 steps, validation, RoI mask epoch, resume."""
    from fashionlens.train.config import load_config

    annotations, images = make_coco(tmp_path / "coco", n=12)
    tag_only = tmp_path / "tagonly"
    tag_only.mkdir()
    for p in sorted(images.glob("*.jpg"))[:2]:
        (tag_only / p.name).write_bytes(p.read_bytes())
    pseudo = _pseudo_file(tmp_path / "pl", tag_only, 2)
    shipped = load_config(Path(__file__).resolve().parents[2] / "configs" / "detector_v3_gpu.yaml",
                          config_class=DetectorTrainConfig)
    assert shipped.device == "auto" and not shipped.freeze_stem and shipped.augment and 512 <= shipped.size <= 640
    config = DetectorTrainConfig(**{
        **shipped.to_dict(), "data_root": str(tmp_path), "sources": (), "flatlay": {},
        "data": [{"format": "coco", "annotations": str(annotations), "images": str(images), "split": "val"}],
        "pseudo_labels": [str(pseudo)], "size": 128, "batch_size": 1, "epochs": 1, "eval_every": 1,
        "num_workers": 0, "warmup_iters": 0, "roi_mask_epochs": 1, "threads": 1,
        "builder_kwargs": {"roi_masks": True, "fpn_channels": 64, "seg_channels": 16, "topk_candidates": 50,
                           "detections_per_img": 10},
        "cache_dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "out")})
    summary = train_detector(config)
    out = tmp_path / "out"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["records"]["train"] == 2 and lines[0]["epoch"] == 1  # two photos, batch 1: two steps
    assert torch.load(out / "last.pt", weights_only=False)["state"]["step"] == 2
    assert set(lines[0]["loss"]) == {"classification", "bbox_regression", "bbox_ctrness", "seg"}
    assert all(math.isfinite(v) for v in lines[0]["loss"].values()) and "val" in lines[0]
    assert {"model.pt", "roi_mask.pt", "best.pt"} <= {p.name for p in out.iterdir()}
    before = (out / "last.pt").stat().st_mtime_ns
    again = train_detector(config)  # resumes: nothing left to train
    assert again["epochs_run"] == 1 and (out / "last.pt").stat().st_mtime_ns == before


def test_online_augmentation_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="set freeze_stem: false"):
        DetectorTrainConfig(augment={"scale": [0.8, 1.2]})
    with pytest.raises(ConfigError, match="augment.scale"):
        DetectorTrainConfig(freeze_stem=False, augment={"scale": [1.2, 0.8]})
    with pytest.raises(ConfigError, match="unknown \\['hue'\\]"):
        DetectorTrainConfig(freeze_stem=False, augment={"hue": 0.1})
    with pytest.raises(ConfigError, match="augment.crop"):
        DetectorTrainConfig(freeze_stem=False, augment={"crop": 0.6})
    with pytest.raises(ConfigError, match="device: expected cpu, cuda or auto"):
        DetectorTrainConfig(device="tpu")


def test_a_batch_of_pseudo_labelled_photos_without_ignored_types_has_finite_losses(tmp_path: Path) -> None:
    """Their semantic maps are all ignored: the seg loss must be 0, not 0/0."""
    from fashionlens.train.detector import build_model, build_views, losses_of
    from fashionlens.train.pseudo_labels import read_pseudo_coco

    _, images = make_coco(tmp_path / "coco", n=2)
    names = sorted(p.name for p in images.glob("*.jpg"))
    cands = {n: ([Candidate((70.0, 40.0, 120.0, 90.0), "lower-body", 0.9)], (128, 96)) for n in names}
    tags = {n: ["jeans"] for n in names}
    path = tmp_path / "pl.json"
    write_pseudo_coco(label_photos(cands, tags, PseudoLabelRules(0.6, 0.3)), path, images=str(images),
                      file_names={n: n for n in names}, tags=tags, info={})
    records = read_pseudo_coco(path, tmp_path)
    assert all(r.meta["ignore_types"] == [] for r in records)
    config = DetectorTrainConfig(size=128, builder_kwargs={"fpn_channels": 64, "seg_channels": 16})
    model = build_model(config)
    views = build_views(model, records, flips=(False,), freeze_stem=True)
    assert all(v.ignore_labels == () and bool((v.semantic == IGNORE_INDEX).all()) for v in views)
    model.train()
    losses = losses_of(model, views, True)
    assert all(math.isfinite(float(v)) for v in losses.values()) and float(losses["seg"]) == 0.0
