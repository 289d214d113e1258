"""Train the text–image alignment heads (``fashionlens train alignment --config configs/alignment.yaml``).

Data: the classifier's prepared sample cache (``train/samples.py``: 224-px crops, labels and the
seeded group split), clothing + RISE by default. Nothing of the val/test photos is used for
fitting: train captions/images fit the heads, val chooses the epoch, test is only read by
``fashionlens evaluate search``.

1. **Image embeddings** of every sample (and of its mirror image, a free augmentation) come from
   the frozen garment classifier, computed once and cached
   (:func:`fashionlens.train.alignment_data.sample_embeddings`).
2. **Captions** are written from labels (:mod:`fashionlens.search.captions`): for each training
   sample ``captions_per_sample`` random captions, each stating a random subset of its facts;
   MiniLM encodes every distinct caption once (cached).
3. **Heads** (image 1280 → D, text 384 → D) are trained with a symmetric InfoNCE loss and a learned
   temperature. Label-derived captions repeat across garments ("a photo of a t-shirt" describes
   hundreds), so the targets are *label-aware*: a caption's positives are all images in the batch
   whose labels satisfy every fact the caption states (uniform soft targets), not just its own image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.search.captions import GarmentFacts, random_caption
from fashionlens.train.alignment_data import (
    AlignmentTrainConfig,
    FactCodes,
    alignment_samples,
    facts_for_samples,
    sample_embeddings,
)
from fashionlens.train.samples import Sample

log = logging.getLogger(__name__)

# AlignmentTrainConfig is defined in fashionlens.train.alignment_data and re-exported here: it is
# this training run's config (``fashionlens train alignment``).
__all__ = ["AlignmentTrainConfig", "contrastive_loss", "train_alignment"]


# ------------------------------------------------------------------------------------ caption embeddings


def _text_embeddings(texts: Sequence[str], cache: str | Path | None, *, progress: bool) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (cached by their content in ``cache``)."""
    from fashionlens.search.text import load_text_encoder

    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(cache) / f"text-{key}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    emb = load_text_encoder().encode(list(texts), batch_size=128, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb)
    return emb


# ------------------------------------------------------------------------------------ training


