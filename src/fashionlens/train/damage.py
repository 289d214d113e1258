"""Train the damage head on synthetic damage painted onto clean RISE garments.

Photos come from the RISE subset's seeded group split (seed 0, the project's split): ``train``
photos get fresh random damage every epoch; ``val`` photos get fixed damage (one seed per photo)
and pick the epoch and the decision threshold; ``test`` photos — damaged with other fixed seeds, and
clean — are only used for the final report. The garment region is the plain-backdrop mask
(:func:`fashionlens.grading.synthetic_damage.plain_background_mask`).

Loss: cross-entropy weighted per class (small damage types weigh more) + soft Dice per damage type. AdamW, cosine
schedule, ``last.pt`` every epoch (resumed automatically), ``best.pt`` by validation score,
``metrics.jsonl``; the final model is saved fp16 with its threshold and test metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from fashionlens.evaluate.damage import (
    DamageEvaluation,
    choose_threshold,
    evaluate_damage_maps,
    evaluate_damage_predictions,
)
from fashionlens.grading.region_verifier import RegionVerifier
from fashionlens.grading.synthetic_damage import (
    DamageStyle,
    add_synthetic_damage,
    plain_background_mask,
)
from fashionlens.io.datasets import read_dataset
from fashionlens.io.splits import group_split
from fashionlens.models.damage import (
    DamageMeta,
    DamageSegmenter,
    damage_probabilities,
    save_damage_model,
)
from fashionlens.paths import default_data_root, runs_path
from fashionlens.taxonomy import DAMAGE_TYPES
from fashionlens.train.region_verifier import VerifierFit, fit_region_verifier

log = logging.getLogger(__name__)


@dataclass
class DamageTrainConfig:
    """Options of ``fashionlens train damage`` (YAML keys = field names)."""

    data_root: str = field(default_factory=default_data_root)
    out_dir: str = field(default_factory=lambda: runs_path("damage-lite0"))
    sources: list[str] = field(default_factory=lambda: ["rise"])
    height: int = 448
    width: int = 256
    epochs: int = 6
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clean_fraction: float = 0.15
    # how often each damage type (stain, hole, pilling, fading) is painted on *training* photos; None = the
    # generator's default mix (DamageStyle.type_weights). Validation and test damage always use the default mix.
    train_type_weights: list[float] | None = None
    class_weights: list[float] = field(default_factory=lambda: [1.0, 7.0, 14.0, 3.3, 2.0])
    dice_weight: float = 1.0
    frozen_blocks: int = 2
    decoder_channels: int = 64
    seed: int = 0
    threads: int = 1
    workers: int = 1
    limit: int | None = None
    max_false_rate: float = 0.05  # false-damage budget on clean validation photos: epoch selection and decoding
    # the budget for the shipped decoding only (plain thresholds and verifier), when it should keep a margin
    # below the epoch-selection budget (v4.1: 0.035); None = max_false_rate
    decoding_max_false_rate: float | None = None
    init_from: str | None = None  # start from saved damage weights (e.g. the shipped model), not ImageNet
    epoch_offset: int = 0  # epoch e draws its synthetic damage as epoch e + offset (fresh draws after init_from)
    # after training (or in `evaluate damage --fit-verifier`): fit a region verifier on the validation photos
    # (fashionlens.grading.region_verifier) and store it in the weights; candidates at this damage probability
    region_verifier: bool = False
    verifier_candidate_threshold: float = 0.3
    name: str = "damage-segmenter-lite0"
    version: str = "1"

    def __post_init__(self) -> None:
        if self.height % 32 or self.width % 32:
            raise ValueError(f"height and width must be multiples of 32, got {self.height}×{self.width}")
        if not 0 <= self.clean_fraction < 1:
            raise ValueError(f"clean_fraction must be in [0, 1), got {self.clean_fraction}")
        if len(self.class_weights) != len(DAMAGE_TYPES) + 1 or min(self.class_weights) <= 0:
            raise ValueError(f"class_weights: expected {len(DAMAGE_TYPES) + 1} positive weights (none, "
                             f"{', '.join(DAMAGE_TYPES)}), got {self.class_weights}")
        if self.train_type_weights is not None:
            DamageStyle(type_weights=tuple(self.train_type_weights))  # raises a clear error when malformed
        if self.epoch_offset < 0:
            raise ValueError(f"epoch_offset must be >= 0, got {self.epoch_offset}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 < self.verifier_candidate_threshold < 1:
            raise ValueError(f"verifier_candidate_threshold must be in (0, 1), got {self.verifier_candidate_threshold}")
        for name in ("max_false_rate", "decoding_max_false_rate"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")

    @property
    def decoding_budget(self) -> float:
        """The false-damage budget the shipped decoding is chosen under."""
        return self.max_false_rate if self.decoding_max_false_rate is None else self.decoding_max_false_rate


@dataclass
class GarmentPhoto:
    """A clean photo resized to the training size and its garment mask."""

    path: str
    rgb: np.ndarray
    garment: np.ndarray


def load_garment_photos(paths: Sequence[str], *, height: int, width: int, progress: bool = True) -> list[GarmentPhoto]:
    """Decode, resize (squash) to ``height × width`` and find the garment; photos without one are skipped."""
    out = []
    for p in tqdm(paths, desc="garment masks", disable=not progress, unit="photo"):
        rgb = np.asarray(Image.open(p).convert("RGB").resize((width, height), Image.BILINEAR))
        mask = plain_background_mask(rgb)
        if mask is None:
            log.info("%s: no garment on a plain backdrop found; skipped", p)
            continue
        out.append(GarmentPhoto(str(p), rgb, mask))
    return out


def normalise(rgb: np.ndarray) -> np.ndarray:
    """``H×W×3`` uint8 → ``(3, H, W)`` float32 in [-1, 1] (the Lite backbones' mean/std 0.5)."""
    return (rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


def damaged_sample(photo: GarmentPhoto, rng: np.random.Generator, *, clean: bool = False,
                   style: DamageStyle | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    if clean:
        return photo.rgb, np.zeros(photo.garment.shape, np.uint8), []
    return add_synthetic_damage(photo.rgb, photo.garment, rng=rng, style=style or DamageStyle())


class _TrainSet(torch.utils.data.Dataset):
    def __init__(self, photos: list[GarmentPhoto], config: DamageTrainConfig, epoch: int) -> None:
        self.photos, self.config, self.epoch = photos, config, epoch
        weights = config.train_type_weights
        self.style = DamageStyle(type_weights=tuple(weights)) if weights is not None else DamageStyle()

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, self.epoch, i])
        photo = self.photos[i]
        if rng.random() < 0.5:
            photo = GarmentPhoto(photo.path, photo.rgb[:, ::-1].copy(), photo.garment[:, ::-1].copy())
        gain = rng.uniform(0.85, 1.15)
        rgb = np.clip(photo.rgb.astype(np.float32) * gain + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
        photo = GarmentPhoto(photo.path, rgb, photo.garment)
        img, dmap, _ = damaged_sample(photo, rng, clean=rng.random() < self.config.clean_fraction, style=self.style)
        return torch.from_numpy(normalise(img)), torch.from_numpy(dmap.astype(np.int64))


def fixed_damage_set(photos: list[GarmentPhoto], *, seed: int) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """One damaged copy per photo, reproducible from ``seed`` (validation and test sets)."""
    return [damaged_sample(p, np.random.default_rng([seed, i])) for i, p in enumerate(photos)]


def _loss(logits: torch.Tensor, target: torch.Tensor, config: DamageTrainConfig) -> torch.Tensor:
    """Weighted cross-entropy (small damage types weigh more: their regions have fewer pixels) +
    soft Dice per damage type present in the batch (so a 40-pixel hole counts like a large fade)."""
    logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    ce = F.cross_entropy(logits, target, weight=torch.tensor(config.class_weights, dtype=logits.dtype))
    probs = logits.softmax(1)
    dice = []
    for c in range(1, probs.shape[1]):
        t = (target == c).float()
        if t.sum() == 0:
            continue
        p = probs[:, c]
        dice.append(1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1))
    return ce + config.dice_weight * (torch.stack(dice).mean() if dice else probs.sum() * 0)


@torch.no_grad()
def predict_probabilities(model: DamageSegmenter, images: Sequence[np.ndarray], *, batch_size: int = 4) -> np.ndarray:
    """``(N, K, H, W)`` float16 damage probabilities for same-sized uint8 RGB images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.stack([normalise(im) for im in images[i:i + batch_size]]))
        out.append(damage_probabilities(model, x).numpy().astype(np.float16))
    return np.concatenate(out) if out else np.zeros((0, len(DAMAGE_TYPES) + 1, 1, 1), np.float16)


@dataclass
class _HeldOut:
    """A held-out split: its photos with fixed synthetic damage and clean, and a model's probabilities."""

    photos: list[GarmentPhoto]
    damaged: list[tuple[np.ndarray, np.ndarray, list]]
    probs: np.ndarray | None = None
    clean_probs: np.ndarray | None = None

    @classmethod
    def of(cls, photos: list[GarmentPhoto], *, seed: int) -> _HeldOut:
        return cls(photos, fixed_damage_set(photos, seed=seed))

    def predict(self, model: DamageSegmenter) -> _HeldOut:
        self.probs = predict_probabilities(model, [d[0] for d in self.damaged])
        self.clean_probs = predict_probabilities(model, [p.rgb for p in self.photos])
        return self

    def _inputs(self) -> tuple[np.ndarray, list, list, np.ndarray, list[np.ndarray]]:
        if self.probs is None or self.clean_probs is None:
            raise RuntimeError("_HeldOut.predict(model) first")
        return (self.probs, [d[1] for d in self.damaged], [d[2] for d in self.damaged], self.clean_probs,
                [p.garment for p in self.photos])

    def evaluate(self, threshold: float, min_region_share: float | list[float]) -> DamageEvaluation:
        probs, targets, regions, clean, garments = self._inputs()
        return evaluate_damage_predictions(probs, targets, regions, clean, garments, threshold=threshold,
                                           min_region_share=min_region_share)

    def choose(self, *, max_false_rate: float, per_type: bool = False) -> DamageEvaluation:
        """Threshold and minimum region chosen on this split (≤ ``max_false_rate`` clean photos flagged)."""
        probs, targets, regions, clean, garments = self._inputs()
        t, m = choose_threshold(probs, targets, regions, clean, garments, max_false_rate=max_false_rate,
                                per_type=per_type)
        return self.evaluate(t, m)

    def fit_verifier(self, config: DamageTrainConfig) -> VerifierFit:
        probs, targets, regions, clean, garments = self._inputs()
        return fit_region_verifier(probs, [d[0] for d in self.damaged], targets, regions, clean,
                                   [p.rgb for p in self.photos], garments,
                                   candidate_threshold=config.verifier_candidate_threshold,
                                   max_false_rate=config.decoding_budget, seed=config.seed)

    def evaluate_verifier(self, verifier: RegionVerifier) -> DamageEvaluation:
        probs, targets, regions, clean, garments = self._inputs()
        return evaluate_damage_maps(
            (verifier.decode(np.asarray(p, np.float32), d[0], g) for p, d, g in zip(probs, self.damaged, garments)),
            targets, regions,
            (verifier.decode(np.asarray(p, np.float32), ph.rgb, ph.garment) for p, ph in zip(clean, self.photos)),
            threshold=verifier.candidate_threshold, verifier_threshold=verifier.accept_threshold)


def _final_report(model: DamageSegmenter, val: _HeldOut, test: _HeldOut, config: DamageTrainConfig, *,
                  fit_verifier: bool, verifier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain decoding chosen on validation and measured once on test; with ``fit_verifier`` (or a stored
    ``verifier``) the region verifier too — fitted on validation, its validation metrics cross-fitted."""
    val.predict(model)
    test.predict(model)
    plain_val = val.choose(max_false_rate=config.decoding_budget, per_type=True)
    report: dict[str, Any] = {"val": plain_val,
                              "test": test.evaluate(plain_val.threshold, plain_val.min_region_share)}
    if fit_verifier:
        try:
            fit = val.fit_verifier(config)
        except ValueError as e:
            log.warning("no region verifier: %s", e)
        else:
            report["verifier"] = {"weights": fit.verifier.to_dict(), "val": fit.validation.to_dict(),
                                  "val_note": "2-fold cross-fitted on the validation photos",
                                  "candidates": fit.candidates, "real": fit.real,
                                  "test": test.evaluate_verifier(fit.verifier).to_dict()}
    elif verifier:
        stored = RegionVerifier.from_dict(verifier)
        report["verifier"] = {"weights": verifier, "val": val.evaluate_verifier(stored).to_dict(),
                              "val_note": "in-sample: the verifier was fitted on these photos",
                              "test": test.evaluate_verifier(stored).to_dict()}
    return report


def _rise_photos(config: DamageTrainConfig) -> dict[str, list[str]]:
    paths: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for source in config.sources:
        records = read_dataset(source, config.data_root)
        for split, recs in group_split(records, seed=0).items():
            paths[split] += [str(r.path) for r in recs]
    if config.limit:
        paths = {k: v[: config.limit] for k, v in paths.items()}
    return paths


@dataclass
class _DamageRun:
    """One training run: the model, its optimiser and schedule, the photos, and where it writes."""

    config: DamageTrainConfig
    out: Path
    model: DamageSegmenter
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    photos: dict[str, list[GarmentPhoto]]
    val_set: _HeldOut
    start: int = 0  # first epoch to train (after a resumed one)
    best: float = -1.0  # best validation score so far


def _start(config: DamageTrainConfig, resume: bool) -> Path:
    """Threads and seed; ``out_dir`` with ``config.json`` (and without an earlier log unless ``resume``)."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume and (out / "metrics.jsonl").is_file():
        (out / "metrics.jsonl").unlink()
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return out


def _initial_model(config: DamageTrainConfig) -> DamageSegmenter:
    """A new segmenter (ImageNet backbone) or, with ``init_from``, saved damage weights."""
    model = DamageSegmenter(frozen_blocks=config.frozen_blocks, decoder_channels=config.decoder_channels,
                            pretrained=config.init_from is None)
    if config.init_from:
        from fashionlens.models.damage import load_damage_model

        trained, _meta = load_damage_model(config.init_from)
        try:
            model.load_state_dict(trained.state_dict())
        except RuntimeError as e:
            raise ValueError(f"init_from {config.init_from}: expected damage weights with decoder_channels "
                             f"{config.decoder_channels}; {e}") from None
        log.info("initialised from %s", config.init_from)
    return model


def _new_run(config: DamageTrainConfig, out: Path, photos: dict[str, list[GarmentPhoto]],
             val_set: _HeldOut) -> _DamageRun:
    """The model, AdamW over its trainable parameters and a warm-up + cosine schedule."""
    model = _initial_model(config)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(photos["train"]) / config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return _DamageRun(config=config, out=out, model=model, opt=opt, sched=sched, photos=photos, val_set=val_set)


def _resume(run: _DamageRun) -> None:
    """Continue after the epoch in ``last.pt``: weights, optimiser, schedule and best score."""
    ck = torch.load(run.out / "last.pt", map_location="cpu", weights_only=False)
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["opt"])
    run.sched.load_state_dict(ck["sched"])
    run.start, run.best = ck["epoch"] + 1, ck["best"]
    log.info("resumed from epoch %d", run.start)


def _train_epoch(run: _DamageRun, epoch: int, *, progress: bool) -> list[float]:
    """One epoch on freshly drawn synthetic damage (the draw of epoch ``epoch + epoch_offset``); the batch losses."""
    config, model = run.config, run.model
    model.train()
    draw = epoch + config.epoch_offset
    loader = torch.utils.data.DataLoader(_TrainSet(run.photos["train"], config, draw), batch_size=config.batch_size,
                                         shuffle=True, num_workers=config.workers,
                                         generator=torch.Generator().manual_seed(config.seed + draw))
    losses = []
    for x, y in tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress):
        loss = _loss(model(x), y, config)
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        run.sched.step()
        losses.append(float(loss))
    return losses


