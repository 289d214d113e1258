"""CPU-friendly fine-tuning of the top blocks on cached feature maps.

On a 2-core CPU a full fine-tune of EfficientNet-Lite0 runs at ~5 images/s. Freezing the stem and
the first ``freeze_blocks`` blocks lets their output be computed **once** per training view (the
photo, its mirror image and one seeded random-resized crop) and kept in memory as fp16; each epoch
then only runs (and back-propagates through) the remaining blocks and the heads.

Retraining from review corrections (:mod:`fashionlens.train.corrections`) goes one step further: the whole
backbone of already trained weights is frozen, its *pooled* features (the heads' input) are computed once per
image (:func:`cached_pooled_features`; with ONNX Runtime when the weights have an ONNX export,
:class:`OnnxPooled`) and only the linear heads are fine-tuned on them (:func:`fit_heads`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fashionlens.io.atomic import atomic_write
from fashionlens.models.classifier import GarmentClassifier
from fashionlens.models.heads import HeadSpec
from fashionlens.train.samples import Sample, SampleDataset, encode_targets

log = logging.getLogger(__name__)


class FrozenStem(nn.Module):
    """``conv_stem → bn1 → blocks[:k]`` of a timm EfficientNet, in eval mode."""

    def __init__(self, backbone: nn.Module, freeze_blocks: int) -> None:
        super().__init__()
        n = len(backbone.blocks)
        if not 0 <= freeze_blocks < n:
            raise ValueError(f"freeze_blocks must be in 0..{n - 1} for this backbone, got {freeze_blocks}")
        self.conv_stem, self.bn1 = backbone.conv_stem, backbone.bn1
        self.blocks = nn.Sequential(*backbone.blocks[:freeze_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))


class TopOnly(nn.Module):
    """The trainable rest: ``blocks[k:] → conv_head → bn2 → pool → heads`` (shares the classifier's modules)."""

    def __init__(self, model: GarmentClassifier, freeze_blocks: int) -> None:
        super().__init__()
        self.model = model
        self.top = nn.Sequential(*model.backbone.blocks[freeze_blocks:])

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = self.model.backbone
        x = b.bn2(b.conv_head(self.top(feats.float())))
        return self.model.forward_heads(b.global_pool(x).flatten(1))

    def trainable_parameters(self) -> list[nn.Parameter]:
        b = self.model.backbone
        mods = [self.top, b.conv_head, b.bn2, self.model.heads]
        return [p for m in mods for p in m.parameters()]


def crop_view(size: int, seed: int) -> A.Compose:
    return A.Compose([A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), ratio=(0.75, 1.333)),
                      A.HorizontalFlip(p=0.5)], seed=seed)


@torch.inference_mode()
def compute_features(stem: FrozenStem, dataset: SampleDataset, *, views: int, seed: int, batch_size: int = 64,
                     desc: str = "cache features") -> torch.Tensor:
    """``(N, V, C, H, W)`` fp16 features: view 0 = the image, 1 = mirrored, 2.. = seeded random crops."""
    stem.eval()
    out: list[torch.Tensor] = []
    crops = crop_view(dataset.size, seed)
    mean, std = dataset.mean, dataset.std
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc):
        idx = range(start, min(len(dataset), start + batch_size))
        imgs = [dataset.load(i) for i in idx]
        per_view = []
        for v in range(views):
            if v == 0:
                batch = imgs
            elif v == 1:
                batch = [im[:, ::-1] for im in imgs]
            else:
                batch = [crops(image=im)["image"] for im in imgs]
            x = np.stack([((im.astype(np.float32) - mean) / std).transpose(2, 0, 1) for im in batch])
            per_view.append(stem(torch.from_numpy(x)).half())
        out.append(torch.stack(per_view, dim=1))
    return torch.cat(out)


def cached_features(stem: FrozenStem, dataset: SampleDataset, cache_file: Path, *, views: int, seed: int,
                    batch_size: int = 64, desc: str = "cache features") -> torch.Tensor:
    """Load features from ``cache_file`` if it matches the samples, else compute and save them."""
    key = hashlib.sha1("\n".join(s.file for s in dataset.samples).encode()).hexdigest()
    if cache_file.is_file():
        blob = torch.load(cache_file, weights_only=True)
        if blob.get("key") == key and blob["features"].shape[1] == views:
            log.info("features from %s", cache_file)
            return blob["features"]
    feats = compute_features(stem, dataset, views=views, seed=seed, batch_size=batch_size, desc=desc)
    atomic_write(cache_file, lambda tmp: torch.save({"key": key, "features": feats}, tmp), fsync=False)
    return feats