def _make_heads(config: AlignmentTrainConfig, image_dim: int, text_dim: int):
    import torch
    from torch import nn

    def head(in_dim: int) -> nn.Sequential:
        if config.hidden:
            return nn.Sequential(nn.Linear(in_dim, config.hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(config.hidden, config.dim))
        return nn.Sequential(nn.Linear(in_dim, config.dim))

    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = head(image_dim)
            self.text = head(text_dim)
            self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1.0 / config.init_temperature))),
                                            requires_grad=config.learn_temperature)

        def forward(self, img: torch.Tensor, txt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return (nn.functional.normalize(self.image(img), dim=-1),
                    nn.functional.normalize(self.text(txt), dim=-1))

    return Heads()


def contrastive_loss(img, txt, logit_scale, positives=None):
    """Symmetric InfoNCE. ``positives`` ``(B, B)`` bool, row i = the images that caption i describes
    (diagonal included); ``None`` = only the paired image. Soft targets spread uniformly over positives."""
    import torch

    scale = logit_scale.exp().clamp(max=100.0)
    logits_t2i = scale * txt @ img.T  # row: caption, column: image
    if positives is None:
        target = torch.arange(len(img), device=img.device)
        return 0.5 * (torch.nn.functional.cross_entropy(logits_t2i, target)
                      + torch.nn.functional.cross_entropy(logits_t2i.T, target))
    p = positives.float()
    t2i = p / p.sum(1, keepdim=True)
    i2t = p.T / p.T.sum(1, keepdim=True)
    loss_t2i = -(t2i * logits_t2i.log_softmax(1)).sum(1).mean()
    loss_i2t = -(i2t * logits_t2i.T.log_softmax(1)).sum(1).mean()
    return 0.5 * (loss_t2i + loss_i2t)


def heads_arrays(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items() if k != "logit_scale"}


@dataclass
class _AlignmentData:
    """What the heads are fitted and validated on: samples, their facts and embeddings, the captions."""

    train: list[Sample]
    val: list[Sample]
    val_facts: list[GarmentFacts]
    emb_train: dict[str, np.ndarray]
    emb_val: dict[str, np.ndarray]
    cap_text: list[str]  # distinct training captions
    per_sample: list[list[int]]  # per training sample: indices into cap_text
    text_emb: np.ndarray  # cap_text's embeddings
    cap_codes: FactCodes  # the facts each caption states
    img_codes: FactCodes  # the facts of each training sample


@dataclass
class _AlignmentRun:
    """One training run: the heads, their optimiser and schedule, the inputs as tensors, the best epoch."""

    config: AlignmentTrainConfig
    model: Any
    opt: Any
    sched: Any
    image_views: list[Any]  # training image embeddings per view (as is, mirrored)
    caption_emb: Any  # caption embeddings
    gen: np.random.Generator
    image_dim: int
    text_dim: int
    classifier_info: dict[str, str]
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_score": -1.0})
    best_arrays: dict[str, np.ndarray] | None = None
    best_temp: float = 0.0


def _captions(facts: Sequence[GarmentFacts], config: AlignmentTrainConfig
              ) -> tuple[list[str], list[GarmentFacts], list[list[int]]]:
    """Per training sample a fixed, seeded list of random captions (and the facts each states)."""
    rng = random.Random(config.seed)
    cap_text: list[str] = []
    cap_facts: list[GarmentFacts] = []
    cap_index: dict[str, int] = {}
    per_sample: list[list[int]] = []
    for f in facts:
        ids = []
        for _ in range(config.captions_per_sample):
            text, kept = random_caption(f, rng, keep=config.caption_keep)
            if text not in cap_index:
                cap_index[text] = len(cap_text)
                cap_text.append(text)
                cap_facts.append(kept)
            ids.append(cap_index[text])
        per_sample.append(ids)
    return cap_text, cap_facts, per_sample


def _alignment_data(config: AlignmentTrainConfig, *, progress: bool) -> _AlignmentData:
    samples = alignment_samples(config, progress=progress)
    train = [s for s in samples if s.split == "train"]
    val = [s for s in samples if s.split == "val"]
    if not train or not val:
        raise ValueError(f"need train and val samples from {config.sources} in {config.cache_dir}; "
                         f"got {len(train)} train, {len(val)} val")
    facts = facts_for_samples(train, config.data_root)
    val_facts = facts_for_samples(val, config.data_root)
    emb_train = sample_embeddings(config.cache_dir, train, classifier=config.classifier, flip=config.flip_views,
                                  cache=config.embedding_cache, threads=config.threads, progress=progress)
    emb_val = sample_embeddings(config.cache_dir, val, classifier=config.classifier, flip=False,
                                cache=config.embedding_cache, threads=config.threads, progress=progress)
    cap_text, cap_facts, per_sample = _captions(facts, config)
    log.info("%d training samples, %d distinct captions", len(train), len(cap_text))
    text_emb = _text_embeddings(cap_text, config.embedding_cache, progress=progress)
    return _AlignmentData(train=train, val=val, val_facts=val_facts, emb_train=emb_train, emb_val=emb_val,
                          cap_text=cap_text, per_sample=per_sample, text_emb=text_emb,
                          cap_codes=FactCodes(cap_facts), img_codes=FactCodes(facts))


def _new_run(config: AlignmentTrainConfig, data: _AlignmentData) -> _AlignmentRun:
    """Heads, AdamW (no decay on biases and the temperature) and a one-cycle schedule."""
    import torch

    image_dim, text_dim = data.emb_train["embedding"].shape[1], data.text_emb.shape[1]
    model = _make_heads(config, image_dim, text_dim)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 and n != "logit_scale"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0},
                             {"params": [model.logit_scale], "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = max(1, -(-len(data.train) // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                pct_start=0.1, anneal_strategy="cos")
    emb = data.emb_train
    views = [emb["embedding"]] + ([emb["embedding_flip"]] if config.flip_views else [])
    return _AlignmentRun(config=config, model=model, opt=opt, sched=sched,
                         image_views=[torch.from_numpy(v) for v in views], caption_emb=torch.from_numpy(data.text_emb),
                         gen=np.random.default_rng(config.seed), image_dim=image_dim, text_dim=text_dim,
                         classifier_info=_classifier_info(config.classifier), best_temp=config.init_temperature)


def _current_heads(run: _AlignmentRun):
    from fashionlens.models.alignment import AlignmentHeads, AlignmentMeta

    config = run.config
    meta = AlignmentMeta(name=config.model_name, version=config.model_version, image_dim=run.image_dim,
                         text_dim=run.text_dim, dim=config.dim, hidden=config.hidden,
                         temperature=float(1.0 / run.model.logit_scale.exp().item()), classifier=run.classifier_info)
    return AlignmentHeads(meta, heads_arrays(run.model))


def _validate(run: _AlignmentRun, data: _AlignmentData) -> dict[str, Any]:
    from fashionlens.evaluate.search_report import text_retrieval_eval, zero_shot_eval

    heads = _current_heads(run)
    img = heads.project_image(data.emb_val["embedding"])
    r = text_retrieval_eval(heads, img, data.val_facts, families=("full",))
    zs = zero_shot_eval(heads, img, data.val_facts)
    return {"val_full_recall@10": r["full"]["recall@10"], "val_full_mrr": r["full"]["mrr"],
            "val_zero_shot_acc": zs["accuracy"], "val_score": 0.5 * (r["full"]["recall@10"] + zs["accuracy"])}


def _train_epoch(run: _AlignmentRun, data: _AlignmentData) -> float:
    """One pass over the training samples in a seeded order; returns the mean batch loss."""
    import torch

    config, model, gen = run.config, run.model, run.gen
    model.train()
    n = len(data.train)
    order = gen.permutation(n)
    total, batches = 0.0, 0
    for start in range(0, n, config.batch_size):
        idx = order[start:start + config.batch_size]
        if len(idx) < 2:
            continue
        view = gen.integers(0, len(run.image_views), size=len(idx))
        img_in = torch.stack([run.image_views[v][i] for v, i in zip(view.tolist(), idx.tolist())])
        caps = np.array([data.per_sample[i][gen.integers(0, len(data.per_sample[i]))] for i in idx])
        txt_in = run.caption_emb[caps]
        positives = None
        if config.label_aware:
            pos = data.cap_codes.select(caps).matches(data.img_codes.select(idx))
            pos[np.arange(len(idx)), np.arange(len(idx))] = True
            positives = torch.from_numpy(pos)
        img, txt = model(img_in, txt_in)
        loss = contrastive_loss(img, txt, model.logit_scale, positives)
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        run.sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, float(np.log(100.0)))
        total += loss.item()
        batches += 1
    return total / max(1, batches)


