"""``Garments``: the one record that carries a photo's garments through every stage.

Modelled on ``supervision.Detections``: parallel arrays (``xyxy`` boxes, optional ``mask``,
``object_type`` and ``confidence``) plus a ``data`` dict of per-garment extras (category,
attributes, embeddings …) that later stages add to. Validated on construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashionlens.taxonomy import load_taxonomy


@dataclass
class Garments:
    """N garments of one image.

    * ``xyxy``: ``(N, 4)`` float32 boxes ``(x_min, y_min, x_max, y_max)`` in original-image pixels;
    * ``mask``: ``(N, H, W)`` bool or None;
    * ``object_type``: N taxonomy object types; ``confidence``: ``(N,)`` float32 in [0, 1];
    * ``data``: name → list of N per-garment values.
    """

    xyxy: np.ndarray
    object_type: list[str]
    confidence: np.ndarray
    mask: np.ndarray | None = None
    data: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        n = len(self.xyxy)
        if len(self.object_type) != n or len(self.confidence) != n:
            raise ValueError(f"Garments: expected {n} object types and confidences (one per box), got "
                             f"{len(self.object_type)} and {len(self.confidence)}")
        tax = load_taxonomy()
        for t in self.object_type:
            tax.object_type_index(t)
        if not np.isfinite(self.xyxy).all():
            raise ValueError("Garments: xyxy boxes must be finite numbers")
        if not ((self.confidence >= 0) & (self.confidence <= 1)).all():
            raise ValueError(f"Garments: confidence must be in [0, 1], got {self.confidence.tolist()}")
        if (self.xyxy[:, 2] < self.xyxy[:, 0]).any() or (self.xyxy[:, 3] < self.xyxy[:, 1]).any():
            raise ValueError("Garments: xyxy boxes need x_max >= x_min and y_max >= y_min")
        if self.mask is not None and (self.mask.ndim != 3 or len(self.mask) != n):
            raise ValueError(f"Garments: mask must be (N={n}, H, W), got shape {self.mask.shape}")
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"Garments: data[{key!r}] has {len(values)} values for {n} garments")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))

    def select(self, keep: np.ndarray | Sequence[int]) -> Garments:
        """The garments picked by a boolean array of length N or by indices (in that order)."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64).reshape(-1)
        if keep.dtype == bool and len(keep) != len(self):
            raise ValueError(f"Garments.select: expected {len(self)} booleans, got {len(keep)}")
        return Garments(xyxy=self.xyxy[idx], object_type=[self.object_type[i] for i in idx],
                        confidence=self.confidence[idx], mask=None if self.mask is None else self.mask[idx],
                        data={k: [v[i] for i in idx] for k, v in self.data.items()})

    @classmethod
    def empty(cls) -> Garments:
        return cls(xyxy=np.zeros((0, 4)), object_type=[], confidence=np.zeros(0))

    @classmethod
    def whole_image(cls, width: int, height: int, object_type: str, confidence: float) -> Garments:
        """One garment covering the whole photo (single-garment product photos)."""
        return cls(xyxy=np.array([[0, 0, width, height]]), object_type=[object_type], confidence=[confidence])
