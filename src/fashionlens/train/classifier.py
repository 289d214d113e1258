"""Train the multi-head garment classifier: seeded, resumable, with early stopping.

``train_classifier(config)`` prepares the sample cache if missing, then trains; every epoch it
evaluates on the validation split, appends a line to ``metrics.jsonl``, and writes ``last.pt``
(model + optimiser + scheduler + RNG state: a killed run resumes from it) and, when validation
improves, ``best.pt``. At the end it tunes the colour threshold on validation, evaluates the best
model on the test split, and writes ``model.pt`` (fp16) with the metrics in its meta.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from fashionlens.evaluate.classification import (
    best_threshold,
    classifier_metrics,
    multi_label_truth,
    predict_probs,
)
from fashionlens.models.backbones import map_state_dict
from fashionlens.models.classifier import (
    GarmentClassifier,
    new_classifier_meta,
    save_classifier,
)
from fashionlens.train.config import ClassifierTrainConfig
from fashionlens.train.feature_cache import (
    FeatureDataset,
    FrozenStem,
    TopOnly,
    cached_features,
)
from fashionlens.train.losses import multitask_loss
from fashionlens.train.samples import (
    Sample,
    SampleDataset,
    allowed_categories,
    read_samples,
)

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def train_transform(size: int, seed: int | None = None) -> A.Compose:
    """Geometric augmentation only: no colour jitter, which would corrupt the colour head's labels."""
    return A.Compose([
        A.RandomResizedCrop(size=(size, size), scale=(0.5, 1.0), ratio=(0.75, 1.333)),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-12, 12), p=0.3, border_mode=0),
        A.GaussianBlur(blur_limit=(3, 5), p=0.1),
    ], seed=seed)


def _label_key(s: Sample) -> str:
    return "|".join(allowed_categories(s)) or "-"


def balance_weights(samples: Sequence[Sample]) -> np.ndarray:
    """Per-sample weight ∝ 1/√(frequency of its category label), normalised to mean 1."""
    counts = Counter(_label_key(s) for s in samples)
    w = np.array([counts[_label_key(s)] ** -0.5 for s in samples], dtype=np.float64)
    return w / w.mean()


def ensure_cache(config: ClassifierTrainConfig) -> list[Sample]:
    cache = Path(config.cache_dir)
    if not (cache / "samples.jsonl").is_file():
        from fashionlens.io.datasets import read_dataset
        from fashionlens.train.samples import prepare_samples

        records = []
        for src in config.sources:
            records += read_dataset(src, config.data_root)
        with tqdm(total=len(records), desc="prepare samples") as bar:
            prepare_samples(records, cache, size=config.input_size, seed=config.seed,
                            fractions=config.split_fractions, workers=max(1, config.workers), progress=bar.update)
    cache_meta = json.loads((cache / "cache.json").read_text("utf-8"))
    if cache_meta["seed"] != config.seed or list(cache_meta["fractions"]) != list(config.split_fractions):
        raise ValueError(f"{cache} was prepared with seed {cache_meta['seed']} and fractions {cache_meta['fractions']},"
                         f" the config asks for {config.seed} and {list(config.split_fractions)}; use another cache_dir")
    return [s for s in read_samples(cache) if s.source in config.sources]


def _build_model(config: ClassifierTrainConfig) -> GarmentClassifier:
    meta = new_classifier_meta(backbone=config.backbone, input_size=config.input_size, name=config.model_name,
                               version=config.model_version)
    model = GarmentClassifier(meta, pretrained_backbone=config.backbone_weights is None)
    if config.backbone_weights:
        source = torch.load(config.backbone_weights, map_location="cpu", weights_only=True)
        model.backbone.load_state_dict(map_state_dict(source, model.backbone.state_dict()))
    return model


