"""Damage regions of one garment view: the damage head run on a photo, decoded inside the garment.

``DamageFinder`` loads the damage head once (the shipped ``damage-segmenter-lite0`` by default),
resizes a photo so its longer side is the model's input side (padded to a multiple of 32), and
returns :class:`FoundDamage` regions in full-resolution pixels: type, share of the garment's pixels,
score (mean damage probability), box and COCO-RLE mask. When the weights carry a region verifier
(:mod:`fashionlens.grading.region_verifier`), it decides which candidate regions are damage;
otherwise decoding follows :func:`fashionlens.models.damage_decoding.decode_damage` with the threshold
and minimum region size measured on validation and stored in the weights.

With an ONNX export next to the weights (the shipped head has one) this runs on ONNX Runtime and
NumPy, and torch is never imported: the meta comes from the export. ``backend="torch"`` imports
torch and needs the ``[train]`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashionlens.grading.region_verifier import RegionVerifier
from fashionlens.io.records import encode_mask
from fashionlens.models.damage_decoding import decode_damage
from fashionlens.models.damage_meta import DamageMeta
from fashionlens.models.registry import DEFAULT_DAMAGE_MODEL, default_weights_path
from fashionlens.taxonomy import DAMAGE_TYPES


@dataclass(frozen=True)
class FoundDamage:
    type: str
    area_share: float
    score: float
    bbox_xyxy: tuple[float, float, float, float]
    mask: np.ndarray  # H×W bool, full resolution

    def to_dict(self, view: str) -> dict[str, Any]:
        x0, y0, x1, y1 = self.bbox_xyxy
        return {"view": view, "type": self.type, "area_share": round(self.area_share, 5),
                "score": round(self.score, 4), "bbox": [round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)],
                "mask": encode_mask(self.mask)}


class DamageFinder:
    """The damage head with its decoding settings.

    ``threshold``/``min_region_share``: None = the weights' own. ``verify``: use the weights' region
    verifier when they have one; passing a threshold or minimum region asks for the plain decoding,
    so the verifier is then off.
    """

    def __init__(self, weights: str | Path | None = None, *, threshold: float | None = None,
                 min_region_share: float | None = None, threads: int | None = None,
                 backend: str = "auto", verify: bool = True) -> None:
        from fashionlens.runtime.backends import onnx_path_for, resolve_backend

        path = Path(weights) if weights is not None else default_weights_path(DEFAULT_DAMAGE_MODEL)
        chosen = resolve_backend(backend, path, export="--damage")
        self.backend = chosen
        self.runner: Any = None  # the ONNX Runtime session (backend onnx)
        self.model: Any = None  # the torch module (backend torch)
        if chosen == "onnx":
            from fashionlens.runtime.damage_onnx import OnnxDamageRunner

            self.runner = OnnxDamageRunner(onnx_path_for(path), threads=threads)
            self.meta: DamageMeta = self.runner.meta or self._meta_from_torch_weights(path)
        else:
            from fashionlens.models.extras import require_torch

            torch = require_torch(f"damage weights {path} without an ONNX export next to them")
            from fashionlens.models.damage import load_damage_model

            if threads:
                torch.set_num_threads(threads)
            self.model, self.meta = load_damage_model(path)
        self.threshold = self.meta.threshold if threshold is None else threshold
        self.min_region_share = self.meta.min_region_share if min_region_share is None else min_region_share
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        plain = threshold is not None or min_region_share is not None
        self.verifier = (RegionVerifier.from_dict(self.meta.verifier)
                         if verify and not plain and self.meta.verifier else None)

    @staticmethod
    def _meta_from_torch_weights(path: Path) -> DamageMeta:
        """The meta of an ONNX export written before exports stored it: read from the ``.pt`` (torch)."""
        from fashionlens.models.extras import require_torch
        from fashionlens.runtime.damage_onnx import stale_export_hint

        require_torch(f"{stale_export_hint(path)}; reading the meta from {path.with_suffix('.pt')}")
        from fashionlens.models.damage import load_damage_model

        return load_damage_model(path.with_suffix(".pt"))[1]

    @property
    def info(self) -> dict[str, str]:
        return {"damage_model": self.meta.name, "damage_version": self.meta.version, "damage_backend": self.backend,
                "damage_decoding": "region-verifier" if self.verifier is not None else "threshold"}

    def _input(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        s = self.meta.input_side / max(h, w)
        nh, nw = max(32, round(h * s / 32) * 32), max(32, round(w * s / 32) * 32)
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        mean = np.asarray(self.meta.mean, np.float32) * 255
        std = np.asarray(self.meta.std, np.float32) * 255
        x = ((small.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x), small

    def _model_probabilities(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K, h, w)`` probabilities at the model's resolution and the photo resized to it."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
        x, small = self._input(rgb)
        if self.runner is not None:
            p = self.runner(x)[0]
        else:
            import torch

            from fashionlens.models.damage import damage_probabilities

            with torch.inference_mode():
                p = damage_probabilities(self.model, torch.from_numpy(x))[0].numpy()
        return np.asarray(p, np.float32), small

    def probabilities(self, rgb: np.ndarray, *, full_size: bool = True) -> np.ndarray:
        """``(K, H, W)`` damage probabilities at the photo's resolution (``full_size``) or the model's."""
        p, _small = self._model_probabilities(rgb)
        if not full_size:
            return p
        h, w = rgb.shape[:2]
        return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in p])

    def find(self, rgb: np.ndarray, garment: np.ndarray | None = None) -> list[FoundDamage]:
        """Damage regions inside ``garment`` (``H×W`` bool; None = the whole photo).

        Decoded at the model's resolution (as in training and evaluation); each region's mask is
        then scaled to the photo's size.
        """
        if garment is not None and garment.shape != rgb.shape[:2]:
            raise ValueError(f"expected a garment mask of shape {rgb.shape[:2]}, got {garment.shape}")
        h, w = rgb.shape[:2]
        probs, small = self._model_probabilities(rgb)
        sh, sw = probs.shape[1:]
        g = None
        if garment is not None:
            g = cv2.resize(garment.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        if self.verifier is not None:
            dmap = self.verifier.decode(probs, small, g)
        else:
            dmap = decode_damage(probs, threshold=self.threshold, garment=g, min_region_share=self.min_region_share)
        area = float(g.sum()) if g is not None else float(dmap.size)
        sx, sy = w / sw, h / sh
        out: list[FoundDamage] = []
        for k, name in enumerate(DAMAGE_TYPES, start=1):
            n, labels, stats, _ = cv2.connectedComponentsWithStats((dmap == k).astype(np.uint8), connectivity=8)
            for j in range(1, n):
                m = labels == j
                x, y, bw, bh = (int(v) for v in stats[j, :4])
                full = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
                if garment is not None:
                    full &= garment
                out.append(FoundDamage(name, float(m.sum()) / max(area, 1.0), float(1 - probs[0][m].mean()),
                                       (x * sx, y * sy, (x + bw) * sx, (y + bh) * sy), full))
        out.sort(key=lambda d: -d.area_share)
        return out

