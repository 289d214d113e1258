"""Classifier metadata, importable without torch (the ONNX runtime path needs no torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fashionlens.models.heads import HeadSpec

WEIGHTS_FORMAT = "fashionlens/classifier-weights/v1"

#: name of the garment-embedding output of classifier backends and of the ONNX graph
EMBEDDING_OUTPUT = "embedding"


@dataclass
class ClassifierMeta:
    """Everything needed to run a classifier besides its tensors."""

    name: str
    version: str
    backbone: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    heads: tuple[HeadSpec, ...]
    thresholds: dict[str, float] = field(default_factory=dict)  # multi-label heads: decision threshold
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def head(self, name: str) -> HeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(f"classifier has no head {name!r}; heads: {[h.name for h in self.heads]}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["heads"] = [h.to_dict() for h in self.heads]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierMeta:
        d = dict(d)
        d["heads"] = tuple(HeadSpec.from_dict(h) for h in d["heads"])
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)