def _evaluate(net, dataset, samples, config, heads, device, thresholds=None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    probs = predict_probs(net, dataset, heads, batch_size=config.batch_size, device=str(device),
                          workers=config.workers if isinstance(dataset, SampleDataset) else 0)
    return classifier_metrics(probs, samples, heads, thresholds=thresholds), probs


@dataclass
class _ClassifierRun:
    """One training run: the model (and ``net``, what is trained: the model or its top on cached features),
    its data, optimiser, schedule, and the early-stopping state (what ``last.pt`` stores)."""

    config: ClassifierTrainConfig
    device: torch.device
    out: Path
    by_split: dict[str, list[Sample]]
    model: GarmentClassifier
    net: torch.nn.Module
    loader: DataLoader
    eval_ds: dict[str, Any]
    generator: torch.Generator
    optim: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    start_epoch: int = 0
    best_score: float = -1.0
    bad_epochs: int = 0

    @property
    def heads(self):
        return self.model.meta.heads

    @property
    def last(self) -> Path:
        return self.out / "last.pt"


def _splits(config: ClassifierTrainConfig) -> dict[str, list[Sample]]:
    """The cached samples by split (each cut to a seeded ``limit`` when set)."""
    samples = ensure_cache(config)
    by_split = {k: [s for s in samples if s.split == k] for k in ("train", "val", "test")}
    if config.limit is not None:
        by_split = {k: random.Random(config.seed).sample(v, min(len(v), config.limit)) for k, v in by_split.items()}
    log.info("samples: %s", {k: len(v) for k, v in by_split.items()})
    return by_split


def _feature_datasets(config: ClassifierTrainConfig, model: GarmentClassifier, by_split: dict[str, list[Sample]],
                      weights: np.ndarray) -> tuple[FeatureDataset, dict[str, FeatureDataset]]:
    """``finetune_top``: train and evaluation sets of frozen-stem features (computed once, cached)."""
    heads = model.meta.heads
    stem = FrozenStem(model.backbone, config.freeze_blocks).cpu().eval()
    for p in stem.parameters():
        p.requires_grad_(False)
    cache = Path(config.cache_dir)

    def feats(split: str, views: int) -> torch.Tensor:
        ds = SampleDataset(cache, by_split[split], heads, mean=model.meta.mean, std=model.meta.std,
                           size=config.input_size)
        init = "packaged" if not config.backbone_weights else hashlib.sha1(
            Path(config.backbone_weights).read_bytes()).hexdigest()[:10]
        name = (f"features-{config.backbone}-{init}-{config.input_size}px-k{config.freeze_blocks}-{split}"
                f"-v{views}-s{config.seed}.pt")
        return cached_features(stem, ds, cache / name, views=views, seed=config.seed,
                               batch_size=config.batch_size, desc=f"cache {split} features")

    train_ds = FeatureDataset(feats("train", config.feature_views), by_split["train"], heads, random_view=True,
                              sample_weights=weights if config.balance == "class_weights" else None,
                              seed=config.seed)
    eval_ds = {k: FeatureDataset(feats(k, 1), by_split[k], heads, random_view=False) for k in ("val", "test")}
    return train_ds, eval_ds


def _datasets(config: ClassifierTrainConfig, model: GarmentClassifier, by_split: dict[str, list[Sample]],
              weights: np.ndarray, device: torch.device) -> tuple[Any, dict[str, Any], torch.nn.Module, int]:
    """Training set, evaluation sets (val, test), the module to train and the loader's worker count."""
    if config.mode == "finetune_top":
        if device.type != "cpu":
            log.info("finetune_top caches features on the CPU")
        train_ds, eval_ds = _feature_datasets(config, model, by_split, weights)
        return train_ds, eval_ds, TopOnly(model, config.freeze_blocks).to(device), 0
    heads = model.meta.heads
    train_ds = SampleDataset(config.cache_dir, by_split["train"], heads, mean=model.meta.mean, std=model.meta.std,
                             size=config.input_size,
                             transform=train_transform(config.input_size, config.seed) if config.mode == "finetune" else None,
                             sample_weights=weights if config.balance == "class_weights" else None)
    eval_ds = {k: SampleDataset(config.cache_dir, by_split[k], heads, mean=model.meta.mean, std=model.meta.std,
                                size=config.input_size) for k in ("val", "test")}
    return train_ds, eval_ds, model, config.workers


def _optimiser(config: ClassifierTrainConfig, model: GarmentClassifier, net: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW over what the mode trains: the heads (``lr``) and the trained backbone part (``backbone_lr``)."""
    if config.mode == "linear_probe":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        params = [{"params": model.heads.parameters(), "lr": config.lr}]
    elif config.mode == "finetune_top":
        head_ids = {id(p) for p in model.heads.parameters()}
        params = [{"params": model.heads.parameters(), "lr": config.lr},
                  {"params": [p for p in net.trainable_parameters() if id(p) not in head_ids],
                   "lr": config.backbone_lr}]
    else:
        params = [{"params": model.heads.parameters(), "lr": config.lr},
                  {"params": model.backbone.parameters(), "lr": config.backbone_lr}]
    return torch.optim.AdamW(params, weight_decay=config.weight_decay)


def _scheduler(config: ClassifierTrainConfig, optim: torch.optim.Optimizer,
               steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_epochs``, then cosine decay to 0."""
    total = steps_per_epoch * config.epochs
    warm = int(config.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / max(1, warm) if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))


def _new_run(config: ClassifierTrainConfig, device: torch.device, out: Path,
             by_split: dict[str, list[Sample]]) -> _ClassifierRun:
    model = _build_model(config).to(device)
    weights = balance_weights(by_split["train"])
    generator = torch.Generator().manual_seed(config.seed)
    sampler = (WeightedRandomSampler(weights, num_samples=len(by_split["train"]), replacement=True,
                                     generator=generator)
               if config.balance == "oversample" else None)
    train_ds, eval_ds, net, workers = _datasets(config, model, by_split, weights, device)
    loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler, shuffle=sampler is None,
                        generator=generator, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0,
                        worker_init_fn=lambda wid: np.random.seed(config.seed * 1000 + wid + torch.initial_seed() % 997))
    optim = _optimiser(config, model, net)
    return _ClassifierRun(config=config, device=device, out=out, by_split=by_split, model=model, net=net,
                          loader=loader, eval_ds=eval_ds, generator=generator, optim=optim,
                          sched=_scheduler(config, optim, len(loader)))


