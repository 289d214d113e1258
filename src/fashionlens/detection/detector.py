"""Garment detection for the Tagger: a trained detector → :class:`~fashionlens.result.Garments`.

:class:`GarmentDetector` loads a detector (the shipped default, or weights from
``fashionlens train detector``), runs it on decoded photos and applies the optional
post-processing rules of :mod:`fashionlens.detection.rules`. Boxes and masks come back in the
photo's full-resolution pixels even when it was decoded at a reduced JPEG scale.

With an ONNX export next to the weights (the shipped detector has one) it runs on ONNX Runtime and
NumPy (:class:`~fashionlens.runtime.detector_onnx.OnnxDetector`): nothing here imports torch. The
PyTorch runtime (``backend="torch"``, or weights without an export) needs the ``[train]`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fashionlens.detection.rules import apply_rules
from fashionlens.detection.settings import DetectSettings
from fashionlens.imageio import DecodedImage
from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.result import Garments

log = logging.getLogger(__name__)

__all__ = ["MAX_ASPECT", "DetectSettings", "GarmentDetector"]  # DetectSettings: re-exported

#: photos more elongated than this (long side over short side) are letterboxed before the network
MAX_ASPECT = 8


def _numpy(value: Any) -> np.ndarray:
    """A NumPy array of ``value`` (an array, or a CPU tensor from callers that still hold one)."""
    return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)


class GarmentDetector:
    """A loaded detector that turns decoded photos into :class:`Garments` (boxes, masks, types, scores).

    ``backend``: ``auto`` (ONNX Runtime when ``<weights>.onnx`` sits next to the weights, else
    PyTorch), ``onnx`` or ``torch``; ``weights`` may also name the ``.onnx`` export itself.
    ``model`` is the PyTorch network with the torch backend, ``None`` with ONNX.
    """

    def __init__(self, weights: str | Path | None = None, *, settings: DetectSettings = DetectSettings(),
                 threads: int | None = None, backend: str = "auto") -> None:
        from fashionlens.models.registry import DEFAULT_DETECTOR, default_weights_path
        from fashionlens.runtime.backends import onnx_path_for, resolve_backend

        path = Path(weights) if weights is not None else default_weights_path(DEFAULT_DETECTOR)
        if not path.is_file() and not onnx_path_for(path).is_file():  # said before any runtime is imported
            raise FileNotFoundError(f"detector weights not found: {path} (expected a .pt file or its .onnx export)")
        self.settings = settings
        self.path = path
        self.model: Any = None
        self.run: Callable[[np.ndarray, DetectionLimits], dict[str, np.ndarray]]
        runner: Any = None
        if resolve_backend(backend, path, export="--detector") == "onnx":
            from fashionlens.runtime.detector_onnx import (
                OnnxDetector,
                StaleDetectorExport,
            )

            try:
                runner = OnnxDetector(onnx_path_for(path), threads=threads)
            except StaleDetectorExport as exc:
                if backend == "onnx" or path.suffix == ".onnx":
                    raise
                log.warning("%s; using PyTorch", exc)
        if runner is None:
            if path.suffix == ".onnx":
                raise ValueError(f"{path}: the torch backend needs the detector's .pt weights, not its ONNX export")
            from fashionlens.runtime.detector_torch import TorchDetector

            runner = TorchDetector(path, threads=threads)
            self.model = runner.model
            if not runner.per_call_limits:  # other architectures take their limits once, here
                runner.fix_limits(self.limits(settings))
        self.run = runner
        self.meta = runner.meta
        self.backend: str = runner.name
        self._per_call_limits = getattr(runner, "per_call_limits", True)
        self.class_names = list(self.meta.class_names)

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.meta.name, "version": self.meta.version, "backend": self.backend}

    def thresholds(self, settings: DetectSettings | None = None) -> tuple[float, float]:
        """``(score_thresh, nms_thresh)`` of ``settings`` (default: this detector's), the values stored
        with the weights standing in for ``None``."""
        settings = settings or self.settings
        chosen = self.meta.extra.get("defaults") or {}
        score = settings.score_thresh if settings.score_thresh is not None else chosen.get("score_thresh", 0.3)
        nms = settings.nms_thresh if settings.nms_thresh is not None else chosen.get("nms_thresh", 0.6)
        return float(score), float(nms)

    @property
    def score_thresh(self) -> float:
        return self.thresholds()[0]

    @property
    def nms_thresh(self) -> float:
        return self.thresholds()[1]

    def limits(self, settings: DetectSettings | None = None) -> DetectionLimits:
        """The network's post-processing limits for ``settings``: with rules it keeps candidates down to
        0.05 so the rules see them and the threshold applies after the rules; without, the network
        applies the threshold (no masks for discarded boxes)."""
        settings = settings or self.settings
        score, nms = self.thresholds(settings)
        return DetectionLimits(min(0.05, score) if settings.rules else score, nms, settings.max_detections)

    def _check_settings(self, settings: DetectSettings | None) -> None:
        if settings is not None and settings != self.settings and not self._per_call_limits:
            raise ValueError(f"per-call detection settings need an fcos-seg detector; this one is {self.meta.arch!r} "
                             "(build a GarmentDetector with these settings instead)")

    def _network(self, rgb: np.ndarray, limits: DetectionLimits) -> dict[str, np.ndarray]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}")
        h, w = rgb.shape[:2]
        if max(h, w) > MAX_ASPECT * min(h, w):
            return self._network_letterboxed(rgb, limits)
        return self.run(rgb, limits)

    def _network_letterboxed(self, rgb: np.ndarray, limits: DetectionLimits) -> dict[str, np.ndarray]:
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
        out = self.run(canvas, limits)
        boxes = np.array(out["boxes"], dtype=np.float32, copy=True).reshape(-1, 4)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, sw) / np.float32(scale)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, sh) / np.float32(scale)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # boxes wholly in the padding go
        result = {k: v[keep] for k, v in out.items() if k != "boxes"}
        result["boxes"] = boxes[keep]
        masks = result.get("masks")
        if masks is not None:
            crop = masks[:, 0, :sh, :sw].astype(np.float32)
            result["masks"] = (np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in crop])
                               if len(crop) else np.zeros((0, h, w), np.float32))[:, None]
        return result

    def _as_garments(self, out: Mapping[str, Any], settings: DetectSettings) -> Garments:
        masks = out.get("masks")
        return Garments(
            xyxy=_numpy(out["boxes"]), object_type=[self.class_names[int(i)] for i in _numpy(out["labels"])],
            confidence=np.clip(_numpy(out["scores"]), 0, 1),
            mask=(_numpy(masks)[:, 0] >= settings.mask_thresh) if masks is not None else None,
        )

    def candidates(self, rgb: np.ndarray, limits: DetectionLimits | None = None,
                   settings: DetectSettings | None = None) -> Garments:
        """The network's detections for an ``H×W×3`` uint8 image, in its pixels, before rules and
        the run-time threshold (``limits``, default those of ``settings``, still apply)."""
        self._check_settings(settings)
        settings = settings or self.settings
        return self._as_garments(self._network(rgb, limits or self.limits(settings)), settings)

    def to_garments(self, out: Mapping[str, Any], size: tuple[int, int],
                    settings: DetectSettings | None = None) -> Garments:
        """Network output (``boxes``, ``labels``, ``scores``, optional ``masks``: arrays) → garments after
        the rules and the run-time threshold."""
        settings = settings or self.settings
        score, nms = self.thresholds(settings)
        garments = apply_rules(self._as_garments(out, settings), settings.rules, size=size, nms_thresh=nms)
        return garments.select(garments.confidence >= score)

    def detect_rgb(self, rgb: np.ndarray, settings: DetectSettings | None = None) -> Garments:
        """Garments in an ``H×W×3`` uint8 image, in its pixels, after rules and threshold."""
        self._check_settings(settings)
        return self.to_garments(self._network(rgb, self.limits(settings)), rgb.shape[:2], settings)

    def detect(self, image: DecodedImage, settings: DetectSettings | None = None) -> Garments:
        """Garments of a decoded photo, boxes and masks in its full-resolution pixels; ``settings``
        (thresholds, rules) for this call, default this detector's."""
        garments = self.detect_rgb(image.rgb, settings)
        if image.scale == 1.0:
            return garments
        mask = garments.mask
        if mask is not None:
            mask = np.stack([cv2.resize(m.astype(np.uint8), (image.width, image.height),
                                        interpolation=cv2.INTER_NEAREST).astype(bool) for m in mask]
                            ) if len(mask) else np.zeros((0, image.height, image.width), bool)
        # float32 division, as the boxes always were: the JSON bbox rounds the same as before
        return Garments(xyxy=(garments.xyxy.astype(np.float32) / np.float32(image.scale)),
                        object_type=garments.object_type, confidence=garments.confidence, mask=mask,
                        data=garments.data)

    def detect_many(self, images: Sequence[DecodedImage], settings: DetectSettings | None = None) -> list[Garments]:
        return [self.detect(im, settings) for im in images]
