"""Train the grading heads (``fashionlens train grader --data PATH [--config YAML]``).

1. **Items** come from a RISE-release-layout folder or the shared subset
   (:func:`fashionlens.io.rise_release.read_items`) and are split with
   :func:`fashionlens.io.splits.group_split` (seeded, group-aware; for the subset this is the same
   split the rest of the project uses). Items without a front or back photo are reported and not used.
2. **Embeddings** of the front and back photos come from the frozen garment classifier (its ONNX
   export when there is one), computed once and cached by the weights' and the photos' content
   (:func:`fashionlens.train.grader_data.embed_items`), and are fused
   (:func:`fashionlens.models.grader.fuse_views`).
3. **Vocabularies** per head are built from the *training* items
   (:func:`fashionlens.train.grader_data.build_vocabularies`): values seen fewer than
   ``min_class_count`` times are left out (their items are unlabelled for that head). A head is
   trained only when at least ``min_labels`` training items carry one of ≥ 2 kept values; the others
   are reported (``untrained`` in the result and the weights' meta) and get no weights.
4. **Heads** (optionally one shared hidden layer) are trained in torch with the masked multi-task
   loss of :mod:`fashionlens.train.losses` — an item contributes nothing to a head it has no label
   for — AdamW, seeded, with early stopping on the validation loss. Ordinal heads (condition,
   pilling) use cross-entropy and expected-value decoding (:mod:`fashionlens.models.grader`).
5. Validation and test metrics (with the majority-class baseline) are computed once with the best
   epoch's heads and stored in the weights' meta.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.rise_release import GRADING_HEADS, HEAD_KINDS, ItemRecord
from fashionlens.models.grader import (
    FUSIONS,
    GraderHeadSpec,
    GraderMeta,
    classifier_info,
)
from fashionlens.paths import runs_path
from fashionlens.runtime.backends import BACKEND_NAMES
from fashionlens.train.config import ConfigError
from fashionlens.train.grader_data import (
    build_vocabularies,
    classifier_backend,
    embed_items,
    encode_targets,
)

log = logging.getLogger(__name__)

__all__ = ["GraderTrainConfig", "train_grader"]


@dataclass
class GraderTrainConfig:
    """Everything that defines one grader training run (see ``configs/grader_rise_subset.yaml``)."""

    data: str = ""  # a RISE-release-layout folder or the shared subset folder (garments.jsonl)
    heads: tuple[str, ...] = GRADING_HEADS  # heads to train when they have labels
    out_dir: str = field(default_factory=lambda: runs_path("grader"))
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    classifier: str | None = None  # garment classifier weights whose backbone embeds the views (default: shipped)
    backend: str = "auto"  # auto | onnx | torch
    embedding_cache: str | None = field(default_factory=lambda: runs_path("cache", "grader"))
    threads: int = 1
    fusion: str = "mean"  # mean | concat (see fashionlens.models.grader)
    hidden: int = 0  # 0: linear heads; else one shared ReLU layer of this width
    dropout: float = 0.2
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.0
    patience: int = 20
    min_labels: int = 10  # training items a head needs
    min_class_count: int = 3  # training items a value needs to enter a head's vocabulary
    head_loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    model_name: str = "rise-grader"
    model_version: str = "0"
    ship_to: str | None = None  # also write the weights here (e.g. src/fashionlens/weights/rise-grader-lite0.npz)

    def __post_init__(self) -> None:
        if isinstance(self.heads, str) or not isinstance(self.heads, (list, tuple)):
            raise ConfigError(f"heads: expected a list such as [type, material], got {self.heads!r}")
        self.heads = tuple(self.heads)
        unknown = [h for h in self.heads if h not in HEAD_KINDS]
        if unknown or not self.heads:
            raise ConfigError(f"heads: expected names from {list(GRADING_HEADS)}, got {list(self.heads)}")
        for key, w in self.head_loss_weights.items():
            if key not in HEAD_KINDS:
                raise ConfigError(f"head_loss_weights: unknown head {key!r}; heads: {', '.join(GRADING_HEADS)}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise ConfigError(f"head_loss_weights: expected a positive number for {key!r}, got {w!r} "
                                  "(leave a head out of `heads` instead of weighting it 0)")
        try:
            self.split_fractions = tuple(float(f) for f in self.split_fractions)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ConfigError(f"split_fractions: expected three numbers, got {self.split_fractions!r}") from None
        fr = self.split_fractions
        if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6 or fr[0] == 0 or fr[1] == 0:
            raise ConfigError(f"split_fractions: expected three non-negative numbers summing to 1 with train and "
                              f"val > 0, got {list(fr)}")
        for name in ("seed", "hidden", "epochs", "batch_size", "patience", "min_labels", "min_class_count", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
        for name in ("epochs", "batch_size", "patience", "min_labels", "min_class_count", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.hidden < 0:
            raise ConfigError(f"hidden: expected 0 (linear heads) or a width >= 1, got {self.hidden}")
        for name in ("dropout", "lr", "weight_decay", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name}: expected a non-negative number, got {value!r}")
        if not self.dropout < 1:
            raise ConfigError(f"dropout: expected a probability below 1, got {self.dropout}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion: expected one of {list(FUSIONS)}, got {self.fusion!r}")
        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"backend: expected auto, onnx or torch, got {self.backend!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------ training


def _torch_net(d_in: int, hidden: int, heads: Sequence[GraderHeadSpec], dropout: float) -> Any:
    import torch
    from torch import nn

    class GraderNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.trunk = nn.Linear(d_in, hidden) if hidden else None
            d_feat = hidden or d_in
            self.head = nn.ModuleDict({f"h_{h.name}": nn.Linear(d_feat, len(h.values)) for h in heads})  # "type" clashes

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            h = self.drop(x)
            if self.trunk is not None:
                h = self.drop(torch.relu(self.trunk(h)))
            return [self.head[f"h_{s.name}"](h) for s in heads]

    return GraderNet()


def _fit(x: dict[str, np.ndarray], y: dict[str, dict[str, np.ndarray]], heads: Sequence[GraderHeadSpec],
         config: GraderTrainConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train on ``x["train"]`` with early stopping on the masked validation loss; arrays of the best epoch."""
    import torch

    from fashionlens.models.heads import HeadSpec
    from fashionlens.train.losses import multitask_loss

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    mean = x["train"].mean(axis=0)
    std = x["train"].std(axis=0) + 1e-6
    xt = {s: torch.from_numpy((x[s] - mean) / std).float() for s in ("train", "val")}
    yt = {s: {h: torch.from_numpy(v) for h, v in y[s].items()} for s in ("train", "val")}
    loss_heads = [HeadSpec(h.name, "single", tuple(str(v) for v in h.values)) for h in heads]
    weights = {h.name: float(config.head_loss_weights.get(h.name, 1.0)) for h in heads}
    net = _torch_net(x["train"].shape[1], config.hidden, heads, config.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = xt["train"].shape[0]
    # linear heads are independent: each keeps its own best epoch (by its validation loss); with a
    # shared hidden layer the whole network keeps the epoch of the best total validation loss
    per_head = not config.hidden
    keys = [h.name for h in heads] if per_head else ["total"]
    best: dict[str, tuple[float, int, dict[str, Any]]] = {k: (float("inf"), -1, {}) for k in keys}
    history = []
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss, _ = multitask_loss(net(xt["train"][idx]), {h: v[idx] for h, v in yt["train"].items()}, loss_heads,
                                     weights=weights, label_smoothing=config.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss, parts = multitask_loss(net(xt["val"]), yt["val"], loss_heads, weights=weights)
        losses = {k: parts[k] for k in keys if k in parts} if per_head else {"total": float(val_loss)}
        history.append({"epoch": epoch + 1, "val_loss": round(float(val_loss), 5)}
                       | {k: round(v, 5) for k, v in losses.items() if per_head})
        state = net.state_dict()
        for k, v in losses.items():
            if v < best[k][0] - 1e-5:
                prefix = f"head.h_{k}." if per_head else ""
                best[k] = (v, epoch + 1, {n: t.detach().clone() for n, t in state.items() if n.startswith(prefix)})
        if all(epoch + 1 - b[1] >= config.patience for b in best.values()):
            break
    missing = [k for k, b in best.items() if b[1] < 0]
    if missing:
        raise ValueError(f"no validation item has a label for {missing}: early stopping needs validation labels")
    state = {n: t for b in best.values() for n, t in b[2].items()}
    arrays = {"norm.mean": mean.astype(np.float32), "norm.std": std.astype(np.float32)}
    if config.hidden:
        arrays |= {"trunk.weight": state["trunk.weight"].numpy(), "trunk.bias": state["trunk.bias"].numpy()}
    for h in heads:
        arrays |= {f"head.{h.name}.weight": state[f"head.h_{h.name}.weight"].numpy(),
                   f"head.{h.name}.bias": state[f"head.h_{h.name}.bias"].numpy()}
    best_epoch = {k: b[1] for k, b in best.items()}
    return arrays, {"best_epoch": best_epoch if per_head else best_epoch["total"],
                    "best_val_loss": {k: round(b[0], 5) for k, b in best.items()}, "epochs_run": len(history),
                    "history": history}


def _data_description(data: Path, items: Sequence[ItemRecord]) -> str:
    if (data / "garments.jsonl").is_file():
        return f"RISE shared subset ({data.name}/garments.jsonl, front photos only)"
    return f"RISE release layout ({data.name}/)"


@dataclass
class _GraderData:
    """The items by split (those with a front or back photo that decodes), their fused embeddings and targets."""

    items: list[ItemRecord]  # everything read (also those left out)
    summary: Any  # the reader's summary
    usable: dict[str, list[ItemRecord]]
    x: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    embedding_dim: int = 0


def _read_splits(data: Path, config: GraderTrainConfig, say: Callable[[str], None]) -> _GraderData:
    from fashionlens.io.rise_release import read_items
    from fashionlens.io.splits import group_split

    items, summary = read_items(data)
    splits = group_split(items, fractions=config.split_fractions, seed=config.seed)
    usable: dict[str, list[ItemRecord]] = {}
    for name, recs in splits.items():
        usable[name] = [it for it in recs if "front" in it.views or "back" in it.views]
    say(f"{len(items)} items: " + ", ".join(f"{k} {len(v)}" for k, v in usable.items()))
    return _GraderData(items, summary, usable)


def _vocabularies(data: Path, train: Sequence[ItemRecord], config: GraderTrainConfig
                  ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Per head to train: its vocabulary; per head not trained: why; per head: the training label counts."""
    # every head is checked for labels, so the summary says why each untrained head is untrained
    vocab, untrained, counts = build_vocabularies(train, GRADING_HEADS, min_labels=config.min_labels,
                                                  min_class_count=config.min_class_count)
    for head in GRADING_HEADS:
        if head not in config.heads:
            untrained[head] = ("not asked for (config heads)" if head in vocab
                               else f"{untrained[head]} (and not asked for in config heads)")
            vocab.pop(head, None)
    if not vocab:
        raise ValueError(f"{data}: no head has enough labels to train: "
                         + "; ".join(f"{h}: {r}" for h, r in untrained.items() if h in config.heads))
    return vocab, untrained, counts


def _embed_splits(d: _GraderData, specs: Sequence[GraderHeadSpec], config: GraderTrainConfig) -> None:
    """Fused view embeddings (``d.x``) and encoded targets (``d.y``) per split; items none of whose photos
    decode are left out of ``d.usable``."""
    from fashionlens.models.grader import fuse_views

    for name, recs in d.usable.items():
        if not recs:
            continue
        emb, present = embed_items(recs, classifier=config.classifier, backend=config.backend,
                                   cache=config.embedding_cache, threads=config.threads)
        d.embedding_dim = emb["front"].shape[1]
        keep = present["front"] | present["back"]
        if not keep.all():
            log.warning("%s: %d items left out, none of their photos could be decoded", name, int((~keep).sum()))
        recs = [r for r, k in zip(recs, keep) if k]
        d.usable[name] = recs
        d.x[name] = fuse_views({r: e[keep] for r, e in emb.items()}, {r: p[keep] for r, p in present.items()},
                               fusion=config.fusion)
        d.y[name], _ = encode_targets(recs, specs)


def _grader_meta(data: Path, d: _GraderData, specs: Sequence[GraderHeadSpec], config: GraderTrainConfig,
                 info: dict[str, Any], untrained: dict[str, str], counts: dict[str, Any],
                 fit: dict[str, Any]) -> GraderMeta:
    """The weights' metadata (metrics are added once the saved heads are measured)."""
    y = d.y
    majority = {s.name: int(np.bincount(y["train"][s.name][y["train"][s.name] >= 0],
                                        minlength=len(s.values)).argmax()) for s in specs}
    description = _data_description(data, d.items)
    trained_on = {s.name: {"data": description, "path": str(config.data), "source": d.usable["train"][0].source,
                           "n_train": int((y["train"][s.name] >= 0).sum()),
                           "n_val": int((y["val"][s.name] >= 0).sum()), "train_counts": counts[s.name]}
                  for s in specs}
    return GraderMeta(name=config.model_name, version=config.model_version, embedding_dim=int(d.embedding_dim),
                      fusion=config.fusion, hidden=config.hidden, heads=specs, classifier=info,
                      trained_on=trained_on, untrained={h: r for h, r in untrained.items()},
                      extra={"split": {"seed": config.seed, "fractions": list(config.split_fractions)},
                             "majority": majority, "ordinal_decoding": "cross-entropy + expected value",
                             "fit": {k: v for k, v in fit.items() if k != "history"}})


def _save_and_measure(meta: GraderMeta, arrays: dict[str, np.ndarray], d: _GraderData, config: GraderTrainConfig,
                      out: Path) -> Path:
    """Save the heads (``out/grader.npz``, ``ship_to``) with the val/test metrics of the heads as saved
    (in ``meta.metrics``) and write confusion PNGs; returns the weights' path."""
    from fashionlens.evaluate.grading import grading_metrics, write_confusion_pngs
    from fashionlens.models.grader import load_grader
    from fashionlens.models.grader import save_grader as save

    out.mkdir(parents=True, exist_ok=True)
    # metrics of the heads as saved (fp16), so `evaluate grader` reproduces them exactly
    model = load_grader(save(meta, arrays, out / "grader.npz"))
    arrays = model.arrays()
    metrics: dict[str, Any] = {}
    for name in ("val", "test"):
        if len(d.usable[name]):
            metrics[name] = grading_metrics(d.y[name], model.predict_proba(d.x[name]), meta,
                                            majority=meta.extra["majority"])
    meta.metrics = {split: {h: {k: m[k] for k in ("n", "accuracy", "macro_f1", "qwk", "baseline") if k in m}
                            for h, m in per_head.items()} for split, per_head in metrics.items()}
    weights_path = save(meta, arrays, out / "grader.npz")
    if config.ship_to:
        save(meta, arrays, config.ship_to)
    for split, per_head in metrics.items():
        write_confusion_pngs(per_head, out / f"confusion-{split}", prefix=f"{split} ")
    return weights_path


def train_grader(config: GraderTrainConfig, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the configured heads that have labels; write ``<out_dir>/grader.npz`` (and ``ship_to``).

    Returns a summary: ``trained`` (head → labelled training items), ``untrained`` (head → reason),
    ``val``/``test`` metrics per head with the majority baseline, the read summary and paths.
    """
    import torch

    from fashionlens.models.grader import heads_from_vocabularies
    from fashionlens.models.registry import default_weights_path

    say = progress or (lambda msg: log.info("%s", msg))
    if not config.data:
        raise ConfigError("data: expected a RISE release folder or the shared subset folder, got nothing")
    torch.set_num_threads(config.threads)
    data = Path(config.data)
    d = _read_splits(data, config, say)
    vocab, untrained, counts = _vocabularies(data, d.usable["train"], config)
    specs = heads_from_vocabularies(vocab, HEAD_KINDS)
    _embed_splits(d, specs, config)
    info = classifier_info(classifier_backend(str(config.classifier or default_weights_path()), config.backend,
                                              config.threads).meta)
    if not len(d.usable["val"]):
        raise ValueError(f"{data}: the validation split is empty; more items or larger split_fractions[1] needed")
    started = time.perf_counter()
    arrays, fit = _fit(d.x, d.y, specs, config)
    say(f"trained {len(specs)} heads in {time.perf_counter() - started:.1f} s, best epoch {fit['best_epoch']}")
    meta = _grader_meta(data, d, specs, config, info, untrained, counts, fit)
    out = Path(config.out_dir)
    weights_path = _save_and_measure(meta, arrays, d, config, out)
    result = {"out_dir": str(out), "weights": str(weights_path), "shipped_to": config.ship_to,
              "trained": {s.name: meta.trained_on[s.name]["n_train"] for s in specs},
              "untrained": {h: untrained[h] for h in GRADING_HEADS if h in untrained},
              "fit": meta.extra["fit"], "metrics": meta.metrics, "read": d.summary.to_dict(),
              "config": config.to_dict()}
    (out / "summary.json").write_text(json.dumps(result | {"history": fit["history"]}, indent=2), encoding="utf-8")
    return result