def _resume(run: _ClassifierRun) -> None:
    """Continue from ``last.pt``: weights, optimiser, schedule, early-stopping state and RNG states."""
    ck = torch.load(run.last, map_location=run.device, weights_only=False)
    run.model.load_state_dict(ck["model"])
    run.optim.load_state_dict(ck["optim"])
    run.sched.load_state_dict(ck["sched"])
    run.start_epoch, run.best_score, run.bad_epochs = ck["epoch"] + 1, ck["best_score"], ck["bad_epochs"]
    torch.set_rng_state(ck["rng"].cpu())
    run.generator.set_state(ck["gen"].cpu())
    log.info("resumed from %s at epoch %d", run.last, run.start_epoch)


def _train_epoch(run: _ClassifierRun, epoch: int) -> tuple[float, int]:
    """One pass over the loader; returns the running (EMA) loss and the number of images seen."""
    config, device = run.config, run.device
    run.net.train()
    if config.mode == "linear_probe":
        run.model.backbone.eval()
    use_amp = device.type == "cuda"
    seen, running = 0, 0.0
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
    for x, targets in bar:
        x = x.to(device, non_blocking=True)
        targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            outputs = run.net(x)
        outputs = tuple(o.float() for o in outputs)
        sw = targets.pop("sample_weight", None)
        loss, _ = multitask_loss(outputs, targets, run.heads, weights=config.head_loss_weights, sample_weight=sw,
                                     label_smoothing=config.label_smoothing)
        run.optim.zero_grad(set_to_none=True)
        loss.backward()
        run.optim.step()
        run.sched.step()
        seen += x.shape[0]
        running = 0.9 * running + 0.1 * loss.item() if seen > x.shape[0] else loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
    return running, seen


