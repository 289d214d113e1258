"""Retrain the classifier's heads from a review store's corrections (issue 25, item 5).

``fashionlens train classifier --corrections review.sqlite`` runs :func:`retrain_from_corrections`:

1. :func:`read_corrections` reads the reviewed garments/items (status ``accepted`` or ``corrected``; pending
   and skipped ones are left out) and turns each one's final values (the reviewer's answer, else the model's
   sure value the reviewer accepted) into labels for the classifier's heads. Values outside a head's
   vocabulary are dropped and counted (``unknown``); the same garment (same photo and box, or same item id)
   reviewed twice with different values for a field loses that field in every copy and is counted
   (``contradictions``); an answered object type that disagrees with the category's object type drops both.
   Agreeing copies of one garment give one sample. A garment left with no label, or whose photo cannot be
   read, is skipped and counted.
2. :func:`prepare_correction_samples` cuts each garment from its photo (the box plus a 10 % margin, squashed to
   the input size: what ``prepare_samples`` does for the training data) into ``OUT/corrections/images``.
3. The CPU recipe, heads only: the base weights' whole backbone is frozen; its pooled features are computed
   once per image (the original training split's are cached in the recipe's sample cache, keyed by the
   weights' hash; the corrections' in the out dir) and the linear heads, initialised from the base weights,
   are fine-tuned on original train + corrections for a fixed number of epochs
   (:func:`fashionlens.train.feature_cache.fit_heads`).
4. ``OUT/model.pt`` (fp16, the base meta with the colour threshold re-tuned on validation and the val/test
   metrics), ``OUT/eval.json``, ``OUT/corrections.json`` (what was read, used and skipped), and the
   recalibration on the recipe's validation split: ``OUT/model.calibration.json`` next to the weights
   (:func:`fashionlens.evaluate.calibration.run_calibration`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fashionlens.io.atomic import atomic_write
from fashionlens.models.heads import HeadSpec
from fashionlens.review.store import ReviewStore, Task
from fashionlens.taxonomy import load_taxonomy
from fashionlens.train.samples import Sample

__all__ = ["Correction", "CorrectionsReport", "NoCorrectionsError", "prepare_correction_samples",
           "read_corrections", "retrain_from_corrections"]

log = logging.getLogger(__name__)

DONE: tuple[str, ...] = ("accepted", "corrected")
#: the crop margin around a garment's box (as ``prepare_samples`` cuts the training data)
CROP_MARGIN = 0.1


class NoCorrectionsError(ValueError):
    """The review store holds no reviewed garment/item with a usable label."""


@dataclass(frozen=True)
class Correction:
    """One reviewed garment/item as classifier labels: where its pixels are and what the reviewer settled."""

    key: str                       # the garment's identity (photo + box, or item id)
    task_ids: tuple[int, ...]      # the review tasks that agree on it
    photo: str | None              # a path; None when the photo is kept in the store (``store_photo_task``)
    store_photo_task: int | None
    bbox_xywh: tuple[float, float, float, float] | None
    group: str
    category: str | None
    object_type: str | None
    attributes: dict[str, str | list[str]]


@dataclass
class CorrectionsReport:
    """What :func:`read_corrections` found: reviewed tasks read, garments used, and every value or task left
    out, by reason."""

    tasks: int = 0
    garments: int = 0
    used: int = 0
    labels: Counter = field(default_factory=Counter)           # field -> garments labelled
    unknown: Counter = field(default_factory=Counter)          # field -> values dropped (not in the vocabulary)
    unknown_examples: dict[str, list[str]] = field(default_factory=dict)
    contradictions: Counter = field(default_factory=Counter)   # field -> garments whose copies disagree
    skipped: Counter = field(default_factory=Counter)          # reason -> garments skipped
    validation_photos: int = 0   # garments used whose photo is one of the recipe's validation photos

    def to_json(self) -> dict[str, Any]:
        return {"tasks_read": self.tasks, "garments": self.garments, "used": self.used,
                "labels": dict(self.labels), "unknown_values_dropped": dict(self.unknown),
                "unknown_examples": self.unknown_examples, "contradicting_fields_dropped": dict(self.contradictions),
                "skipped": dict(self.skipped), "validation_photos_used": self.validation_photos}


def _norm(value: Any) -> Any:
    return tuple(sorted(value)) if isinstance(value, list) else value


def _garment_key(task: Task) -> str:
    if task.kind == "item" and task.item_id:
        return f"item:{task.item_id}"
    where = task.photo or f"store-photo:{task.id}"
    box = "" if task.bbox is None else ",".join(str(round(float(v))) for v in task.bbox)
    return f"{task.kind}:{where}#{box}"


def _labels_of(task: Task, heads: Mapping[str, HeadSpec], report: CorrectionsReport) -> dict[str, Any]:
    """The head labels one task settles (unknown values dropped and counted)."""
    tax = load_taxonomy()
    values = task.final_values()
    out: dict[str, Any] = {}

    def unknown(name: str, value: Any) -> None:
        report.unknown[name] += 1
        examples = report.unknown_examples.setdefault(name, [])
        if repr(value) not in examples and len(examples) < 5:
            examples.append(repr(value))

    category = values.get("category")
    if isinstance(category, str):
        if category in heads["category"].values:
            out["category"] = category
        else:
            unknown("category", category)
    answered_type = task.answers.get("object_type")
    model_type = task.field("object_type").value if "object_type" in values else task.object_type
    if isinstance(answered_type, str) and answered_type not in tax.object_types:
        unknown("object_type", answered_type)
        answered_type = None
    if "category" in out:
        implied = tax.category_object_type[out["category"]]
        if isinstance(answered_type, str) and answered_type != implied:
            # the reviewer's object type and category disagree: neither can be trusted
            report.contradictions["category/object_type"] += 1
            del out["category"]
        else:
            out["object_type"] = implied
    elif isinstance(answered_type, str):
        out["object_type"] = answered_type
    elif isinstance(model_type, str):
        if model_type in tax.object_types:
            out["object_type"] = model_type
        else:
            unknown("object_type", model_type)
    for name, head in heads.items():
        if name == "category":
            continue
        value = values.get(name)
        if value is None:
            value = values.get(f"grades.{name}")
        if value is None or value == []:
            continue
        if head.kind == "multi":
            listed = value if isinstance(value, list) else [value]
            if all(isinstance(v, str) and v in head.values for v in listed):
                out[name] = sorted(set(listed))
            else:
                unknown(name, value)
        elif isinstance(value, str) and value in head.values:
            out[name] = value
        else:
            unknown(name, value)
    return out


def read_corrections(store: ReviewStore | str | Path, heads: Sequence[HeadSpec]
                     ) -> tuple[list[Correction], CorrectionsReport]:
    """The reviewed garments/items of ``store`` as classifier labels for ``heads`` (module docstring, step 1)."""
    if not isinstance(store, ReviewStore):
        store = ReviewStore(store, create=False)
    by_name = {h.name: h for h in heads}
    if "category" not in by_name:
        raise ValueError("expected classifier heads with a 'category' head")
    report = CorrectionsReport()
    groups: dict[str, list[tuple[Task, dict[str, Any]]]] = defaultdict(list)
    for task in store.tasks(statuses=DONE):
        report.tasks += 1
        groups[_garment_key(task)].append((task, _labels_of(task, by_name, report)))
    report.garments = len(groups)
    corrections: list[Correction] = []
    for key, copies in groups.items():
        merged: dict[str, Any] = {}
        for name in {n for _, labels in copies for n in labels}:
            seen = {_norm(labels[name]) for _, labels in copies if name in labels}
            if len(seen) > 1:
                report.contradictions[name] += 1
                continue
            merged[name] = next(labels[name] for _, labels in copies if name in labels)
        task = copies[0][0]
        if not merged:
            report.skipped["no_usable_label"] += 1
            continue
        photo, store_task = task.photo, None
        if not photo or not Path(photo).is_file():
            holder = next((t for t, _ in copies if t.photo_roles), None)
            if holder is None:
                report.skipped["photo_missing"] += 1
                continue
            photo, store_task = None, holder.id
        for name in merged:
            report.labels[name] += 1
        corrections.append(Correction(
            key=key, task_ids=tuple(t.id for t, _ in copies), photo=photo, store_photo_task=store_task,
            bbox_xywh=None if task.bbox is None else tuple(float(v) for v in task.bbox),  # type: ignore[arg-type]
            group=task.group or f"review/{task.id}", category=merged.get("category"),
            object_type=merged.get("object_type"),
            attributes={k: v for k, v in merged.items() if k not in ("category", "object_type")}))
    report.used = len(corrections)
    return corrections, report


def _crop(image: Image.Image, bbox_xywh: Sequence[float] | None, size: int) -> Image.Image:
    if bbox_xywh is not None:
        x, y, w, h = (float(v) for v in bbox_xywh)
        mx, my = w * CROP_MARGIN, h * CROP_MARGIN
        box = (max(0, int(x - mx)), max(0, int(y - my)), min(image.width, int(np.ceil(x + w + mx))),
               min(image.height, int(np.ceil(y + h + my))))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            image = image.crop(box)
    return image.resize((size, size), Image.BILINEAR)


def prepare_correction_samples(corrections: Sequence[Correction], store: ReviewStore | None, out_dir: str | Path, *,
                               size: int = 224, quality: int = 85) -> tuple[list[Sample], Counter]:
    """Cut each correction's garment into ``out_dir/images`` (module docstring, step 2); returns the training
    samples (paths relative to ``out_dir``) and the count of photos that could not be read."""
    import io

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    failed: Counter = Counter()
    for c in corrections:
        digest = hashlib.sha1(f"{c.key}|{size}".encode()).hexdigest()[:16]
        name = f"images/review_{digest}.jpg"
        try:
            if c.photo is not None:
                with Image.open(c.photo) as im:
                    rgb = im.convert("RGB")
            else:
                kept = store.photo(int(c.store_photo_task)) if store is not None and c.store_photo_task else None
                if kept is None:
                    raise OSError("photo not kept in the store")
                with Image.open(io.BytesIO(kept[0])) as im:
                    rgb = im.convert("RGB")
        except (OSError, ValueError) as exc:
            log.warning("correction %s: photo unreadable (%s); skipped", c.key, exc)
            failed["photo_unreadable"] += 1
            continue
        small = _crop(rgb, c.bbox_xywh, size)
        atomic_write(out / name, lambda tmp, im=small: im.save(tmp, "JPEG", quality=quality), fsync=False)
        bbox_xyxy = None if c.bbox_xywh is None else [c.bbox_xywh[0], c.bbox_xywh[1], c.bbox_xywh[0] + c.bbox_xywh[2],
                                                     c.bbox_xywh[1] + c.bbox_xywh[3]]
        samples.append(Sample(file=name, source="review", group=c.group, split="train",
                              categories=[c.category] if c.category else [], object_type=c.object_type,
                              attributes=dict(c.attributes), source_label=None, origin=c.photo or c.key,
                              bbox_xyxy=bbox_xyxy))
    return samples, failed


def _outside_test_split(samples: list[Sample], by_split: Mapping[str, Sequence[Sample]],
                        report: CorrectionsReport) -> list[Sample]:
    """The correction samples whose photo is not one of the recipe's test photos (those are skipped and counted:
    training on them would inflate the test metrics). Photos of the validation split are kept, with a warning:
    the validation metrics and the recalibration then saw them."""
    def resolved(path: str) -> str:
        try:
            return str(Path(path).resolve())
        except (OSError, RuntimeError):
            return path

    held = {name: {resolved(s.origin) for s in by_split.get(name, ()) if s.origin} for name in ("val", "test")}
    kept = []
    for s in samples:
        where = resolved(s.origin) if s.origin else ""
        if where in held["test"]:
            report.skipped["photo_in_test_split"] += 1
            continue
        if where in held["val"]:
            report.validation_photos += 1
        kept.append(s)
    if report.validation_photos:
        log.warning("%d corrected photos are validation photos of the recipe: its validation metrics and the "
                    "recalibration are not independent of them", report.validation_photos)
    return kept


# ---------------------------------------------------------------------------------------------- retraining


@dataclass(frozen=True)
class HeadRecipe:
    """The heads-only fine-tune (see :func:`fashionlens.train.feature_cache.fit_heads`)."""

    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 256
    correction_weight: float = 1.0   # a correction's weight relative to an original training sample


def split_features(config: Any, base_weights: str | Path, splits: Sequence[str] = ("train", "val", "test"), *,
                   model: Any = None) -> tuple[Any, dict[str, list[Sample]], dict[str, torch.Tensor]]:
    """The base model (eval mode; ``model`` when already loaded from ``base_weights``), the recipe's samples by
    split and their pooled features (cached in the recipe's sample cache as ``pooled-<weights hash>-<split>.pt``)."""
    from fashionlens.models.classifier import load_classifier
    from fashionlens.train.classifier import ensure_cache
    from fashionlens.train.feature_cache import (
        cached_pooled_features,
        load_pooled_features,
        pooled_extractor,
        weights_digest,
    )
    from fashionlens.train.samples import SampleDataset

    model = model if model is not None else load_classifier(base_weights)
    digest = weights_digest(base_weights)
    samples = ensure_cache(config)
    by_split = {k: [s for s in samples if s.split == k] for k in splits}
    datasets = {k: SampleDataset(config.cache_dir, by_split[k], model.meta.heads, mean=model.meta.mean,
                                 std=model.meta.std, size=model.meta.input_size) for k in splits}
    extractor, runtime = None, "torch"
    feats = {}
    for k in splits:
        cache_file = Path(config.cache_dir) / f"pooled-{digest}-{k}.pt"
        cached = load_pooled_features(datasets[k], cache_file, weights_key=digest)
        if cached is not None:
            feats[k] = cached
            continue
        if extractor is None:
            extractor, runtime = pooled_extractor(model, base_weights, datasets[k])
        feats[k] = cached_pooled_features(extractor, datasets[k], cache_file, weights_key=digest,
                                          batch_size=config.batch_size, desc=f"pooled features ({k}, {runtime})")
    return model, by_split, feats


def _colour_thresholds(model: Any, probs: dict[str, np.ndarray], samples: Sequence[Sample]) -> dict[str, float]:
    from fashionlens.evaluate.classification import best_threshold, multi_label_truth

    out = dict(model.meta.thresholds or {})
    for h in model.meta.heads:
        if h.kind == "multi":
            idx, yt = multi_label_truth(samples, h)
            if idx:
                out[h.name] = best_threshold(probs[h.name][idx], yt)
    return out


def retrain_from_corrections(store_path: str | Path, config: Any, *, base_weights: str | Path | None = None,
                             out_dir: str | Path | None = None, recipe: HeadRecipe = HeadRecipe(),
                             config_path: str | Path | None = None, recalibrate: bool = True,
                             progress: bool = True) -> dict[str, Any]:
    """The whole loop of the module docstring; returns the summary written to ``OUT/corrections.json``.

    ``config``: the classifier recipe (:class:`~fashionlens.train.config.ClassifierTrainConfig`: sample cache,
    sources, split, loss weights); ``config_path`` the YAML it came from (the calibration's recipe).
    Raises :class:`NoCorrectionsError` when the store has no usable correction."""
    from fashionlens.evaluate.classification import classifier_metrics
    from fashionlens.models.classifier import load_classifier, save_classifier
    from fashionlens.models.registry import default_weights_path
    from fashionlens.train.classifier import _summary, balance_weights, seed_everything
    from fashionlens.train.feature_cache import (
        cached_pooled_features,
        fit_heads,
        head_probs,
        pooled_extractor,
        weights_digest,
    )
    from fashionlens.train.samples import SampleDataset

    t0 = time.perf_counter()
    seed_everything(config.seed)
    torch.set_num_threads(max(1, int(config.workers)))
    base = Path(base_weights) if base_weights else default_weights_path()
    out = Path(out_dir or config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ReviewStore(store_path, create=False)
    model = load_classifier(base)
    corrections, report = read_corrections(store, model.meta.heads)
    samples, failed = prepare_correction_samples(corrections, store, out / "corrections",
                                                 size=model.meta.input_size)
    report.skipped.update(failed)
    report.used = len(samples)
    if not samples:
        raise NoCorrectionsError(f"{store_path}: expected at least one accepted or corrected garment/item with a "
                                 f"label the classifier knows; found none ({json.dumps(report.to_json())})")
    model, by_split, feats = split_features(config, base, model=model)
    samples = _outside_test_split(samples, by_split, report)
    if not samples:
        raise NoCorrectionsError(f"{store_path}: every corrected photo is one of the recipe's test photos; "
                                 "expected corrections of other photos (test must stay unseen)")
    report.used = len(samples)
    digest = weights_digest(base)
    ds = SampleDataset(out / "corrections", samples, model.meta.heads, mean=model.meta.mean, std=model.meta.std,
                       size=model.meta.input_size)
    extractor, _ = pooled_extractor(model, base, ds)
    corr_feats = cached_pooled_features(extractor, ds, out / "corrections" / f"pooled-{digest}.pt",
                                        weights_key=digest, batch_size=config.batch_size,
                                        desc="pooled features (corrections)")
    t_features = time.perf_counter() - t0
    train = list(by_split["train"]) + samples
    weights = balance_weights(train)
    weights[len(by_split["train"]):] *= recipe.correction_weight
    losses = fit_heads(model, torch.cat([feats["train"], corr_feats]), train, epochs=recipe.epochs, lr=recipe.lr,
                       weight_decay=config.weight_decay, batch_size=recipe.batch_size,
                       label_smoothing=config.label_smoothing, head_loss_weights=dict(config.head_loss_weights),
                       sample_weights=weights, seed=config.seed)
    val_probs = head_probs(model, feats["val"])
    thresholds = _colour_thresholds(model, val_probs, by_split["val"])
    heads = model.meta.heads
    val_metrics = classifier_metrics(val_probs, by_split["val"], heads, thresholds=thresholds)
    test_metrics = classifier_metrics(head_probs(model, feats["test"]), by_split["test"], heads, thresholds=thresholds)
    model.meta.thresholds = thresholds
    model.meta.metrics = {"val": _summary(val_metrics), "test": _summary(test_metrics)}
    model.meta.extra = {**(model.meta.extra or {}), "corrections": {
        "store": str(Path(store_path).resolve()), "base_weights": base.name, "base_sha1": digest,
        "used": len(samples), "recipe": recipe.__dict__, "trained_at": time.strftime("%Y-%m-%d")}}
    save_classifier(model, out / "model.pt", half=True)
    (out / "eval.json").write_text(json.dumps({"val": val_metrics, "test": test_metrics, "thresholds": thresholds},
                                              indent=2, default=float), "utf-8")
    t_train = time.perf_counter() - t0 - t_features
    summary: dict[str, Any] = {
        "out_dir": str(out), "model": str(out / "model.pt"), "base_weights": str(base),
        "corrections": report.to_json(), "train_samples": len(by_split["train"]), "epochs": recipe.epochs,
        "final_loss": losses[-1], "test": _summary(test_metrics), "val": _summary(val_metrics),
        "seconds": {"features": round(t_features, 1), "train_and_eval": round(t_train, 1)}}
    if recalibrate:
        from fashionlens.evaluate.calibration import run_calibration

        t1 = time.perf_counter()
        saved = load_classifier(out / "model.pt")  # the fp16-stored heads the calibration must describe
        cal = run_calibration(out / "model.pt", recipe=config_path or "configs/classifier_lite0.yaml",
                              data_root=config.data_root, backend="torch", out_dir=out / "calibration", save=True,
                              batch_size=config.batch_size, progress=progress,
                              argv=["--weights", str(out / "model.pt"), "--backend", "torch", "--save"],
                              # the saved heads' probabilities on the cached validation features: the network
                              # does not run over the validation photos a second time
                              precomputed=head_probs(saved, feats["val"]),
                              precomputed_files=[s.file for s in by_split["val"]])
        summary["calibration"] = {"saved": cal.get("saved"),
                                  "ece_after": {k: v.get("ece_after") for k, v in cal["fields"].items()}}
        summary["seconds"]["calibration"] = round(time.perf_counter() - t1, 1)
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    (out / "corrections.json").write_text(json.dumps(summary, indent=2, default=float), "utf-8")
    return summary
