"""The garment detector in PyTorch (the ``[train]`` extra): the reference the ONNX runtime path is
checked against, and the runtime for detectors without an export (Mask R-CNN, plain FCOS, fresh
training runs). Same call as :class:`fashionlens.runtime.detector_onnx.OnnxDetector`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.models.detector_weights import load_detector
from fashionlens.models.fcos_seg import FCOSSeg

__all__ = ["TorchDetector"]


class TorchDetector:
    """``detector(rgb, limits)`` → ``boxes``, ``scores``, ``labels``, ``masks`` as NumPy arrays (see
    :class:`~fashionlens.runtime.detector_onnx.OnnxDetector`). ``model`` is the network in eval mode;
    ``per_call_limits`` is false for architectures that take their limits once (:meth:`fix_limits`)."""

    name = "torch"

    def __init__(self, weights: str | Path, *, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model: Any
        self.model, self.meta = load_detector(weights)
        self.per_call_limits = isinstance(self.model, FCOSSeg)

    def fix_limits(self, limits: DetectionLimits) -> None:
        """Write ``limits`` onto a network that has no per-call limits (torchvision's FCOS, Mask R-CNN)."""
        self.model.score_thresh, self.model.nms_thresh = limits.score_thresh, limits.nms_thresh
        self.model.detections_per_img = limits.detections_per_img

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray, limits: DetectionLimits) -> dict[str, np.ndarray]:
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        [out] = self.model([image], limits=limits) if self.per_call_limits else self.model([image])
        return {k: v.numpy() for k, v in out.items()}
