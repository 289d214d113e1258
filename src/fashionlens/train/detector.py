"""Train a garment detector on a CPU: frozen stem features cached once, the rest trained.

The recipe (``configs/detector_*.yaml``; ``fashionlens train detector --config …``):

1. records come from the development data sets (``sources``, e.g. CCP) and/or the user's own
   labelled data (``data``: COCO, YOLO, VOC, DeepFashion2, Fashionpedia, iMaterialist through the
   readers and taxonomy mappings); they are split 70/15/15 by group with the seed
   (:func:`~fashionlens.io.splits.group_split`) unless an entry names its split;
2. every image is resized by the detector's own transform (longer side ``size`` px) and, with
   ``freeze_stem``, passed once through the frozen stem (stem + blocks up to stride 8); those
   features (fp16), the resized boxes, instance masks and the stride-4 semantic map are cached in
   memory and on disk (``cache_dir``), two views per training image (as is and mirrored) plus
   ``zoom_views`` seeded random crops (:func:`zoom_crop`);
3. each epoch draws one view per training image; the remaining backbone blocks, the FPN and the
   heads train with AdamW (linear warm-up, cosine decay), batch norm frozen;
4. every ``eval_every`` epochs the model is evaluated on the validation split (COCO box and mask
   AP via pycocotools); ``best.pt`` keeps the best box AP, ``last.pt`` resumes an interrupted run
   (and ``roi_mask_last.pt`` an interrupted RoI mask-head stage; ``resume=False`` starts over);
   training stops after ``patience`` evaluations without improvement;
5. the best model is evaluated on the test split and saved fp16 with its metadata (``model.pt``,
   ``eval.json``, a PR-curve PNG).

Two additions (issue 28): ``pseudo_labels`` adds tag-filtered pseudo-labelled photos to the training split
(:mod:`fashionlens.train.pseudo_labels`; each photo's ignored types are masked out of the focal loss,
:func:`~fashionlens.train.losses.fcos_losses_ignoring`), and ``augment`` (with ``freeze_stem: false``)
replaces step 3's cached views by online augmentation through the whole network, on ``device``
(``auto``: CUDA when available) — the GPU recipe, ``configs/detector_v3_gpu.yaml``.

Caching the stem is what makes CPU training fit: the stem runs at the highest resolution and
costs about half of the backbone's forward pass; with it frozen, one epoch over CCP's ~610
training photos takes minutes, not tens of minutes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from tqdm import tqdm

from fashionlens.imageio import load_image
from fashionlens.io.atomic import atomic_write
from fashionlens.io.records import ImageRecord
from fashionlens.io.splits import group_split
from fashionlens.models.detector import DETECTORS, detector_class_names
from fashionlens.models.detector_weights import DetectorMeta, save_detector
from fashionlens.paths import default_data_root, runs_path
from fashionlens.train.config import ConfigError
from fashionlens.train.detection_data import DetectionDataset

log = logging.getLogger(__name__)

DATA_FORMATS = ("coco", "fashionpedia", "yolo", "voc", "deepfashion2", "imaterialist")


@dataclass
class DetectorTrainConfig:
    """Everything that defines one detector training run."""

    data_root: str = field(default_factory=default_data_root)
    sources: tuple[str, ...] = ("ccp",)
    data: list[dict[str, Any]] = field(default_factory=list)  # user data: {format, ..., split?}
    flatlay: dict[str, Any] = field(default_factory=dict)  # {sources: [clothing, rise], max_per_source: N}
    # pseudo-labelled photos (`fashionlens annotate pseudo-labels`, issue 28): COCO files added to *train* only;
    # each photo's ignore_types are masked out of the classification loss (pseudo_ignore: false trains them
    # as background instead, for the ablation)
    pseudo_labels: list[str] = field(default_factory=list)
    pseudo_ignore: bool = True
    arch: str = "fcos-seg-lite0-fpn"
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # start from a trained detector's weights (model.pt), e.g. to fine-tune
    size: int = 384
    freeze_stem: bool = True
    hflip: bool = True
    # extra cached views per training photo: a random crop of zoom_min_scale..1 of each side (aspect kept,
    # so the garments appear up to 1/zoom_min_scale larger), mirrored at random; 0 = only as-is and mirror
    zoom_views: int = 0
    zoom_min_scale: float = 0.6
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    grad_clip: float = 10.0
    eval_every: int = 3
    patience: int = 4
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    cache_dir: str = field(default_factory=lambda: runs_path("cache", "detector"))
    out_dir: str = field(default_factory=lambda: runs_path("detector"))
    device: str = "cpu"  # cpu, cuda, or auto (cuda when available)
    threads: int | None = None
    # online augmentation (the GPU recipe, needs freeze_stem: false): each step decodes and augments photos
    # (train.detection_data.Augment: crops from the borders, brightness/contrast) and trains at a random
    # input size in scale x size (multiple of 32); {} = the cached-view recipe
    augment: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0  # DataLoader workers of the online path
    limit: int | None = None  # cap records per split (smoke tests)
    evaluate_test: bool = True  # False for comparison runs: the test split stays untouched
    roi_mask_epochs: int = 0  # > 0: then train the RoI mask head (builder_kwargs roi_masks: true), detector frozen
    roi_mask_lr: float = 1e-3
    roi_mask_flatlay: bool = True  # False: the mask head learns from the data's own masks, not flat-lay contours
    # True: only (re)train the RoI mask head, fresh and seeded, on the detector given by init_from; the box
    # stage is skipped and the detector's run-time defaults (score and NMS thresholds, rules) carry over
    roi_mask_only: bool = False
    model_name: str = "garment-detector"
    model_version: str = "0"

    def __post_init__(self) -> None:
        self.sources = tuple(self.sources)
        self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        if self.arch not in DETECTORS:
            raise ConfigError(f"arch: expected one of {sorted(DETECTORS)}, got {self.arch!r}")
        unknown = set(self.sources) - {"ccp", "clothing", "rise"}
        if unknown:
            raise ConfigError(f"sources: unknown {sorted(unknown)}; expected data sets with boxes or masks (ccp)")
        self.pseudo_labels = [str(p) for p in self.pseudo_labels]
        for entry in self.data:
            if not isinstance(entry, dict) or entry.get("format") not in DATA_FORMATS:
                raise ConfigError(f"data: each entry needs format: one of {list(DATA_FORMATS)}, got {entry!r}")
            if entry.get("split") not in (None, "train", "val", "test"):
                raise ConfigError(f"data: split must be train, val or test, got {entry.get('split')!r}")
        for name in ("epochs", "batch_size", "size", "eval_every", "patience", "seed", "warmup_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name in ("seed", "warmup_iters") else 1):
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("lr", "backbone_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name}: expected a non-negative number, got {value!r}")
        if isinstance(self.zoom_views, bool) or not isinstance(self.zoom_views, int) or self.zoom_views < 0:
            raise ConfigError(f"zoom_views: expected a non-negative integer, got {self.zoom_views!r}")
        if (isinstance(self.zoom_min_scale, bool) or not isinstance(self.zoom_min_scale, (int, float))
                or not 0.2 <= self.zoom_min_scale <= 1.0):
            raise ConfigError(f"zoom_min_scale: expected a number in [0.2, 1], got {self.zoom_min_scale!r}")
        if self.size < 64:
            raise ConfigError(f"size: expected >= 64 px, got {self.size}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device: expected cpu, cuda or auto, got {self.device!r}")
        if self.augment:
            if self.freeze_stem:
                raise ConfigError("augment: online augmentation trains the whole backbone; set freeze_stem: false")
            unknown_aug = set(self.augment) - {"scale", "crop", "crop_prob", "brightness_contrast", "min_visibility"}
            if unknown_aug:
                raise ConfigError(f"augment: unknown {sorted(unknown_aug)}; expected scale, crop, crop_prob, "
                                  "brightness_contrast, min_visibility")
            scale = self.augment.get("scale", [1.0, 1.0])
            if (not isinstance(scale, (list, tuple)) or len(scale) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
                    or not 0.25 <= scale[0] <= scale[1] <= 4.0):
                raise ConfigError(f"augment.scale: expected [low, high] with 0.25 <= low <= high <= 4, got {scale!r}")
            try:
                augment_options(self)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"num_workers: expected a non-negative integer, got {self.num_workers!r}")
        if self.roi_mask_only and (not self.init_from or self.roi_mask_epochs < 1):
            raise ConfigError("roi_mask_only: expected init_from (a trained detector) and roi_mask_epochs >= 1, "
                              f"got init_from={self.init_from!r}, roi_mask_epochs={self.roi_mask_epochs!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def augment_options(config: DetectorTrainConfig) -> Any:
    """The :class:`~fashionlens.train.detection_data.Augment` of ``config.augment`` (its scale excluded)."""
    from fashionlens.train.detection_data import Augment

    return Augment(**{k: v for k, v in config.augment.items() if k != "scale"})


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error without CUDA), or ``auto``: CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda asked for, but torch sees no CUDA device (use device: auto to fall back)")
    return torch.device(name)


# ------------------------------------------------------------------------------ data


def read_detection_data(entry: dict[str, Any]) -> list[ImageRecord]:
    """Records of one ``data:`` entry (a user's labelled photos in a supported format)."""
    fmt = entry["format"]
    args = {k: v for k, v in entry.items() if k not in ("format", "split")}
    if fmt in ("coco", "fashionpedia"):
        from fashionlens.io.coco import read_coco

        if fmt == "fashionpedia":
            args.setdefault("mapping", "fashionpedia")
        return read_coco(args.pop("annotations"), args.pop("images", None), **args)
    if fmt == "yolo":
        from fashionlens.io.yolo import read_yolo

        return read_yolo(args.pop("images"), args.pop("labels"), args.pop("class_names"), **args)
    if fmt == "voc":
        from fashionlens.io.voc import read_voc

        return read_voc(args.pop("annotations"), args.pop("images", None), **args)
    if fmt == "deepfashion2":
        from fashionlens.io.deepfashion2 import read_deepfashion2

        return read_deepfashion2(args.pop("annotations"), args.pop("images"), **args)
    from fashionlens.io.imaterialist import read_imaterialist

    return read_imaterialist(args.pop("annotations"), args.pop("images"), **args)


def flatlay_records(config: DetectorTrainConfig) -> list[ImageRecord]:
    """Training-split single-garment product photos boxed by the flat-lay auto-annotation.

    ``config.flatlay = {sources: [clothing, rise], max_per_source: N}``. Only photos in the *train*
    split of each source (the same seeded group split the classifier uses) are annotated, so
    validation and test photos never leak into detector training. Photos whose box covers the
    whole photo (``covers_photo``: busy backgrounds) are dropped.
    """
    from fashionlens.detection.flatlay import annotate_flatlay
    from fashionlens.io.datasets import read_dataset

    out: list[ImageRecord] = []
    for source in config.flatlay.get("sources", []):
        train = group_split(read_dataset(source, config.data_root), fractions=config.split_fractions,
                            seed=config.seed)["train"]
        train = [r for r in train if len(r.garments) == 1 and r.garments[0].object_type is not None]
        random.Random(f"{config.seed}/flatlay/{source}").shuffle(train)
        train = train[: config.flatlay.get("max_per_source") or None]
        report = annotate_flatlay([r.path for r in train], labels={Path(r.path).resolve(): r for r in train})
        kept = [dataclasses.replace(r, source=f"flatlay-{source}") for r in report.records
                if "covers_photo" not in r.meta.get("flatlay_flags", [])]
        log.info("flat-lay %s: %d photos annotated, %d kept", source, len(train), len(kept))
        out += kept
    return out


def pseudo_label_records(config: DetectorTrainConfig, splits: dict[str, list[ImageRecord]]) -> list[ImageRecord]:
    """The pseudo-labelled photos of ``config.pseudo_labels`` (training only); raises if one of them is also
    a validation or test photo (CCP's tag-only photos are not among the masked photos that are split)."""
    from fashionlens.train.pseudo_labels import read_pseudo_coco

    held_out = {Path(r.path).resolve() for name in ("val", "test") for r in splits[name]}
    out: list[ImageRecord] = []
    for path in config.pseudo_labels:
        records = read_pseudo_coco(path, config.data_root)
        clash = [str(r.path) for r in records if Path(r.path).resolve() in held_out]
        if clash:
            raise ConfigError(f"pseudo_labels: {path} labels {len(clash)} validation/test photos, e.g. {clash[:3]}")
        log.info("pseudo-labels %s: %d photos, %d boxes", path, len(records), sum(len(r.garments) for r in records))
        out += records
    return out


def split_records(config: DetectorTrainConfig) -> dict[str, list[ImageRecord]]:
    """Train/val/test records: dev sources and unsplit user data by group; flat-lay photos train only."""
    from fashionlens.io.datasets import read_dataset

    pooled: list[ImageRecord] = []
    fixed: dict[str, list[ImageRecord]] = defaultdict(list)
    for source in config.sources:
        pooled += read_dataset(source, config.data_root)
    for entry in config.data:
        records = read_detection_data(entry)
        (fixed[entry["split"]] if entry.get("split") else pooled).extend(records)
    splits = group_split(pooled, fractions=config.split_fractions, seed=config.seed) if pooled else \
        {"train": [], "val": [], "test": []}
    for name, records in fixed.items():
        splits[name] += records
    if config.flatlay:
        splits["train"] += flatlay_records(config)
    if config.pseudo_labels:
        splits["train"] += pseudo_label_records(config, splits)
    if config.limit:
        splits = {k: v[: config.limit] for k, v in splits.items()}
    if not splits["train"] or not splits["val"]:
        raise ValueError(f"detector training needs train and val records, got {({k: len(v) for k, v in splits.items()})}")
    return splits


@dataclass
class CachedView:
    """One resized view of a photo: stem features (or the normalised image) and its targets."""

    record_index: int
    inputs: torch.Tensor  # (C, h, w) fp16: stem features, or the normalised image without freeze_stem
    image_size: tuple[int, int]  # resized, unpadded (h, w)
    padded_size: tuple[int, int]  # (H, W) of the padded input
    original_size: tuple[int, int]
    target: dict[str, torch.Tensor]  # boxes, labels, masks (uint8, padded size), mask_from_box
    semantic: torch.Tensor  # (H/4, W/4) uint8
    ignore_labels: tuple[int, ...] = ()  # classes (detector labels) neither positive nor negative in this photo


def _cache_key(config: DetectorTrainConfig, split: str, n: int) -> str:
    fields = {k: getattr(config, k) for k in ("data_root", "sources", "data", "flatlay", "arch", "size",
                                              "freeze_stem", "hflip", "seed", "split_fractions", "limit")}
    if split == "train" and config.zoom_views:
        fields.update(zoom_views=config.zoom_views, zoom_min_scale=config.zoom_min_scale)
    if split == "train" and config.pseudo_labels:  # the files' contents: regenerated labels make a new cache
        fields["pseudo_labels"] = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in config.pseudo_labels]
        fields["pseudo_ignore"] = config.pseudo_ignore
    fields["builder_kwargs"] = {k: v for k, v in config.builder_kwargs.items() if k in ("fpn_channels",)}
    blob = json.dumps({"split": split, "n": n, **fields}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


ZOOM_MIN_VISIBLE = 0.25  # a garment keeps its label in a zoom crop if this share of it stays visible


def zoom_crop(image: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor, from_box: torch.Tensor,
              rng: random.Random, min_scale: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random crop of ``min_scale``..1 of each side of a ``(3, h, w)`` image, with its targets.

    Boxes of garments with masks are re-fitted to the mask pixels left in the crop; box-only garments
    (``from_box``) are clipped. A garment with less than :data:`ZOOM_MIN_VISIBLE` of its mask (or box)
    area left is dropped. Returns the crop, boxes, masks, ``from_box`` and the kept garments' indices."""
    _, h, w = image.shape
    s = rng.uniform(min_scale, 1.0)
    cw, ch = max(1, round(w * s)), max(1, round(h * s))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop_masks = masks[:, y0:y0 + ch, x0:x0 + cw]
    keep, new_boxes = [], []
    for i in range(len(boxes)):
        if from_box[i]:
            bx = boxes[i].clone()
            area = float((bx[2] - bx[0]) * (bx[3] - bx[1]))
            bx[[0, 2]] = (bx[[0, 2]] - x0).clamp(0, cw)
            bx[[1, 3]] = (bx[[1, 3]] - y0).clamp(0, ch)
            visible = float((bx[2] - bx[0]) * (bx[3] - bx[1])) / max(area, 1e-6)
        else:
            total = float(masks[i].sum())
            ys, xs = torch.nonzero(crop_masks[i], as_tuple=True)
            visible = len(ys) / max(total, 1.0)
            bx = (torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
                  if len(ys) else torch.zeros(4))
        if visible >= ZOOM_MIN_VISIBLE and bx[2] - bx[0] >= 2 and bx[3] - bx[1] >= 2:
            keep.append(i)
            new_boxes.append(bx)
    idx = torch.tensor(keep, dtype=torch.int64)
    return (image[:, y0:y0 + ch, x0:x0 + cw], torch.stack(new_boxes) if keep else torch.zeros((0, 4)),
            crop_masks[idx], from_box[idx], idx)


@torch.no_grad()
def build_views(model: nn.Module, records: Sequence[ImageRecord], *, flips: Sequence[bool], freeze_stem: bool,
                desc: str = "cache", zooms: int = 0, zoom_min_scale: float = 0.6, seed: int = 0,
                pseudo_ignore: bool = True) -> list[CachedView]:
    """Resize with the model's transform, run the frozen stem, keep targets (see module docstring).

    A pseudo-labelled photo (``meta["ignore_types"]``, :mod:`fashionlens.train.pseudo_labels`) gets its
    ignored types as ``ignore_labels`` (unless ``pseudo_ignore`` is off) and an all-ignored semantic map
    (it has no masks: background there is unknown)."""
    from fashionlens.models.fcos_seg import IGNORE_INDEX, semantic_targets
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()
    device = _device_of(model)
    ds = DetectionDataset(records, size=16, with_masks=True, keep_negatives=True)
    views: list[CachedView] = []
    model.eval()
    for item in tqdm(ds.items, desc=desc, unit="img"):
        record = records[item.record_index]
        try:
            rgb = load_image(record.path).rgb
        except Exception as exc:  # noqa: BLE001 - one bad photo is reported and skipped, not fatal
            log.warning("skipping %s: %s", record.path, exc)
            continue
        h, w = rgb.shape[:2]
        pseudo = "ignore_types" in record.meta
        ignore = (tuple(sorted(tax.object_type_index(t) + 1 for t in record.meta["ignore_types"]))
                  if pseudo and pseudo_ignore else ())
        boxes, labels, masks, from_box = ds.full_size_targets(item, h, w)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        variants = [(image, boxes, labels, masks, from_box, flip) for flip in flips]
        rng = random.Random(f"{seed}/zoom/{item.record_index}")
        for _ in range(zooms):
            ci, cb, cm, cf, idx = zoom_crop(image, boxes, masks, from_box, rng, zoom_min_scale)
            variants.append((ci, cb, labels[idx], cm, cf, rng.random() < 0.5))
        for img, bxs, lbl, m, fb, flip in variants:
            vw = img.shape[-1]
            b = bxs.clone()
            if flip:
                img, m = img.flip(-1), m.flip(-1)
                if len(b):
                    b[:, [0, 2]] = vw - bxs[:, [2, 0]]
            target = {"boxes": b, "labels": lbl.clone(), "masks": m, "mask_from_box": fb.clone()}
            image_list, (t,) = model.transform([img], [target])
            padded = tuple(image_list.tensors.shape[-2:])
            if t["masks"].shape[-2:] != padded:
                pm = torch.zeros((len(t["masks"]), *padded), dtype=torch.uint8)
                pm[:, : t["masks"].shape[-2], : t["masks"].shape[-1]] = t["masks"]
                t["masks"] = pm
            keep = (t["boxes"][:, 2] - t["boxes"][:, 0] >= 1) & (t["boxes"][:, 3] - t["boxes"][:, 1] >= 1)
            t = {k: v[keep] for k, v in t.items()}
            inputs = (model.backbone.forward_stem(image_list.tensors.to(device)).cpu() if freeze_stem
                      else image_list.tensors)
            semantic = semantic_targets([t], padded)[0].to(torch.uint8)
            if pseudo:
                semantic.fill_(IGNORE_INDEX)
            views.append(CachedView(item.record_index, inputs[0].half(), tuple(image_list.image_sizes[0]), padded,
                                    tuple(img.shape[-2:]), t, semantic, ignore))
    return views


def cached_views(model: nn.Module, config: DetectorTrainConfig, split: str, records: Sequence[ImageRecord]
                 ) -> list[CachedView]:
    flips = (False, True) if split == "train" and config.hflip else (False,)
    path = Path(config.cache_dir) / f"{split}-{_cache_key(config, split, len(records))}.pt"
    if path.is_file():
        log.info("reading cached %s views from %s", split, path)
        return [CachedView(**v) for v in torch.load(path, weights_only=False)]
    zooms = config.zoom_views if split == "train" else 0
    views = build_views(model, records, flips=flips, freeze_stem=config.freeze_stem, desc=f"cache {split}",
                        zooms=zooms, zoom_min_scale=config.zoom_min_scale, seed=config.seed,
                        pseudo_ignore=config.pseudo_ignore)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save([dataclasses.asdict(v) for v in views], tmp), fsync=False)
    return views


# ------------------------------------------------------------------------------ model steps


def _batch(views: Sequence[CachedView], device: torch.device | None = None
           ) -> tuple[ImageList, torch.Tensor, list[dict[str, torch.Tensor]], torch.Tensor]:
    device = device or torch.device("cpu")
    inputs = torch.stack([v.inputs.float() for v in views]).to(device)
    h, w = views[0].padded_size
    dummy = torch.zeros((1, 1, h, w), device=device).expand(len(views), 3, h, w)
    image_list = ImageList(dummy, [v.image_size for v in views])
    targets = [{k: t.to(device) for k, t in v.target.items()} for v in views]
    semantic = torch.stack([v.semantic.long() for v in views]).to(device)
    return image_list, inputs, targets, semantic


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def features_of(model: nn.Module, inputs: torch.Tensor, freeze_stem: bool):
    if freeze_stem:
        return model.backbone.forward_from_stem(inputs)
    return model.backbone(inputs)


def losses_of(model: nn.Module, views: Sequence[CachedView], freeze_stem: bool) -> dict[str, torch.Tensor]:
    from fashionlens.models.fcos_seg import FCOSSeg

    image_list, inputs, targets, semantic = _batch(views, _device_of(model))
    features = features_of(model, inputs, freeze_stem)
    if isinstance(model, FCOSSeg):
        if any(v.ignore_labels for v in views) or _all_ignored(semantic):
            return _fcos_seg_losses_ignoring(model, image_list, features, targets, semantic,
                                             [v.ignore_labels for v in views])
        return model.losses_from_features(image_list, features, targets, semantic)
    if hasattr(model, "roi_heads"):  # Mask R-CNN
        proposals, proposal_losses = model.rpn(image_list, features, targets)
        _, detector_losses = model.roi_heads(features, proposals, image_list.image_sizes, targets)
        return {**proposal_losses, **detector_losses}
    raise TypeError(f"cannot train {type(model).__name__} from cached features")


def _all_ignored(semantic: torch.Tensor) -> bool:
    """Whether no pixel of a batch's semantic targets is labelled (a batch of pseudo-labelled photos only:
    the plain cross-entropy would be 0/0)."""
    from fashionlens.models.fcos_seg import IGNORE_INDEX

    return bool((semantic == IGNORE_INDEX).all())


def _fcos_seg_losses_ignoring(model: nn.Module, images: ImageList, features: dict[str, torch.Tensor],
                              targets: list[dict[str, torch.Tensor]], semantic: torch.Tensor,
                              ignore_labels: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """``FCOSSeg.losses_from_features`` with per-image ignored classes (:func:`~fashionlens.train.losses.fcos_losses_ignoring`);
    a batch whose semantic pixels are all ignored contributes a zero ``seg`` loss."""
    import torch.nn.functional as F

    from fashionlens.models.fcos_seg import IGNORE_INDEX
    from fashionlens.train.losses import fcos_losses_ignoring, ignore_mask

    feats = list(features.values())
    head_outputs = model.head(feats)
    anchors = model.anchor_generator(images, feats)
    num_anchors_per_level = [x.size(2) * x.size(3) for x in feats]
    ignore = ignore_mask(ignore_labels, head_outputs["cls_logits"].shape[-1])
    losses = fcos_losses_ignoring(model, targets, head_outputs, anchors, num_anchors_per_level, ignore)
    logits = model.seg_head(features["0"])
    logits = F.interpolate(logits, size=semantic.shape[-2:], mode="bilinear", align_corners=False)
    if bool((semantic != IGNORE_INDEX).any()):
        losses["seg"] = model.seg_loss_weight * F.cross_entropy(logits, semantic, ignore_index=IGNORE_INDEX)
    else:
        losses["seg"] = logits.sum() * 0.0
    return losses


@torch.no_grad()
def detect_views(model: nn.Module, views: Sequence[CachedView], freeze_stem: bool) -> list[dict[str, torch.Tensor]]:
    """Detections at the original image sizes for cached views (eval mode)."""
    from fashionlens.models.fcos_seg import FCOSSeg

    image_list, inputs, _, _ = _batch(views, _device_of(model))
    features = features_of(model, inputs, freeze_stem)
    originals = [v.original_size for v in views]
    if isinstance(model, FCOSSeg):
        out = model.detect_from_features(image_list, features, originals)
    else:
        proposals, _ = model.rpn(image_list, features)
        detections, _ = model.roi_heads(features, proposals, image_list.image_sizes)
        out = model.transform.postprocess(detections, image_list.image_sizes, originals)
    return [{k: v.cpu() for k, v in d.items()} for d in out]


def _batches(views: Sequence[CachedView], batch_size: int, rng: random.Random | None) -> list[list[CachedView]]:
    """Batches of views with equal padded size (shuffled when ``rng`` is given)."""
    by_shape: dict[tuple[int, int], list[CachedView]] = defaultdict(list)
    for v in views:
        by_shape[v.padded_size].append(v)
    batches = []
    for group in by_shape.values():
        if rng is not None:
            rng.shuffle(group)
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def evaluate_views(model: nn.Module, views: Sequence[CachedView], records: Sequence[ImageRecord], *,
                   freeze_stem: bool, batch_size: int = 8, pr_curve_png: str | Path | None = None) -> dict[str, Any]:
    """COCO metrics of ``model`` on cached views of ``records`` (object-type label space)."""
    from fashionlens.evaluate.detection import (
        evaluate_detections,
        records_to_coco,
        torchvision_to_coco_results,
    )

    model.eval()
    gt = records_to_coco(records)
    predictions: list[dict[str, Any]] = []
    for batch in _batches(views, batch_size, None):
        outputs = detect_views(model, batch, freeze_stem)
        predictions += torchvision_to_coco_results(outputs, [v.record_index + 1 for v in batch])
    result = evaluate_detections(gt, predictions, pr_curve_png=pr_curve_png)
    result["predictions"] = len(predictions)
    return result


# ------------------------------------------------------------------------------ training loop


def _param_groups(model: nn.Module, config: DetectorTrainConfig) -> list[dict[str, Any]]:
    # the RoI mask head trains in its own stage (train_roi_masks), not with the boxes
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not n.startswith("roi_mask.")]
    backbone = [p for n, p in named if n.startswith("backbone.body.")]
    rest = [p for n, p in named if not n.startswith("backbone.body.")]
    return [{"params": backbone, "lr": config.backbone_lr}, {"params": rest, "lr": config.lr}]


def _freeze_stem(model: nn.Module) -> None:
    body = model.backbone.body
    for module in (body.conv_stem, body.bn1, *body.blocks[: model.backbone._stem_blocks]):
        for p in module.parameters():
            p.requires_grad_(False)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    box, mask = (result.get("bbox") or {}).get("stats") or {}, (result.get("segm") or {}).get("stats") or {}
    return {"box_ap": box.get("AP"), "box_ap50": box.get("AP50"), "mask_ap": mask.get("AP"),
            "mask_ap50": mask.get("AP50")}


def build_model(config: DetectorTrainConfig) -> nn.Module:
    kwargs = {"min_size": config.size, "max_size": config.size, **config.builder_kwargs}
    return DETECTORS[config.arch](num_classes=len(detector_class_names()) - 1, pretrained_backbone=True, **kwargs)


@dataclass
class _BoxRun:
    """The box-training stage: model, optimiser, its schedule and the state ``last.pt`` stores
    (epoch, step, best validation box AP and its epoch, evaluations since the best)."""

    config: DetectorTrainConfig
    out: Path
    model: nn.Module
    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    total_steps: int
    state: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": -1,
                                                           "evals_since_best": 0})

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    def lr_factor(self, step: int) -> float:
        """Linear warm-up for ``warmup_iters`` steps, then cosine decay to 0."""
        warmup = self.config.warmup_iters
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, self.total_steps - warmup))))