class FeatureDataset(Dataset):
    """Cached ``(N, V, C, H, W)`` features → ``(features of one view, targets)``; a random view per
    item when ``random_view`` (training), view 0 otherwise."""

    def __init__(self, features: torch.Tensor, samples: Sequence[Sample], heads: Sequence[HeadSpec], *,
                 random_view: bool, sample_weights: Sequence[float] | None = None, seed: int = 0) -> None:
        if len(features) != len(samples):
            raise ValueError(f"{len(features)} feature rows for {len(samples)} samples")
        self.features = features
        self.targets = [encode_targets(s, heads) for s in samples]
        self.random_view = random_view
        self.sample_weights = None if sample_weights is None else [float(w) for w in sample_weights]
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int):
        v = int(self.rng.integers(self.features.shape[1])) if self.random_view else 0
        targets = dict(self.targets[i])
        if self.sample_weights is not None:
            targets["sample_weight"] = torch.tensor(self.sample_weights[i])
        return self.features[i, v], targets


# ------------------------------------------------------------------------------------- pooled features
# The corrections recipe (:mod:`fashionlens.train.corrections`): the whole backbone of trained weights is
# frozen, its pooled features (the heads' input, 1280 wide for Lite0) are computed once per image and kept,
# and only the linear heads are fine-tuned on them — seconds per run instead of minutes.


