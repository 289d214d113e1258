"""Text–image alignment heads: garment embedding (1280-d) and MiniLM sentence embedding (384-d)
→ one shared D-dimensional space where cosine similarity says how well a text describes a garment.

Trained CLIP-style by :mod:`fashionlens.train.alignment` (symmetric InfoNCE, learned temperature);
the image encoder (the garment classifier) and the text encoder (all-MiniLM-L6-v2) stay frozen, only
the two projection heads are learned. Each head is ``Linear`` or ``Linear → GELU(tanh) → Linear``,
followed by L2 normalisation.

The heads are stored as one ``.npz`` file — fp16 arrays plus a JSON ``meta`` (dimensions, the
classifier and text encoder they belong to, the learned temperature, training data and metrics) —
and run in NumPy, so projecting at index time needs neither torch nor FAISS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.weights_io import load_npz_weights, save_npz_weights

__all__ = ["ALIGNMENT_FORMAT", "AlignmentHeads", "AlignmentMeta", "load_alignment", "save_alignment"]

ALIGNMENT_FORMAT = "fashionlens/alignment-heads/v1"


@dataclass
class AlignmentMeta:
    """Everything about a pair of projection heads besides their arrays."""

    name: str = "garment-text-align"
    version: str = "0"
    image_dim: int = 1280
    text_dim: int = 384
    dim: int = 256
    hidden: int = 0  # 0: linear heads; else the hidden width of two-layer heads
    temperature: float = 0.07  # learned; logits = cosine / temperature
    classifier: dict[str, str] = field(default_factory=dict)  # name/version of the image encoder
    text_encoder: str = "all-MiniLM-L6-v2"
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlignmentMeta:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"alignment meta: unknown fields {sorted(unknown)}; expected {sorted(known)}")
        return cls(**dict(d))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def head_param_names(prefix: str, hidden: int) -> list[str]:
    """Array names of one head: ``{prefix}.0.weight/bias`` (and ``{prefix}.2.*`` for two layers),
    the same names as the ``nn.Sequential`` used in training."""
    names = [f"{prefix}.0.weight", f"{prefix}.0.bias"]
    return names + ([f"{prefix}.2.weight", f"{prefix}.2.bias"] if hidden else [])


class AlignmentHeads:
    """NumPy inference of the two heads: ``project_image`` and ``project_text`` → unit vectors."""

    def __init__(self, meta: AlignmentMeta, arrays: Mapping[str, np.ndarray]) -> None:
        self.meta = meta
        expected = {
            "image.0.weight": (meta.hidden or meta.dim, meta.image_dim),
            "text.0.weight": (meta.hidden or meta.dim, meta.text_dim),
        }
        if meta.hidden:
            expected |= {"image.2.weight": (meta.dim, meta.hidden), "text.2.weight": (meta.dim, meta.hidden)}
        names = head_param_names("image", meta.hidden) + head_param_names("text", meta.hidden)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"alignment heads: missing arrays {missing}; got {sorted(arrays)}")
        for n, shape in expected.items():
            if tuple(arrays[n].shape) != shape:
                raise ValueError(f"alignment heads: {n} expected shape {shape}; got {tuple(arrays[n].shape)}")
        self._w = {n: np.asarray(arrays[n], dtype=np.float32) for n in names}

    @property
    def dim(self) -> int:
        return self.meta.dim

    def _project(self, prefix: str, x: np.ndarray, in_dim: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != in_dim:
            raise ValueError(f"{prefix} embeddings: expected shape (n, {in_dim}); got {x.shape}")
        w = self._w
        h = x @ w[f"{prefix}.0.weight"].T + w[f"{prefix}.0.bias"]
        if self.meta.hidden:
            h = _gelu_tanh(h) @ w[f"{prefix}.2.weight"].T + w[f"{prefix}.2.bias"]
        return _normalise(h).astype(np.float32)

    def project_image(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, image_dim)`` garment embeddings → ``(n, dim)`` unit vectors."""
        return self._project("image", embeddings, self.meta.image_dim)

    def project_text(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, text_dim)`` sentence embeddings → ``(n, dim)`` unit vectors."""
        return self._project("text", embeddings, self.meta.text_dim)


def save_alignment(meta: AlignmentMeta, arrays: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                   half: bool = True) -> Path:
    """Write ``path`` (``.npz``) atomically: arrays (fp16 when ``half``) + the meta as JSON."""
    AlignmentHeads(meta, arrays)  # validates names and shapes
    blob = {n: np.asarray(a, dtype=np.float16 if half else np.float32) for n, a in arrays.items()}
    return save_npz_weights(path, fmt=ALIGNMENT_FORMAT, meta=meta.to_dict(), arrays=blob)


def load_alignment(path: str | os.PathLike[str] | None = None) -> AlignmentHeads:
    """Load heads saved by :func:`save_alignment` (default: the shipped ``garment-text-align-lite0``)."""
    if path is None:
        from fashionlens.models.registry import DEFAULT_ALIGNMENT, default_weights_path

        path = default_weights_path(DEFAULT_ALIGNMENT)
    meta, arrays = load_npz_weights(path, fmt=ALIGNMENT_FORMAT, what="alignment heads")
    return AlignmentHeads(AlignmentMeta.from_dict(meta), arrays)
