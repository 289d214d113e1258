"""Train the text–image alignment heads (``fashionlens train alignment --config configs/alignment.yaml``).

Data: the classifier's prepared sample cache (``train/samples.py``: 224-px crops, labels and the
seeded group split), clothing + RISE by default. Nothing of the val/test photos is used for
fitting: train captions/images fit the heads, val chooses the epoch, test is only read by
``fashionlens evaluate search``.

1. **Image embeddings** of every sample (and of its mirror image, a free augmentation) come from
   the frozen garment classifier, computed once and cached (:func:`sample_embeddings`).
2. **Captions** are written from labels (:mod:`fashionlens.search.captions`): for each training
   sample ``captions_per_sample`` random captions, each stating a random subset of its facts;
   MiniLM encodes every distinct caption once (cached).
3. **Heads** (image 1280 → D, text 384 → D) are trained with a symmetric InfoNCE loss and a learned
   temperature. Label-derived captions repeat across garments ("a photo of a t-shirt" describes
   hundreds), so the targets are *label-aware*: a caption's positives are all images in the batch
   whose labels satisfy every fact the caption states (uniform soft targets), not just its own image.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.search.captions import GarmentFacts, random_caption
from fashionlens.train.config import ConfigError
from fashionlens.train.samples import Sample, read_samples

log = logging.getLogger(__name__)

__all__ = ["AlignmentTrainConfig", "FactCodes", "alignment_samples", "facts_for_samples", "sample_embeddings",
           "train_alignment"]


@dataclass
class AlignmentTrainConfig:
    """Everything that defines one alignment training run (see ``configs/alignment.yaml``)."""

    data_root: str = "../shared/datasets"
    sources: tuple[str, ...] = ("clothing", "rise")
    cache_dir: str = "runs/cache/classifier-224-s0"  # the classifier's prepared samples (built if missing)
    prepare_sources: tuple[str, ...] = ("clothing", "rise", "ccp")  # what a missing cache is built from
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    classifier: str | None = None  # classifier weights (default: the shipped model)
    embedding_cache: str = "runs/cache/alignment"
    flip_views: bool = True  # also embed each training image mirrored
    out_dir: str = "runs/alignment-lite0"
    dim: int = 256
    hidden: int = 0  # 0: linear heads; else two-layer heads of this hidden width
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    init_temperature: float = 0.07
    learn_temperature: bool = True
    captions_per_sample: int = 12
    caption_keep: float = 0.6
    label_aware: bool = True
    patience: int = 10
    threads: int | None = None
    limit: int | None = None  # cap samples per split (smoke tests)
    model_name: str = "garment-text-align-lite0"
    model_version: str = "1"
    ship_to: str | None = None  # also write the best heads here (e.g. src/fashionlens/weights/...npz)

    def __post_init__(self) -> None:
        for name in ("sources", "prepare_sources"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"{name}: expected a list such as [clothing, rise]; got {value!r}")
            setattr(self, name, tuple(value))
        unknown = set(self.sources) - {"clothing", "rise", "ccp"}
        if unknown:
            raise ConfigError(f"sources: unknown {sorted(unknown)}; expected clothing, rise, ccp")
        self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        for name in ("dim", "epochs", "batch_size", "captions_per_sample", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1; got {getattr(self, name)!r}")
        if self.hidden < 0:
            raise ConfigError(f"hidden: expected 0 (linear heads) or a width >= 1; got {self.hidden}")
        if not 0.0 < self.caption_keep <= 1.0:
            raise ConfigError(f"caption_keep: expected a probability in (0, 1]; got {self.caption_keep}")
        if not 0.0 < self.init_temperature < 1.0:
            raise ConfigError(f"init_temperature: expected a number in (0, 1); got {self.init_temperature}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------ samples and facts


def alignment_samples(config: AlignmentTrainConfig, *, progress: bool = True) -> list[Sample]:
    """The config's sources from the prepared cache (prepared first when missing, as the classifier
    trainer does, from ``prepare_sources`` so the cache stays the classifier's)."""
    cache = Path(config.cache_dir)
    if not (cache / "samples.jsonl").is_file():
        from tqdm.auto import tqdm

        from fashionlens.io.datasets import read_dataset
        from fashionlens.train.samples import prepare_samples

        records = []
        for src in config.prepare_sources:
            records += read_dataset(src, config.data_root)
        with tqdm(total=len(records), desc="prepare samples", disable=not progress) as bar:
            prepare_samples(records, cache, seed=config.seed, fractions=config.split_fractions,
                            progress=bar.update)
    meta = json.loads((cache / "cache.json").read_text("utf-8"))
    if meta["seed"] != config.seed or list(meta["fractions"]) != list(config.split_fractions):
        raise ValueError(f"{cache} was prepared with seed {meta['seed']} and fractions {meta['fractions']}; the config "
                         f"asks for {config.seed} and {list(config.split_fractions)}; use another cache_dir")
    samples = [s for s in read_samples(cache) if s.source in config.sources]
    if config.limit:
        by_split: dict[str, list[Sample]] = {}
        for s in samples:
            by_split.setdefault(s.split, []).append(s)
        samples = [s for split in by_split.values() for s in split[: config.limit]]
    return samples