def _start(config: DetectorTrainConfig, resume: bool) -> Path:
    """Seed, make ``out_dir`` (emptied of an earlier run's state unless ``resume``), write ``config.json``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:  # start over: no epoch, mask-head stage or log of an earlier run is reused
        for name in ("last.pt", "best.pt", "roi_mask.pt", "roi_mask_last.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
    return out


def _initial_model(config: DetectorTrainConfig) -> nn.Module:
    """The configured detector, from ``init_from``'s weights when set, with the stem frozen if asked."""
    model = build_model(config)
    if config.init_from:
        from fashionlens.models.detector_weights import load_detector

        trained, trained_meta = load_detector(config.init_from)
        if trained_meta.arch != config.arch:
            raise ConfigError(f"init_from: {config.init_from} is a {trained_meta.arch!r} detector, config arch is {config.arch!r}")
        if config.roi_mask_only:  # the mask head is trained fresh: init_from may have none
            _load_partial(model, trained.state_dict())
        else:
            model.load_state_dict(trained.state_dict())
        log.info("initialised from %s", config.init_from)
    if config.freeze_stem:
        _freeze_stem(model)
    return model


def _new_box_run(model: nn.Module, config: DetectorTrainConfig, out: Path, n_train: int) -> _BoxRun:
    optimizer = torch.optim.AdamW(_param_groups(model, config), weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    return _BoxRun(config=config, out=out, model=model, optimizer=optimizer,
                   base_lrs=[g["lr"] for g in optimizer.param_groups],
                   total_steps=max(1, steps_per_epoch * config.epochs))


def _resume(run: _BoxRun) -> None:
    """Continue from ``last.pt`` when there is one: weights, optimiser and state."""
    if run.last.is_file():
        ckpt = torch.load(run.last, map_location="cpu", weights_only=False)
        _load_partial(run.model, ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.state = ckpt["state"]
        log.info("resumed from %s at epoch %d", run.last, run.state["epoch"])


def _optimise(optimizer: Any, run: Any, state: dict[str, Any], losses: dict[str, Any], grad_clip: float,
              sums: dict[str, float], n_batches: int) -> None:
    """One optimisation step on ``losses``: the scheduled learning rate, backward, gradient clipping, step;
    each loss added to ``sums`` as its share of the epoch's mean over ``n_batches``."""
    for g, base in zip(optimizer.param_groups, run.base_lrs):
        g["lr"] = base * run.lr_factor(state["step"])
    loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    optimizer.step()
    state["step"] += 1
    for k, v in losses.items():
        sums[k] += float(v.detach()) / n_batches


def _train_epoch(run: _BoxRun, by_record: dict[int, list[CachedView]]) -> dict[str, Any]:
    """One epoch over one seeded view per training image; returns the epoch's log record (losses, time)."""
    config, model, optimizer, state = run.config, run.model, run.optimizer, run.state
    epoch = state["epoch"]
    rng = random.Random(f"{config.seed}/{epoch}")
    chosen = [rng.choice(vs) for _, vs in sorted(by_record.items())]
    model.train()
    sums: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    batches = _batches(chosen, config.batch_size, rng)
    for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False):
        losses = losses_of(model, batch, config.freeze_stem)
        _optimise(optimizer, run, state, losses, config.grad_clip, sums, len(batches))
    return {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 1),
            "loss": {k: round(v, 4) for k, v in sums.items()}}


