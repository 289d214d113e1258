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


def train_classifier(config: ClassifierTrainConfig, *, resume: bool = True) -> dict[str, Any]:
    """Run one training (see module docstring); returns the final metrics."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2), "utf-8")
    samples = ensure_cache(config)
    by_split = {k: [s for s in samples if s.split == k] for k in ("train", "val", "test")}
    if config.limit is not None:
        by_split = {k: random.Random(config.seed).sample(v, min(len(v), config.limit)) for k, v in by_split.items()}
    log.info("samples: %s", {k: len(v) for k, v in by_split.items()})
    model = _build_model(config).to(device)
    heads = model.meta.heads
    train = by_split["train"]
    weights = balance_weights(train)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = (WeightedRandomSampler(weights, num_samples=len(train), replacement=True, generator=generator)
               if config.balance == "oversample" else None)
    eval_sets = {k: by_split[k] for k in ("val", "test")}
    if config.mode == "finetune_top":
        if device.type != "cpu":
            log.info("finetune_top caches features on the CPU")
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

        train_ds = FeatureDataset(feats("train", config.feature_views), train, heads, random_view=True,
                                  sample_weights=weights if config.balance == "class_weights" else None,
                                  seed=config.seed)
        eval_ds = {k: FeatureDataset(feats(k, 1), v, heads, random_view=False) for k, v in eval_sets.items()}
        net: torch.nn.Module = TopOnly(model, config.freeze_blocks).to(device)
        workers = 0
    else:
        train_ds = SampleDataset(config.cache_dir, train, heads, mean=model.meta.mean, std=model.meta.std,
                                 size=config.input_size,
                                 transform=train_transform(config.input_size, config.seed) if config.mode == "finetune" else None,
                                 sample_weights=weights if config.balance == "class_weights" else None)
        eval_ds = {k: SampleDataset(config.cache_dir, v, heads, mean=model.meta.mean, std=model.meta.std,
                                    size=config.input_size) for k, v in eval_sets.items()}
        net = model
        workers = config.workers
    loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler, shuffle=sampler is None,
                        generator=generator, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0,
                        worker_init_fn=lambda wid: np.random.seed(config.seed * 1000 + wid + torch.initial_seed() % 997))
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
    optim = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    steps_per_epoch = len(loader)
    total = steps_per_epoch * config.epochs
    warm = int(config.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / max(1, warm) if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    start_epoch, best_score, bad_epochs = 0, -1.0, 0
    last = out / "last.pt"
    if resume and last.is_file():
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optim"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best_score, bad_epochs = ck["epoch"] + 1, ck["best_score"], ck["bad_epochs"]
        torch.set_rng_state(ck["rng"].cpu())
        generator.set_state(ck["gen"].cpu())
        log.info("resumed from %s at epoch %d", last, start_epoch)
    use_amp = device.type == "cuda"
    for epoch in range(start_epoch, config.epochs):
        if bad_epochs >= config.patience:
            log.info("early stop: no validation improvement for %d epochs", bad_epochs)
            break
        net.train()
        if config.mode == "linear_probe":
            model.backbone.eval()
        t0, seen, running = time.time(), 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for x, targets in bar:
            x = x.to(device, non_blocking=True)
            targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                outputs = net(x)
            outputs = tuple(o.float() for o in outputs)
            sw = targets.pop("sample_weight", None)
            loss, parts = multitask_loss(outputs, targets, heads, weights=config.head_loss_weights, sample_weight=sw,
                                         label_smoothing=config.label_smoothing)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            seen += x.shape[0]
            running = 0.9 * running + 0.1 * loss.item() if seen > x.shape[0] else loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
        val_metrics, _ = _evaluate(net, eval_ds["val"], by_split["val"], config, heads, device)
        score = val_metrics["score"]
        line = {"epoch": epoch + 1, "train_loss": running, "val_score": score,
                "val_category_acc": val_metrics["category"]["accuracy"],
                "val_object_type_acc": val_metrics["object_type"]["accuracy"],
                "val_clothing10_acc": val_metrics.get("clothing10", {}).get("accuracy"),
                "val_colours_f1": val_metrics.get("colours", {}).get("macro_f1"),
                "images_per_s": seen / (time.time() - t0), "lr": sched.get_last_lr()}
        with (out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        log.info("epoch %d: %s", epoch + 1, line)
        if score > best_score:
            best_score, bad_epochs = score, 0
            torch.save(model.state_dict(), out / "best.tmp")
            (out / "best.tmp").replace(out / "best.pt")
        else:
            bad_epochs += 1
        ck = {"model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(), "epoch": epoch,
              "best_score": best_score, "bad_epochs": bad_epochs, "rng": torch.get_rng_state(),
              "gen": generator.get_state()}
        torch.save(ck, out / "last.tmp")
        (out / "last.tmp").replace(last)
    model.load_state_dict(torch.load(out / "best.pt", map_location=device, weights_only=True))
    # thresholds tuned on validation only
    val_metrics, val_probs = _evaluate(net, eval_ds["val"], by_split["val"], config, heads, device)
    thresholds = {}
    for h in heads:
        if h.kind == "multi":
            idx, yt = multi_label_truth(by_split["val"], h)
            if idx:
                thresholds[h.name] = best_threshold(val_probs[h.name][idx], yt)
    val_metrics, _ = _evaluate(net, eval_ds["val"], by_split["val"], config, heads, device, thresholds)
    test_metrics, _ = _evaluate(net, eval_ds["test"], by_split["test"], config, heads, device, thresholds)
    model.meta.thresholds = thresholds
    model.meta.metrics = {"val": _summary(val_metrics), "test": _summary(test_metrics)}
    model.meta.extra = {"config": config.to_dict(), "splits": {k: len(v) for k, v in by_split.items()},
                        "trained_at": time.strftime("%Y-%m-%d"), "device": str(device)}
    model.cpu()
    save_classifier(model, out / "model.pt", half=True)
    result = {"val": val_metrics, "test": test_metrics, "thresholds": thresholds}
    (out / "eval.json").write_text(json.dumps(result, indent=2), "utf-8")
    return result


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