def _source_extras(data_root: str | Path) -> dict[str, dict[str, Any]]:
    """Facts the sample cache does not keep, by photo stem: RISE ``gender``, clothing ``kids``."""
    root = Path(data_root)
    extras: dict[str, dict[str, Any]] = {}
    rise = root / "rise" / "garments.jsonl"
    if rise.is_file():
        with rise.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    extras[str(row.get("id"))] = {"gender": row.get("gender")}
    clothing = root / "clothing" / "labels.csv"
    if clothing.is_file():
        with clothing.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                extras[row["image"]] = {"kids": str(row.get("kids", "")).strip().lower() == "true"}
    return extras


def facts_for_samples(samples: Sequence[Sample], data_root: str | Path | None = None) -> list[GarmentFacts]:
    """:class:`GarmentFacts` of each sample (with RISE gender / clothing kids when ``data_root`` has them)."""
    extras = _source_extras(data_root) if data_root is not None else {}
    out = []
    for s in samples:
        e = extras.get(Path(s.origin).stem, {}) if s.origin else {}
        out.append(GarmentFacts.from_labels(categories=s.categories, object_type=s.object_type,
                                            attributes=s.attributes, source_label=s.source_label,
                                            gender=e.get("gender"), kids=bool(e.get("kids", False))))
    return out


class FactCodes:
    """Facts as integer arrays, so "does garment j satisfy caption i" is one vectorised comparison."""

    _SINGLE = ("pattern", "material", "sleeve", "neckline", "fit", "gender", "source_label", "object_type")

    def __init__(self, facts: Sequence[GarmentFacts]) -> None:
        from fashionlens.taxonomy import load_taxonomy

        tax = load_taxonomy()
        cats = {c: i for i, c in enumerate(tax.categories)}
        colours = {c: i for i, c in enumerate(tax.attribute("colours").values)}
        self.n = len(facts)
        self.cat = np.array([sum(1 << cats[c] for c in f.categories if c in cats) for f in facts], dtype=np.int64)
        self.col = np.array([sum(1 << colours[c] for c in f.colours if c in colours) for f in facts], dtype=np.int64)
        self.kids = np.array([f.kids for f in facts], dtype=bool)
        self.single: dict[str, np.ndarray] = {}
        for name in self._SINGLE:  # -1 = not stated; values hashed to stable ints
            self.single[name] = np.array([_code(getattr(f, name)) for f in facts], dtype=np.int64)

    def select(self, idx: np.ndarray) -> FactCodes:
        out = object.__new__(FactCodes)
        out.n = len(idx)
        out.cat, out.col, out.kids = self.cat[idx], self.col[idx], self.kids[idx]
        out.single = {k: v[idx] for k, v in self.single.items()}
        return out

    def matches(self, items: FactCodes) -> np.ndarray:
        """``(n_queries, n_items)`` bool: item satisfies every fact of the query (see
        :func:`fashionlens.search.captions.matches`)."""
        q, it = self, items
        ok = np.where(q.cat[:, None] != 0, (q.cat[:, None] & it.cat[None, :]) != 0, True)
        no_cat = q.cat[:, None] == 0
        for name in ("source_label", "object_type"):
            qv, iv = q.single[name][:, None], it.single[name][None, :]
            ok &= ~no_cat | (qv < 0) | (qv == iv)
        ok &= (q.col[:, None] & ~it.col[None, :]) == 0
        for name in ("pattern", "material", "sleeve", "neckline", "fit", "gender"):
            qv, iv = q.single[name][:, None], it.single[name][None, :]
            ok &= (qv < 0) | (qv == iv)
        ok &= ~q.kids[:, None] | it.kids[None, :]
        return ok