def online_dataset(config: DetectorTrainConfig, records: Sequence[ImageRecord]) -> DetectionDataset:
    """The augmenting training set of the online path: photos shrunk to the largest training size (aspect
    kept, not padded), crops, mirror, brightness/contrast (:func:`augment_options`)."""
    high = float(config.augment.get("scale", [1.0, 1.0])[1])
    return DetectionDataset(records, size=int(math.ceil(config.size * high / 32) * 32), keep_aspect=True, pad=False,
                            hflip_prob=0.5 if config.hflip else 0.0, with_masks=True, keep_negatives=True,
                            seed=config.seed, augment=augment_options(config))


def _online_losses(model: nn.Module, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]],
                   records: Sequence[ImageRecord], pseudo_ignore: bool) -> dict[str, torch.Tensor]:
    """Losses of one augmented batch through the whole network (transform, backbone, heads); pseudo-labelled
    photos as in :func:`build_views` (ignored types, ignored semantic map)."""
    from fashionlens.models.fcos_seg import IGNORE_INDEX, semantic_targets
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()
    device = _device_of(model)
    ids = [int(t["image_id"]) for t in targets]
    keys = ("boxes", "labels", "masks", "mask_from_box")
    image_list, moved = model.transform([im.to(device) for im in images],
                                        [{k: t[k].to(device) for k in keys} for t in targets])
    padded = tuple(image_list.tensors.shape[-2:])
    semantic = semantic_targets([{k: v.cpu() for k, v in t.items()} for t in moved], padded)
    ignore: list[tuple[int, ...]] = []
    for b, i in enumerate(ids):
        meta = records[i].meta
        if "ignore_types" in meta:
            semantic[b] = IGNORE_INDEX
        ignore.append(tuple(tax.object_type_index(t) + 1 for t in meta.get("ignore_types", []))
                      if pseudo_ignore else ())
    features = model.backbone(image_list.tensors)
    semantic = semantic.to(device)
    if any(ignore) or _all_ignored(semantic):
        return _fcos_seg_losses_ignoring(model, image_list, features, moved, semantic, ignore)
    return model.losses_from_features(image_list, features, moved, semantic)