def _validate(run: _DamageRun, epoch: int, losses: list[float], t0: float) -> None:
    """Score the epoch on validation, log it (``metrics.jsonl``), write ``best.pt`` (if better) and ``last.pt``."""
    config, model, out = run.config, run.model, run.out
    ev = run.val_set.predict(model).choose(max_false_rate=config.max_false_rate)
    score = ev.score
    row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "minutes": (time.time() - t0) / 60,
           "val": ev.to_dict()}
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    log.info("epoch %d loss %.4f val score %.3f", epoch + 1, row["loss"], score)
    if score > run.best:
        run.best = score
        torch.save({"model": model.state_dict(), "epoch": epoch, "val": ev.to_dict()}, out / "best.pt")
    torch.save({"model": model.state_dict(), "opt": run.opt.state_dict(), "sched": run.sched.state_dict(),
                "epoch": epoch, "best": run.best}, out / "last.pt")


def _finish(run: _DamageRun) -> dict[str, Any]:
    """The best epoch: decoding chosen on validation, measured on test; ``model.pt`` and ``summary.json``."""
    config, model, out, photos = run.config, run.model, run.out, run.photos
    ck = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(ck["model"])
    report = _final_report(model, run.val_set, _HeldOut.of(photos["test"], seed=20_000 + config.seed), config,
                           fit_verifier=config.region_verifier)
    val, test = report["val"], report["test"]
    metrics = {"val": val.to_dict(), "test": test.to_dict(), "best_epoch": ck["epoch"] + 1}
    verifier = report.get("verifier")
    if verifier:
        metrics["verifier"] = {k: v for k, v in verifier.items() if k != "weights"}
    meta = DamageMeta(name=config.name, version=config.version, input_side=max(config.height, config.width),
                      threshold=val.threshold, min_region_share=val.min_region_share,
                      verifier=verifier["weights"] if verifier else None,
                      builder_kwargs={"frozen_blocks": config.frozen_blocks,
                                      "decoder_channels": config.decoder_channels},
                      metrics=metrics,
                      training={"config": dataclasses.asdict(config),
                                "photos": {k: len(v) for k, v in photos.items()}})
    save_damage_model(model, meta, out / "model.pt")
    summary = {**metrics, "model": str(out / "model.pt")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_damage(config: DamageTrainConfig, *, progress: bool = True, resume: bool = True) -> dict[str, Any]:
    """Train, pick the epoch and threshold on validation, evaluate on test, save ``model.pt``.

    ``resume``: continue from ``out_dir/last.pt`` when it exists (else start over).
    """
    out = _start(config, resume)
    paths = _rise_photos(config)
    photos = {k: load_garment_photos(v, height=config.height, width=config.width, progress=progress)
              for k, v in paths.items()}
    val_set = _HeldOut.of(photos["val"], seed=10_000 + config.seed)
    run = _new_run(config, out, photos, val_set)
    if resume and (out / "last.pt").is_file():
        _resume(run)
    for epoch in range(run.start, config.epochs):
        t0 = time.time()
        losses = _train_epoch(run, epoch, progress=progress)
        _validate(run, epoch, losses, t0)
    return _finish(run)


def evaluate_damage_model(weights: str | Path, config: DamageTrainConfig, *, save_defaults: bool = False,
                          fit_verifier: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-measure saved damage weights: threshold and minimum region chosen on the validation photos
    (fixed synthetic damage + the same photos clean), then applied once to the test photos.

    ``fit_verifier``: fit a region verifier on the validation photos and measure it on test too
    (None = ``config.region_verifier``); without it, a verifier stored in the weights is measured.
    ``save_defaults``: store the chosen threshold, minimum region share, the metrics — and a newly
    fitted verifier, with ``config.version`` as the weights' version — in the weights.
    """
    from fashionlens.models.damage import load_damage_model

    torch.set_num_threads(config.threads)
    model, meta = load_damage_model(weights)
    fit = config.region_verifier if fit_verifier is None else fit_verifier
    paths = _rise_photos(config)
    photos = {k: load_garment_photos(paths[k], height=config.height, width=config.width, progress=progress)
              for k in ("val", "test")}
    report = _final_report(model, _HeldOut.of(photos["val"], seed=10_000 + config.seed),
                           _HeldOut.of(photos["test"], seed=20_000 + config.seed), config,
                           fit_verifier=fit, verifier=meta.verifier)
    val, test = report["val"], report["test"]
    summary: dict[str, Any] = {"weights": str(weights), "val": val.to_dict(), "test": test.to_dict()}
    verifier = report.get("verifier")
    if verifier:
        summary["verifier"] = {k: v for k, v in verifier.items() if k != "weights"}
    if save_defaults:
        meta.threshold, meta.min_region_share = val.threshold, val.min_region_share
        meta.metrics = {**meta.metrics, "val": val.to_dict(), "test": test.to_dict()}
        if fit and verifier:
            meta.verifier, meta.version = verifier["weights"], config.version
            meta.metrics["verifier"] = summary["verifier"]
        save_damage_model(model, meta, weights)
        _refresh_export_meta(weights, meta)
    return summary


def _refresh_export_meta(weights: str | Path, meta: Any) -> None:
    """The ONNX export next to ``weights`` (what inference runs) carries the meta too: rewrite it, so the
    run time never reads a stale threshold or verifier (the graph itself is unchanged)."""
    from fashionlens.models.damage import DAMAGE_WEIGHTS_FORMAT
    from fashionlens.runtime.backends import onnx_path_for
    from fashionlens.runtime.onnx_export import finish_onnx_export

    onnx_file = onnx_path_for(weights)
    if onnx_file.is_file():
        finish_onnx_export(onnx_file, meta.to_dict(), fmt=DAMAGE_WEIGHTS_FORMAT, fp16=False)
