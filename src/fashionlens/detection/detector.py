"""Garment detection for the Tagger: a trained detector → :class:`~fashionlens.result.Garments`.

:class:`GarmentDetector` loads detector weights (the shipped default, or a path from
``fashionlens train detector``), runs it on decoded photos and applies the optional
post-processing rules of :mod:`fashionlens.detection.rules`. Boxes and masks come back in the
photo's full-resolution pixels even when it was decoded at a reduced JPEG scale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fashionlens.detection.rules import RULES, apply_rules
from fashionlens.result import Garments
from fashionlens.imageio import DecodedImage
from fashionlens.models.detector_weights import load_detector
from fashionlens.models.fcos_seg import FCOSSeg

log = logging.getLogger(__name__)

#: photos more elongated than this (long side over short side) are letterboxed before the network
MAX_ASPECT = 8


@dataclass(frozen=True)
class DetectSettings:
    """Run-time detection settings; ``None`` keeps the value stored with the weights.

    ``score_thresh``: keep detections scoring at least this; ``nms_thresh``: IoU above which
    same-type boxes are suppressed; ``rules``: names from :data:`fashionlens.detection.rules.RULES`;
    ``mask_thresh``: mask probability threshold.
    """

    score_thresh: float | None = None
    nms_thresh: float | None = None
    max_detections: int = 20
    rules: tuple[str, ...] = ()
    mask_thresh: float = 0.5

    def __post_init__(self) -> None:
        for name in ("score_thresh", "nms_thresh"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown post-processing rule(s) {unknown}; expected some of {sorted(RULES)}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections: expected >= 1, got {self.max_detections}")


class GarmentDetector:
    """A loaded detector that turns decoded photos into :class:`Garments` (boxes, masks, types, scores)."""

    def __init__(self, weights: str | Path | None = None, *, settings: DetectSettings = DetectSettings(),
                 threads: int | None = None, backend: str = "auto") -> None:
        from fashionlens.models.registry import DEFAULT_DETECTOR, default_weights_path

        path = Path(weights) if weights is not None else default_weights_path(DEFAULT_DETECTOR)
        if threads:
            torch.set_num_threads(threads)
        self.model, self.meta = load_detector(path)
        chosen = self.meta.extra.get("defaults") or {}
        self.score_thresh = float(settings.score_thresh if settings.score_thresh is not None
                                  else chosen.get("score_thresh", 0.3))
        self.nms_thresh = float(settings.nms_thresh if settings.nms_thresh is not None
                                else chosen.get("nms_thresh", 0.6))
        # with rules, the network keeps candidates down to 0.05 so the rules see them and the threshold
        # applies after the rules; without, the network applies it (no masks for discarded boxes)
        self.model.score_thresh = min(0.05, self.score_thresh) if settings.rules else self.score_thresh
        self.model.nms_thresh = self.nms_thresh
        self.model.detections_per_img = settings.max_detections
        self.settings = settings
        self.class_names = list(self.meta.class_names)
        self.path = path
        self.run: Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]] = self.model
        self.backend = "torch"
        onnx_path = path.with_suffix(".onnx")
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend: expected auto, onnx or torch, got {backend!r}")
        if backend == "onnx" and not onnx_path.is_file():
            raise FileNotFoundError(f"backend 'onnx' needs {onnx_path} (fashionlens export onnx --detector {path})")
        if backend != "torch" and onnx_path.is_file() and isinstance(self.model, FCOSSeg):
            from fashionlens.runtime.detector_onnx import OnnxDetectorRunner

            self.run = OnnxDetectorRunner(self.model, onnx_path, threads=threads)
            self.backend = "onnx"

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.meta.name, "version": self.meta.version, "backend": self.backend}

    @torch.no_grad()
    def _network(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
        h, w = rgb.shape[:2]
        if max(h, w) > MAX_ASPECT * min(h, w):
            return self._network_letterboxed(rgb)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        [out] = self.run([image])
        return out

    def _network_letterboxed(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        """The network on a photo more elongated than :data:`MAX_ASPECT` (a 1×10000 strip, say):
        resized so its long side is the detector's input size (as the network's own transform would),
        padded with its mean colour on the bottom/right up to ``MAX_ASPECT``, then boxes and masks
        mapped back to the photo's pixels. Without this the network's resize rounds the short side to
        zero pixels and fails."""
        h, w = rgb.shape[:2]
        long_side = int(self.meta.builder_kwargs.get("max_size", 384))
        scale = long_side / max(h, w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        ph, pw = (max(sh, -(-sw // MAX_ASPECT)), sw) if sw > sh else (sh, max(sw, -(-sh // MAX_ASPECT)))
        canvas = np.empty((ph, pw, 3), np.uint8)
        canvas[:] = small.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        canvas[:sh, :sw] = small
        image = torch.from_numpy(canvas).permute(2, 0, 1).float().div_(255.0)
        [out] = self.run([image])
        boxes = out["boxes"].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, sw) / scale
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, sh) / scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # boxes wholly in the padding go
        result = {k: v[keep] for k, v in out.items() if k != "boxes"}
        result["boxes"] = boxes[keep]
        masks = result.get("masks")
        if masks is not None:
            crop = masks[:, 0, :sh, :sw].float().numpy()
            result["masks"] = torch.from_numpy(
                np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in crop])
                if len(crop) else np.zeros((0, h, w), np.float32))[:, None]
        return result

    def _as_garments(self, out: dict[str, torch.Tensor]) -> Garments:
        masks = out.get("masks")
        return Garments(
            xyxy=out["boxes"].numpy(), object_type=[self.class_names[int(i)] for i in out["labels"]],
            confidence=out["scores"].clamp(0, 1).numpy(),
            mask=(masks[:, 0] >= self.settings.mask_thresh).numpy() if masks is not None else None,
        )

    def candidates(self, rgb: np.ndarray) -> Garments:
        """The network's detections for an ``H×W×3`` uint8 image, in its pixels, before rules and
        the run-time threshold (the network's own ``score_thresh`` still applies)."""
        return self._as_garments(self._network(rgb))

    def to_garments(self, out: dict[str, torch.Tensor], size: tuple[int, int]) -> Garments:
        """Network output → garments after the rules and the run-time threshold."""
        garments = apply_rules(self._as_garments(out), self.settings.rules, size=size, nms_thresh=self.nms_thresh)
        return garments.select(garments.confidence >= self.score_thresh)

    def detect_rgb(self, rgb: np.ndarray) -> Garments:
        """Garments in an ``H×W×3`` uint8 image, in its pixels, after rules and threshold."""
        return self.to_garments(self._network(rgb), rgb.shape[:2])

    def detect(self, image: DecodedImage) -> Garments:
        """Garments of a decoded photo, boxes and masks in its full-resolution pixels."""
        garments = self.detect_rgb(image.rgb)
        if image.scale == 1.0:
            return garments
        mask = garments.mask
        if mask is not None:
            mask = np.stack([cv2.resize(m.astype(np.uint8), (image.width, image.height),
                                        interpolation=cv2.INTER_NEAREST).astype(bool) for m in mask]
                            ) if len(mask) else np.zeros((0, image.height, image.width), bool)
        # float32 division, as the boxes always were: the JSON bbox rounds the same as before
        return Garments(xyxy=(garments.xyxy.astype(np.float32) / np.float32(image.scale)), object_type=garments.object_type,
                        confidence=garments.confidence, mask=mask, data=garments.data)

    def detect_many(self, images: Sequence[DecodedImage]) -> list[Garments]:
        return [self.detect(im) for im in images]