def _train_epochs(run: _AlignmentRun, data: _AlignmentData, log_path: Path, *, progress: bool,
                  on_epoch: Callable[[dict[str, Any]], None] | None) -> None:
    """Train and validate epoch by epoch (``log_path`` gets a line each), keeping the best epoch's heads;
    stop after ``patience`` epochs without improvement."""
    from tqdm.auto import tqdm

    config = run.config
    bad = 0
    for epoch in tqdm(range(1, config.epochs + 1), desc="train alignment", disable=not progress):
        loss = _train_epoch(run, data)
        run.model.eval()
        row = {"epoch": epoch, "loss": loss,
               "temperature": float(1.0 / run.model.logit_scale.exp().item()), **_validate(run, data)}
        run.history.append(row)
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if on_epoch is not None:
            on_epoch(row)
        if row["val_score"] > run.best["val_score"]:
            run.best, bad = row, 0
            run.best_arrays = heads_arrays(run.model)
            run.best_temp = row["temperature"]
        else:
            bad += 1
            if bad >= config.patience:
                log.info("early stop at epoch %d (best %d)", epoch, run.best["epoch"])
                break


def _finish(run: _AlignmentRun, data: _AlignmentData, out: Path, t_start: float) -> dict[str, Any]:
    """Save the best epoch's heads (``alignment.npz``, ``ship_to``) and ``metrics.json``; return the summary."""
    from fashionlens.models.alignment import AlignmentMeta, save_alignment

    config, best, history = run.config, run.best, run.history
    assert run.best_arrays is not None
    meta = AlignmentMeta(
        name=config.model_name, version=config.model_version, image_dim=run.image_dim, text_dim=run.text_dim,
        dim=config.dim, hidden=config.hidden, temperature=run.best_temp, classifier=run.classifier_info,
        metrics={k: v for k, v in best.items() if k.startswith("val_")} | {"epoch": best["epoch"]},
        extra={"train": {"sources": list(config.sources), "cache_dir": config.cache_dir, "seed": config.seed,
                         "samples": len(data.train), "captions": len(data.cap_text), "split": "train",
                         "validation": f"val split ({len(data.val)} samples)", "label_aware": config.label_aware,
                         "flip_views": config.flip_views, "epochs_run": len(history)},
               "reproduce": "fashionlens train alignment --config configs/alignment.yaml"})
    path = save_alignment(meta, run.best_arrays, out / "alignment.npz")
    if config.ship_to:
        save_alignment(meta, run.best_arrays, config.ship_to)
    summary = {"out_dir": str(out), "weights": str(path), "best": best, "epochs_run": len(history),
               "train_samples": len(data.train), "val_samples": len(data.val), "captions": len(data.cap_text),
               "seconds": round(time.perf_counter() - t_start, 1), "shipped_to": config.ship_to}
    (out / "metrics.json").write_text(json.dumps({"summary": summary, "history": history}, indent=2), "utf-8")
    return summary


def train_alignment(config: AlignmentTrainConfig, *, progress: bool = True,
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, keep the epoch with the best validation score, write ``out_dir/alignment.npz``,
    ``metrics.json``, ``log.jsonl`` and ``config.json`` (and ``ship_to`` when set). Returns the summary."""
    import torch

    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2), "utf-8")
    data = _alignment_data(config, progress=progress)
    run = _new_run(config, data)
    log_path = out / "log.jsonl"
    log_path.write_text("", "utf-8")
    _train_epochs(run, data, log_path, progress=progress, on_epoch=on_epoch)
    return _finish(run, data, out, t_start)


def _classifier_info(weights: str | Path | None) -> dict[str, str]:
    from fashionlens.runtime.backends import create_backend

    meta = create_backend(weights).meta
    return {"name": meta.name, "version": meta.version, "backbone": meta.backbone}
