"""The multi-head garment classifier: an EfficientNet-Lite backbone + one linear head per task.

Weights travel with their metadata (like torchvision's ``Weights.meta``): heads and their label
vocabularies, preprocessing (input size, mean/std), decision thresholds and measured metrics are
stored in the same file, and transforms are derived from them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from fashionlens.models.backbones import backbone_spec, create_backbone
from fashionlens.models.heads import default_heads
from fashionlens.models.meta import EMBEDDING_OUTPUT, WEIGHTS_FORMAT, ClassifierMeta
from fashionlens.models.weights_io import load_torch_weights, save_torch_weights

__all__ = ["EMBEDDING_OUTPUT", "ClassifierMeta", "GarmentClassifier", "embedding_dim", "load_classifier",
           "new_classifier_meta", "save_classifier"]

log = logging.getLogger(__name__)


def embedding_dim(meta: ClassifierMeta) -> int:
    """Length of the garment embedding: the backbone's pooled feature width (1280 for Lite0)."""
    return backbone_spec(meta.backbone).num_features


class GarmentClassifier(nn.Module):
    """``forward(images)`` takes normalised ``(B, 3, S, S)`` float images and returns one logit
    tensor per head, in ``meta.heads`` order, as a tuple (ONNX-friendly)."""

    def __init__(self, meta: ClassifierMeta, *, pretrained_backbone: bool = True, dropout: float = 0.2) -> None:
        super().__init__()
        self.meta = meta
        self.backbone = create_backbone(meta.backbone, pretrained=pretrained_backbone)
        features = backbone_spec(meta.backbone).num_features
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({h.name: nn.Linear(features, h.num_outputs) for h in meta.heads})

    def forward_heads(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.dropout(features)
        return tuple(self.heads[h.name](f) for h in self.meta.heads)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.forward_heads(self.backbone(images))

    def forward_with_embedding(self, images: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``(logits per head, embedding)``: the embedding is the backbone's pooled features
        ``(B, embedding_dim)``, L2-normalised (the input of the heads, before dropout)."""
        features = self.backbone(images)
        return self.forward_heads(features), nn.functional.normalize(features, dim=-1, eps=1e-12)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised garment embeddings ``(B, embedding_dim)`` of normalised images."""
        return nn.functional.normalize(self.backbone(images), dim=-1, eps=1e-12)


def new_classifier_meta(*, backbone: str = "efficientnet_lite0", input_size: int | None = None,
                        name: str = "garment-classifier", version: str = "0") -> ClassifierMeta:
    spec = backbone_spec(backbone)
    return ClassifierMeta(name=name, version=version, backbone=backbone, input_size=input_size or spec.input_size,
                          mean=spec.mean, std=spec.std, heads=default_heads())


def save_classifier(model: GarmentClassifier, path: str | Path, *, half: bool = True) -> None:
    """Save weights + meta in one file (fp16 tensors when ``half``), atomically: the one ``.pt``
    layout of :func:`fashionlens.models.weights_io.save_torch_weights`."""
    save_torch_weights(path, fmt=WEIGHTS_FORMAT, meta=model.meta.to_dict(), state_dict=model.state_dict(), half=half)


def load_classifier(path: str | Path, *, map_location: str = "cpu") -> GarmentClassifier:
    """Load a classifier saved by :func:`save_classifier` (tensors cast to fp32, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found: {path}")
    raw_meta, state = load_torch_weights(path, fmt=WEIGHTS_FORMAT, map_location=map_location)
    meta = ClassifierMeta.from_dict(raw_meta)
    model = GarmentClassifier(meta, pretrained_backbone=False)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()