def _train_epoch_online(run: _BoxRun, dataset: DetectionDataset) -> dict[str, Any]:
    """One epoch of the online path: every training photo once, augmented, in seeded order; each batch at a
    random input size in ``augment.scale`` × ``size`` (a multiple of 32)."""
    from torch.utils.data import DataLoader

    from fashionlens.train.detection_data import collate_detection

    config, model, optimizer, state = run.config, run.model, run.optimizer, run.state
    epoch = state["epoch"]
    rng = random.Random(f"{config.seed}/{epoch}")
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=generator,
                        num_workers=config.num_workers, collate_fn=collate_detection,
                        persistent_workers=False, pin_memory=_device_of(model).type == "cuda")
    low, high = (float(v) for v in config.augment.get("scale", [1.0, 1.0]))
    transform = model.transform
    sizes = (transform.min_size, transform.max_size)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    try:
        for images, targets in tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False):
            side = max(64, round(config.size * rng.uniform(low, high) / 32) * 32)
            transform.min_size, transform.max_size = (side,), side
            losses = _online_losses(model, images, targets, dataset.records, config.pseudo_ignore)
            _optimise(optimizer, run, state, losses, config.grad_clip, sums, len(loader))
    finally:
        transform.min_size, transform.max_size = sizes
    return {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 1),
            "loss": {k: round(v, 4) for k, v in sums.items()}}