def weights_digest(path: str | Path) -> str:
    """A short content hash of a weights file (names the pooled-feature caches made with it)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


class OnnxPooled:
    """The pooled features of a classifier's ONNX export: the tensor its ``embedding`` output L2-normalises
    (the input of the heads), exposed as an extra graph output and run by ONNX Runtime — about twice as fast
    as the PyTorch backbone on a 2-core CPU. Called like the backbone: ``(B, 3, S, S)`` float → ``(B, D)``."""

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        import onnx
        import onnxruntime as ort

        from fashionlens.models.meta import EMBEDDING_OUTPUT

        model = onnx.load(str(onnx_path))
        producer = next((n for n in model.graph.node if EMBEDDING_OUTPUT in n.output), None)
        if producer is None or producer.op_type != "Div":
            raise ValueError(f"{onnx_path}: expected a classifier export whose {EMBEDDING_OUTPUT!r} output is the "
                             "L2 normalisation (a Div) of the pooled features; it has none")
        self.output = producer.input[0]
        model.graph.output.append(onnx.helper.make_tensor_value_info(self.output, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self.output], {self.input: x.numpy()})[0])


def pooled_extractor(model: GarmentClassifier, weights: str | Path, probe: SampleDataset | None = None, *,
                     tolerance: float = 1e-3) -> tuple[nn.Module | OnnxPooled, str]:
    """What computes the pooled features of ``weights`` and its name: the ONNX export next to them
    (``<stem>.onnx``) when there is one and it agrees with ``model``'s backbone on the first images of
    ``probe`` (largest difference ≤ ``tolerance`` × the largest feature), else the PyTorch backbone."""
    onnx_path = Path(weights).with_suffix(".onnx")
    if not onnx_path.is_file():
        return model.backbone, "torch"
    try:
        runner = OnnxPooled(onnx_path, threads=torch.get_num_threads())
    except (ValueError, ImportError) as exc:
        log.warning("pooled features with PyTorch: %s", exc)
        return model.backbone, "torch"
    if probe is not None and len(probe):
        x = torch.from_numpy(np.stack([((probe.load(i).astype(np.float32) - probe.mean) / probe.std).transpose(2, 0, 1)
                                       for i in range(min(4, len(probe)))]))
        with torch.inference_mode():
            ref = model.backbone.eval()(x)
        diff = float((runner(x) - ref).abs().max())
        if diff > tolerance * float(ref.abs().max()):
            log.warning("%s disagrees with %s (largest feature difference %.3g): pooled features with PyTorch",
                        onnx_path, weights, diff)
            return model.backbone, "torch"
    return runner, "onnx"


@torch.inference_mode()
def compute_pooled_features(backbone: nn.Module | OnnxPooled, dataset: SampleDataset, *, batch_size: int = 64,
                            desc: str = "pooled features") -> torch.Tensor:
    """``(N, D)`` fp16: the frozen ``backbone``'s pooled features of each sample's cached image (view 0 only)."""
    if isinstance(backbone, nn.Module):
        backbone.eval()
    out: list[torch.Tensor] = []
    mean, std = dataset.mean, dataset.std
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, leave=False):
        imgs = [dataset.load(i) for i in range(start, min(len(dataset), start + batch_size))]
        x = np.stack([((im.astype(np.float32) - mean) / std).transpose(2, 0, 1) for im in imgs])
        out.append(backbone(torch.from_numpy(x)).half())
    return torch.cat(out) if out else torch.zeros((0, 0), dtype=torch.float16)


def _pooled_key(dataset: SampleDataset, weights_key: str) -> str:
    return hashlib.sha1((weights_key + "\n" + "\n".join(s.file for s in dataset.samples)).encode()).hexdigest()


def load_pooled_features(dataset: SampleDataset, cache_file: Path, *, weights_key: str) -> torch.Tensor | None:
    """The pooled features kept in ``cache_file`` when they were made with these weights for these samples."""
    if cache_file.is_file():
        blob = torch.load(cache_file, weights_only=True)
        if blob.get("key") == _pooled_key(dataset, weights_key):
            log.info("pooled features from %s", cache_file)
            return blob["features"]
    return None


def cached_pooled_features(backbone: nn.Module | OnnxPooled, dataset: SampleDataset, cache_file: Path, *, weights_key: str,
                           batch_size: int = 64, desc: str = "pooled features") -> torch.Tensor:
    """:func:`compute_pooled_features`, kept in ``cache_file`` and reused while the weights (``weights_key``)
    and the list of sample files are the same."""
    cached = load_pooled_features(dataset, cache_file, weights_key=weights_key)
    if cached is not None:
        return cached
    key = _pooled_key(dataset, weights_key)
    feats = compute_pooled_features(backbone, dataset, batch_size=batch_size, desc=desc)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_file, lambda tmp: torch.save({"key": key, "features": feats}, tmp), fsync=False)
    return feats


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run small tensor operations on one thread: the heads' matrices are tiny, and on a shared 2-core machine
    every extra intra-op thread costs a synchronisation that waits for a busy core (measured: 2 heads-only
    epochs over 1,024 samples took 0.3-0.45 s on one thread, 3.8-8.5 s on two, with other jobs running)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stack_targets(samples: Sequence[Sample], heads: Sequence[HeadSpec]) -> dict[str, torch.Tensor]:
    rows = [encode_targets(s, heads) for s in samples]
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]} if rows else {}


def fit_heads(model: GarmentClassifier, features: torch.Tensor, samples: Sequence[Sample], *, epochs: int = 12,
              lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 256, label_smoothing: float = 0.1,
              head_loss_weights: dict[str, float] | None = None, sample_weights: np.ndarray | None = None,
              seed: int = 0) -> list[float]:
    """Fine-tune ``model.heads`` in place on pooled ``features`` (``(N, D)``) of ``samples``: AdamW with a
    cosine schedule for a fixed number of ``epochs`` (no model selection: the validation split stays free for
    calibration), the training recipe's multi-task loss (set-valued category cross-entropy, per-head masks,
    ``sample_weights`` on the category term). The backbone is not touched. Returns the mean loss per epoch."""
    if len(features) != len(samples):
        raise ValueError(f"{len(features)} feature rows for {len(samples)} samples")
    if len(samples) == 0:
        raise ValueError("fit_heads: expected at least one sample; got none")
    with _one_thread():
        return _fit_heads(model, features, samples, epochs=epochs, lr=lr, weight_decay=weight_decay,
                          batch_size=batch_size, label_smoothing=label_smoothing, head_loss_weights=head_loss_weights,
                          sample_weights=sample_weights, seed=seed)


def _fit_heads(model: GarmentClassifier, features: torch.Tensor, samples: Sequence[Sample], *, epochs: int, lr: float,
               weight_decay: float, batch_size: int, label_smoothing: float, head_loss_weights: dict[str, float] | None,
               sample_weights: np.ndarray | None, seed: int) -> list[float]:
    from fashionlens.train.losses import multitask_loss

    heads = model.meta.heads
    targets = _stack_targets(samples, heads)
    weights = torch.ones(len(samples)) if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.float32)
    x_all = features.float()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    optim = torch.optim.AdamW(model.heads.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, math.ceil(len(samples) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(samples), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(samples), batch_size):
            idx = order[start:start + batch_size]
            outputs = model.forward_heads(x_all[idx])
            loss, _ = multitask_loss(outputs, {k: v[idx] for k, v in targets.items()}, heads,
                                     weights=head_loss_weights or {}, sample_weight=weights[idx],
                                     label_smoothing=label_smoothing)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / count)
    model.eval()
    return losses


@torch.no_grad()
def head_probs(model: GarmentClassifier, features: torch.Tensor, *, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Per-head probabilities (softmax / sigmoid, as the backends give them) of pooled ``features``."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {h.name: [] for h in model.meta.heads}
    with _one_thread():
        for start in range(0, len(features), batch_size):
            logits = model.forward_heads(features[start:start + batch_size].float())
            for h, lg in zip(model.meta.heads, logits):
                out[h.name].append((lg.softmax(-1) if h.kind == "single" else lg.sigmoid()).numpy().astype(np.float64))
    return {k: np.concatenate(v) if v else np.zeros((0, 0)) for k, v in out.items()}