def _code(value: Any) -> int:
    if value is None:
        return -1
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=6).digest(), "big")


# ------------------------------------------------------------------------------------ embeddings


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def sample_embeddings(cache_dir: str | Path, samples: Sequence[Sample], *, classifier: str | Path | None = None,
                      flip: bool = False, cache: str | Path | None = None, batch_size: int = 32,
                      threads: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Garment embeddings of prepared samples from the frozen classifier (its ONNX export when there is one).

    Returns ``embedding`` ``(n, D)`` float32 (unit rows), ``category`` ``(n, K)`` category-head
    probabilities and, with ``flip``, ``embedding_flip`` of the mirrored images. With ``cache`` (a
    folder) results are stored there under a key of the weights' content and the sample files, and
    reused.
    """
    from fashionlens.models.registry import default_weights_path
    from fashionlens.runtime.backends import create_backend

    weights = Path(classifier) if classifier else default_weights_path()
    backend = create_backend(weights, threads=threads)
    key_src = json.dumps([_file_digest(weights), [s.file for s in samples], bool(flip), str(Path(cache_dir).resolve())])
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    path = Path(cache) / f"embeddings-{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            log.info("image embeddings from %s", path)
            return {k: z[k].astype(np.float32) for k in z.files}
    from PIL import Image
    from tqdm.auto import tqdm

    from fashionlens.pipeline import preprocess

    views = ("embedding", "embedding_flip") if flip else ("embedding",)
    out: dict[str, list[np.ndarray]] = {v: [] for v in views} | {"category": []}
    cache_dir = Path(cache_dir)
    with tqdm(total=len(samples), desc="embed images", unit="img", disable=not progress) as bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            rgbs = []
            for s in chunk:
                with Image.open(cache_dir / s.file) as im:
                    rgbs.append(np.asarray(im.convert("RGB")))
            batch = np.stack([preprocess(rgb, backend.meta) for rgb in rgbs])
            res = backend.run(batch, embed=True)
            out["embedding"].append(res["embedding"])
            out["category"].append(res["category"])
            if flip:
                out["embedding_flip"].append(backend.run(np.ascontiguousarray(batch[..., ::-1]),
                                                                embed=True)["embedding"])
            bar.update(len(chunk))
    d = next(iter(out["embedding"])).shape[1] if out["embedding"] else 0
    arrays = {k: np.concatenate(v) if v else np.zeros((0, d), np.float32) for k, v in out.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)
    return arrays


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


def train_alignment(config: AlignmentTrainConfig, *, progress: bool = True,
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, keep the epoch with the best validation score, write ``out_dir/alignment.npz``,
    ``metrics.json``, ``log.jsonl`` and ``config.json`` (and ``ship_to`` when set). Returns the summary."""
    import torch

    from fashionlens.evaluate.search_report import text_retrieval_eval, zero_shot_eval
    from fashionlens.search.alignment import (
        AlignmentHeads,
        AlignmentMeta,
        save_alignment,
    )

    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2), "utf-8")
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

    # captions: per training sample a fixed, seeded list of random captions (and the facts each states)
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
    log.info("%d training samples, %d distinct captions", len(train), len(cap_text))
    text_emb = _text_embeddings(cap_text, config.embedding_cache, progress=progress)
    cap_codes = FactCodes(cap_facts)
    img_codes = FactCodes(facts)

    image_dim, text_dim = emb_train["embedding"].shape[1], text_emb.shape[1]
    model = _make_heads(config, image_dim, text_dim)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 and n != "logit_scale"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0},
                             {"params": [model.logit_scale], "weight_decay": 0.0}], lr=config.lr)
    n = len(train)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                pct_start=0.1, anneal_strategy="cos")
    views = [emb_train["embedding"]] + ([emb_train["embedding_flip"]] if config.flip_views else [])
    X_views = [torch.from_numpy(v) for v in views]
    T = torch.from_numpy(text_emb)
    gen = np.random.default_rng(config.seed)

    classifier_info = _classifier_info(config.classifier)

    def current_heads() -> AlignmentHeads:
        meta = AlignmentMeta(name=config.model_name, version=config.model_version, image_dim=image_dim,
                             text_dim=text_dim, dim=config.dim, hidden=config.hidden,
                             temperature=float(1.0 / model.logit_scale.exp().item()), classifier=classifier_info)
        return AlignmentHeads(meta, heads_arrays(model))

    def validate() -> dict[str, Any]:
        heads = current_heads()
        img = heads.project_image(emb_val["embedding"])
        r = text_retrieval_eval(heads, img, val_facts, families=("full",))
        zs = zero_shot_eval(heads, img, val_facts)
        return {"val_full_recall@10": r["full"]["recall@10"], "val_full_mrr": r["full"]["mrr"],
                "val_zero_shot_acc": zs["accuracy"], "val_score": 0.5 * (r["full"]["recall@10"] + zs["accuracy"])}

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_score": -1.0}
    best_arrays: dict[str, np.ndarray] | None = None
    best_temp = config.init_temperature
    bad = 0
    log_path = out / "log.jsonl"
    log_path.write_text("", "utf-8")
    from tqdm.auto import tqdm

    for epoch in tqdm(range(1, config.epochs + 1), desc="train alignment", disable=not progress):
        model.train()
        order = gen.permutation(n)
        total, batches = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            if len(idx) < 2:
                continue
            view = gen.integers(0, len(X_views), size=len(idx))
            img_in = torch.stack([X_views[v][i] for v, i in zip(view.tolist(), idx.tolist())])
            caps = np.array([per_sample[i][gen.integers(0, len(per_sample[i]))] for i in idx])
            txt_in = T[caps]
            positives = None
            if config.label_aware:
                pos = cap_codes.select(caps).matches(img_codes.select(idx))
                pos[np.arange(len(idx)), np.arange(len(idx))] = True
                positives = torch.from_numpy(pos)
            img, txt = model(img_in, txt_in)
            loss = contrastive_loss(img, txt, model.logit_scale, positives)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, float(np.log(100.0)))
            total += loss.item()
            batches += 1
        model.eval()
        row = {"epoch": epoch, "loss": total / max(1, batches),
               "temperature": float(1.0 / model.logit_scale.exp().item()), **validate()}
        history.append(row)
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if on_epoch is not None:
            on_epoch(row)
        if row["val_score"] > best["val_score"]:
            best, bad = row, 0
            best_arrays = heads_arrays(model)
            best_temp = row["temperature"]
        else:
            bad += 1
            if bad >= config.patience:
                log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
                break

    assert best_arrays is not None
    meta = AlignmentMeta(
        name=config.model_name, version=config.model_version, image_dim=image_dim, text_dim=text_dim,
        dim=config.dim, hidden=config.hidden, temperature=best_temp, classifier=classifier_info,
        metrics={k: v for k, v in best.items() if k.startswith("val_")} | {"epoch": best["epoch"]},
        extra={"train": {"sources": list(config.sources), "cache_dir": config.cache_dir, "seed": config.seed,
                         "samples": len(train), "captions": len(cap_text), "split": "train",
                         "validation": f"val split ({len(val)} samples)", "label_aware": config.label_aware,
                         "flip_views": config.flip_views, "epochs_run": len(history)},
               "reproduce": "fashionlens train alignment --config configs/alignment.yaml"})
    path = save_alignment(meta, best_arrays, out / "alignment.npz")
    if config.ship_to:
        save_alignment(meta, best_arrays, config.ship_to)
    summary = {"out_dir": str(out), "weights": str(path), "best": best, "epochs_run": len(history),
               "train_samples": len(train), "val_samples": len(val), "captions": len(cap_text),
               "seconds": round(time.perf_counter() - t_start, 1), "shipped_to": config.ship_to}
    (out / "metrics.json").write_text(json.dumps({"summary": summary, "history": history}, indent=2), "utf-8")
    return summary


def _classifier_info(weights: str | Path | None) -> dict[str, str]:
    from fashionlens.runtime.backends import create_backend

    meta = create_backend(weights).meta
    return {"name": meta.name, "version": meta.version, "backbone": meta.backbone}