def _validate(run: _BoxRun, views: Sequence[CachedView], records: Sequence[ImageRecord],
              record: dict[str, Any]) -> None:
    """Validation box/mask AP into ``record``; ``best.pt`` when the box AP improves."""
    state = run.state
    val = _summary(evaluate_views(run.model, views, records, freeze_stem=run.config.freeze_stem))
    record["val"] = val
    score = val["box_ap"] or 0.0
    if score > state["best"]:
        state.update(best=score, best_epoch=state["epoch"], evals_since_best=0)
        torch.save(run.model.state_dict(), run.out / "best.pt")
    else:
        state["evals_since_best"] += 1


def _checkpoint(run: _BoxRun, record: dict[str, Any]) -> None:
    """Log the epoch (``metrics.jsonl``) and write ``last.pt`` atomically."""
    with (run.out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    log.info("%s", record)
    atomic_write(run.last, lambda tmp: torch.save({"model": run.model.state_dict(),
                                                    "optimizer": run.optimizer.state_dict(), "state": run.state}, tmp))


def _train_boxes(run: _BoxRun, splits: dict[str, list[ImageRecord]], views: dict[str, list[CachedView]]) -> None:
    """Box epochs until ``epochs`` or ``patience`` evaluations without improvement; then the best weights.
    With ``augment`` the epochs run on augmented photos (:func:`_train_epoch_online`), else on cached views."""
    config = run.config
    _resume(run)
    state = run.state
    by_record: dict[int, list[CachedView]] = defaultdict(list)
    for v in views.get("train", []):
        by_record[v.record_index].append(v)
    dataset = online_dataset(config, splits["train"]) if config.augment else None
    while state["epoch"] < config.epochs and state["evals_since_best"] < config.patience:
        record = _train_epoch_online(run, dataset) if dataset is not None else _train_epoch(run, by_record)
        state["epoch"] += 1
        if state["epoch"] % config.eval_every == 0 or state["epoch"] == config.epochs:
            _validate(run, views["val"], splits["val"], record)
        _checkpoint(run, record)
    if (run.out / "best.pt").is_file():
        _load_partial(run.model, torch.load(run.out / "best.pt", map_location="cpu", weights_only=True))


def train_detector(config: DetectorTrainConfig, *, resume: bool = True) -> dict[str, Any]:
    """Run the recipe of the module docstring; returns the summary also written to ``eval.json``."""
    out = _start(config, resume)
    splits = split_records(config)
    log.info("detector data: %s", {k: len(v) for k, v in splits.items()})
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("training on %s", device)
    model = _initial_model(config).to(device)
    # the online path (augment) needs cached training views only for the RoI mask stage: built after the boxes
    names = ("val",) if config.augment and not config.roi_mask_only else ("train", "val")
    views = {name: cached_views(model, config, name, splits[name]) for name in names}
    if config.roi_mask_only:
        return _retrain_roi_masks(model, config, splits, views)
    run = _new_box_run(model, config, out, len(splits["train"]))
    _train_boxes(run, splits, views)
    if config.roi_mask_epochs:
        if getattr(model, "roi_mask", None) is None:
            raise ConfigError("roi_mask_epochs > 0 needs an fcos-seg detector with builder_kwargs: {roi_masks: true}")
        if "train" not in views:
            views["train"] = cached_views(model, config, "train", splits["train"])
        train_roi_masks(model, mask_training_views(views["train"], splits["train"], config), config)
    return finish(model, config, splits, views["val"], run.state)


def _retrain_roi_masks(model: nn.Module, config: DetectorTrainConfig, splits: dict[str, list[ImageRecord]],
                       views: dict[str, list[CachedView]]) -> dict[str, Any]:
    """``roi_mask_only``: a fresh, seeded RoI mask head on ``init_from``'s frozen detector."""
    from fashionlens.models.detector_weights import load_detector

    if getattr(model, "roi_mask", None) is None:
        raise ConfigError("roi_mask_only needs an fcos-seg detector with builder_kwargs: {roi_masks: true}")
    torch.manual_seed(config.seed)
    model.reset_roi_mask()
    train_roi_masks(model, mask_training_views(views["train"], splits["train"], config), config)
    defaults = load_detector(config.init_from)[1].extra.get("defaults")
    state = {"epoch": 0, "best_epoch": None, "roi_mask_only": True}
    return finish(model, config, splits, views["val"], state, defaults=defaults)


def _load_partial(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint that may lack the RoI mask head (trained in a later stage)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("roi_mask.")] + list(unexpected)
    if bad:
        raise ValueError(f"checkpoint does not fit the model: {bad[:5]}")


def mask_training_views(views: Sequence[CachedView], records: Sequence[ImageRecord],
                        config: DetectorTrainConfig) -> list[CachedView]:
    """The training views the RoI mask head learns from (without flat-lay photos if ``roi_mask_flatlay`` is off)."""
    if config.roi_mask_flatlay:
        return list(views)
    return [v for v in views if not records[v.record_index].source.startswith("flatlay-")]


def train_roi_masks(model: nn.Module, views: Sequence[CachedView], config: DetectorTrainConfig) -> None:
    """Second stage: the RoI mask head on ground-truth boxes (jittered), everything else frozen.

    Instances whose mask is only their box (``mask_from_box``) are left out. The trained head is
    saved to ``roi_mask.pt`` in ``out_dir``; a rerun loads it instead of training again. Every
    epoch writes ``roi_mask_last.pt`` (head, optimiser, step, RNG state), so an interrupted stage
    resumes at its next epoch and ends as an uninterrupted one would.
    """
    head = model.roi_mask
    out = Path(config.out_dir)
    path = out / "roi_mask.pt"
    if path.is_file():
        head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        log.info("RoI mask head read from %s", path)
        return
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.roi_mask_lr, weight_decay=config.weight_decay)
    last = out / "roi_mask_last.pt"
    start = step = 0
    if last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        head.load_state_dict(ckpt["head"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, step = ckpt["epoch"], ckpt["step"]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("RoI mask head resumed from %s after epoch %d", last, start)
    by_record: dict[int, list[CachedView]] = defaultdict(list)
    for v in views:
        by_record[v.record_index].append(v)
    model.eval()
    head.train()
    steps = config.roi_mask_epochs * math.ceil(len(by_record) / config.batch_size)
    for epoch in range(start, config.roi_mask_epochs):
        rng = random.Random(f"{config.seed}/roi/{epoch}")
        chosen = [rng.choice(vs) for _, vs in sorted(by_record.items())]
        total = 0.0
        batches = _batches(chosen, config.batch_size, rng)
        for batch in tqdm(batches, desc=f"mask head {epoch + 1}/{config.roi_mask_epochs}", unit="batch", leave=False):
            image_list, inputs, targets, _ = _batch(batch, _device_of(model))
            targets = [{k: v[~t["mask_from_box"]] for k, v in t.items()} for t in targets]
            if not any(len(t["boxes"]) for t in targets):
                continue
            with torch.no_grad():
                features = features_of(model, inputs, config.freeze_stem)
            for g in optimizer.param_groups:
                g["lr"] = config.roi_mask_lr * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
            loss = head.loss(features, targets, image_list.image_sizes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += float(loss.detach()) / len(batches)
        log.info("mask head epoch %d: loss %.4f", epoch + 1, total)
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"mask_head_epoch": epoch + 1, "loss": round(total, 4)}) + "\n")
        checkpoint = {"head": head.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                      "step": step, "torch_rng": torch.get_rng_state()}
        atomic_write(last, lambda tmp, c=checkpoint: torch.save(c, tmp))
    head.eval()
    torch.save(head.state_dict(), path)
    last.unlink(missing_ok=True)