def _validate(run: _ClassifierRun, epoch: int, running: float, seen: int, t0: float) -> None:
    """Evaluate on val, append the epoch's line to ``metrics.jsonl``, keep ``best.pt``, count bad epochs."""
    val_metrics, _ = _evaluate(run.net, run.eval_ds["val"], run.by_split["val"], run.config, run.heads, run.device)
    score = val_metrics["score"]
    line = {"epoch": epoch + 1, "train_loss": running, "val_score": score,
            "val_category_acc": val_metrics["category"]["accuracy"],
            "val_object_type_acc": val_metrics["object_type"]["accuracy"],
            "val_clothing10_acc": val_metrics.get("clothing10", {}).get("accuracy"),
            "val_colours_f1": val_metrics.get("colours", {}).get("macro_f1"),
            "images_per_s": seen / (time.time() - t0), "lr": run.sched.get_last_lr()}
    with (run.out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    log.info("epoch %d: %s", epoch + 1, line)
    if score > run.best_score:
        run.best_score, run.bad_epochs = score, 0
        torch.save(run.model.state_dict(), run.out / "best.tmp")
        (run.out / "best.tmp").replace(run.out / "best.pt")
    else:
        run.bad_epochs += 1


def _checkpoint(run: _ClassifierRun, epoch: int) -> None:
    """Write ``last.pt`` (atomically): everything a killed run needs to resume after ``epoch``."""
    ck = {"model": run.model.state_dict(), "optim": run.optim.state_dict(), "sched": run.sched.state_dict(),
          "epoch": epoch, "best_score": run.best_score, "bad_epochs": run.bad_epochs, "rng": torch.get_rng_state(),
          "gen": run.generator.get_state()}
    torch.save(ck, run.out / "last.tmp")
    (run.out / "last.tmp").replace(run.last)


def _finish(run: _ClassifierRun) -> dict[str, Any]:
    """The best epoch: colour thresholds tuned on val, val and test metrics, ``model.pt`` (fp16), ``eval.json``."""
    config, model, net, heads, device, by_split = run.config, run.model, run.net, run.heads, run.device, run.by_split
    out = run.out
    model.load_state_dict(torch.load(out / "best.pt", map_location=device, weights_only=True))
    # thresholds tuned on validation only
    val_metrics, val_probs = _evaluate(net, run.eval_ds["val"], by_split["val"], config, heads, device)
    thresholds = {}
    for h in heads:
        if h.kind == "multi":
            idx, yt = multi_label_truth(by_split["val"], h)
            if idx:
                thresholds[h.name] = best_threshold(val_probs[h.name][idx], yt)
    val_metrics, _ = _evaluate(net, run.eval_ds["val"], by_split["val"], config, heads, device, thresholds)
    test_metrics, _ = _evaluate(net, run.eval_ds["test"], by_split["test"], config, heads, device, thresholds)
    model.meta.thresholds = thresholds
    model.meta.metrics = {"val": _summary(val_metrics), "test": _summary(test_metrics)}
    model.meta.extra = {"config": config.to_dict(), "splits": {k: len(v) for k, v in by_split.items()},
                        "trained_at": time.strftime("%Y-%m-%d"), "device": str(device)}
    model.cpu()
    save_classifier(model, out / "model.pt", half=True)
    result = {"val": val_metrics, "test": test_metrics, "thresholds": thresholds}
    (out / "eval.json").write_text(json.dumps(result, indent=2), "utf-8")
    return result


def train_classifier(config: ClassifierTrainConfig, *, resume: bool = True) -> dict[str, Any]:
    """Run one training (see module docstring); returns the final metrics."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2), "utf-8")
    run = _new_run(config, device, out, _splits(config))
    if resume and run.last.is_file():
        _resume(run)
    for epoch in range(run.start_epoch, config.epochs):
        if run.bad_epochs >= config.patience:
            log.info("early stop: no validation improvement for %d epochs", run.bad_epochs)
            break
        t0 = time.time()
        running, seen = _train_epoch(run, epoch)
        _validate(run, epoch, running, seen, t0)
        _checkpoint(run, epoch)
    return _finish(run)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict (what goes into the weights' meta)."""
    s: dict[str, Any] = {"n": m["n_samples"], "category_accuracy": m["category"]["accuracy"],
                         "category_macro_f1": m["category"]["macro_f1"],
                         "category_set_accuracy": m["category"]["set_accuracy"],
                         "object_type_accuracy": m["object_type"]["accuracy"]}
    for k in ("clothing10", "rise_type"):
        if k in m:
            s[f"{k}_accuracy"] = m[k]["accuracy"]
    for h in ("pattern", "material", "sleeve", "neckline", "fit"):
        if h in m:
            s[f"{h}_accuracy"] = m[h]["accuracy"]
            s[f"{h}_macro_f1"] = m[h]["macro_f1"]
    if "colours" in m:
        s["colours_macro_f1"] = m["colours"]["macro_f1"]
        s["colours_exact_match"] = m["colours"]["exact_match"]
    return s