def finish(model: nn.Module, config: DetectorTrainConfig, splits: dict[str, list[ImageRecord]],
           val_views: Sequence[CachedView], state: dict[str, Any], *,
           defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate the chosen model on val and test, save it fp16 with metadata, write ``eval.json``.

    ``defaults``: run-time defaults to store with the weights (as ``evaluate detector --save-defaults`` does).
    """
    out = Path(config.out_dir)
    val = evaluate_views(model, val_views, splits["val"], freeze_stem=config.freeze_stem)
    test_views = (cached_views(model, config, "test", splits["test"])
                  if splits["test"] and config.evaluate_test else [])
    test = (evaluate_views(model, test_views, splits["test"], freeze_stem=config.freeze_stem,
                           pr_curve_png=out / "pr_test.png") if test_views else None)
    summary = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "records": {k: len(v) for k, v in splits.items()}, "val": val, "test": test}
    meta = DetectorMeta(name=config.model_name, version=config.model_version, arch=config.arch,
                        class_names=tuple(detector_class_names()),
                        builder_kwargs={"min_size": config.size, "max_size": config.size, **config.builder_kwargs},
                        metrics={"val": _summary(val), "test": _summary(test) if test else None},
                        extra={"config": config.to_dict(), **({"defaults": defaults} if defaults else {})})
    save_detector(model.cpu(), meta, out / "model.pt")
    (out / "eval.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
