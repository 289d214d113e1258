"""The garment detector on ONNX Runtime and NumPy alone: no torch, no torchvision, no ``.pt`` file.

:class:`OnnxDetector` runs an export written by :func:`fashionlens.runtime.detector_export.export_detector_onnx`
(``fashionlens export onnx --detector``): it reads the detector's meta (class names, stored default
thresholds) and its pre/post-processing settings from the export's metadata, resizes and normalises
the photo, runs the network graph, decodes FCOS boxes (top-k, batched NMS), runs the RoI mask head's
graph on the kept boxes and pastes the masks into the photo — every step outside the graphs in
NumPy (:mod:`fashionlens.runtime.detector_postprocess`), following torchvision's code, so the
detections equal the PyTorch path's up to floating-point noise (``tests/runtime``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.detection_limits import DetectionLimits
from fashionlens.models.detector_weights import DetectorMeta
from fashionlens.runtime.detector_postprocess import (
    DetectorConfig,
    fcos_detections,
    paste_masks,
    resize_boxes,
    resize_normalise,
    roi_levels,
    semantic_instance_masks,
)

log = logging.getLogger(__name__)

__all__ = ["CONFIG_KEY", "DETECTOR_ONNX_FORMAT", "FEATURE_NAMES", "META_KEY", "OUTPUT_NAMES", "OnnxDetector",
           "StaleDetectorExport", "detector_onnx_path", "roi_mask_onnx_path"]

#: the network graph's outputs (raw FCOS head outputs, semantic mask probabilities)
OUTPUT_NAMES = ("cls_logits", "bbox_regression", "bbox_ctrness", "seg")
#: the pyramid levels the network graph also returns for a RoI mask head
FEATURE_NAMES = ("p3", "p4", "p5")
#: ONNX metadata keys: the detector's meta (as in the ``.pt``), and the runner's settings
META_KEY = "fashionlens_meta"
CONFIG_KEY = "fashionlens_detector"
DETECTOR_ONNX_FORMAT = "fashionlens/detector-onnx/v1"


class StaleDetectorExport(ValueError):
    """An ONNX file without the metadata this runner needs (written before it existed): re-export it."""


def detector_onnx_path(weights: str | Path) -> Path:
    """Where the export of detector weights lives: next to them, ``.onnx``."""
    return Path(weights).with_suffix(".onnx")


def roi_mask_onnx_path(onnx_path: str | Path) -> Path:
    """Where the RoI mask head's graph of the network export ``onnx_path`` lives: ``<name>.roi-mask.onnx``."""
    path = Path(onnx_path)
    return path.with_name(f"{path.stem}.roi-mask.onnx")


def _session(path: Path, threads: int | None) -> Any:
    from fashionlens.runtime.backends import onnx_session

    return onnx_session(path, threads=threads)


class OnnxDetector:
    """An exported detector: ``detector(rgb, limits)`` → ``boxes`` ``(N, 4)`` float32 (the photo's
    pixels), ``scores`` ``(N,)`` float32, ``labels`` ``(N,)`` int64 (0 is background, never
    reported) and ``masks`` ``(N, 1, H, W)`` float32 probabilities, best first.

    ``meta`` is the detector's :class:`~fashionlens.models.detector_weights.DetectorMeta`; one
    session per graph, created here (``threads``: ONNX Runtime's intra-op threads, default all cores).
    """

    name = "onnx"

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"no detector export at {path}")
        self.path = path
        self.session = _session(path, threads)
        custom = self.session.get_modelmeta().custom_metadata_map
        rerun = f"fashionlens export onnx --detector {path.with_suffix('.pt')}"
        if CONFIG_KEY not in custom or META_KEY not in custom:
            raise StaleDetectorExport(f"{path}: an ONNX detector export without fashionlens metadata (written by an "
                                      f"older version); re-export it: {rerun}")
        info = json.loads(custom[CONFIG_KEY])
        if info.get("format") != DETECTOR_ONNX_FORMAT:
            raise StaleDetectorExport(f"{path}: expected a {DETECTOR_ONNX_FORMAT} export, got {info.get('format')!r}; "
                                      f"re-export it: {rerun}")
        self.meta = DetectorMeta.from_dict(json.loads(custom[META_KEY]))
        self.config = DetectorConfig.from_dict(info["config"])
        self.roi_session = None
        if self.config.roi_masks:
            roi_path = path.with_name(info["roi_mask_file"])
            if not roi_path.is_file():
                raise FileNotFoundError(f"{path}: its RoI mask head {roi_path} is missing; re-export it: {rerun}")
            self.roi_session = _session(roi_path, threads)
        self._outputs = list(OUTPUT_NAMES) + (list(FEATURE_NAMES) if self.config.roi_masks else [])

    def __call__(self, rgb: np.ndarray, limits: DetectionLimits) -> dict[str, np.ndarray]:
        images, resized = resize_normalise(rgb, self.config)
        cls, box, ctr, seg, *features = self.session.run(self._outputs, {"images": images})
        padded = (int(images.shape[2]), int(images.shape[3]))
        det = fcos_detections(cls[0], box[0], ctr[0], padded, resized, self.config, score_thresh=limits.score_thresh,
                              nms_thresh=limits.nms_thresh, detections_per_img=limits.detections_per_img)
        original = (int(rgb.shape[0]), int(rgb.shape[1]))
        if self.roi_session is not None:
            probs = self._roi_mask_probs(features, det["boxes"], det["labels"], resized)
            det["boxes"] = resize_boxes(det["boxes"], resized, original)
            det["masks"] = paste_masks(probs, det["boxes"], original)
            return det
        det["boxes"] = resize_boxes(det["boxes"], resized, original)
        stride = images.shape[-1] / seg.shape[-1]
        valid = seg[0, :, : max(1, round(resized[0] / stride)), : max(1, round(resized[1] / stride))]
        det["masks"] = semantic_instance_masks(valid, det["boxes"], det["labels"], original,
                                               self.config.mask_size_limit)
        return det

    def _roi_mask_probs(self, features: list[np.ndarray], boxes: np.ndarray, labels: np.ndarray,
                        resized: tuple[int, int]) -> np.ndarray:
        """``(N, 28, 28)`` mask probabilities of each box's own label (``maskrcnn_inference``)."""
        if not len(boxes):
            return np.zeros((0, 28, 28), np.float32)
        assert self.roi_session is not None
        scales, levels = roi_levels(boxes, [f.shape[-2:] for f in features], resized, self.config)
        rois = (boxes * np.asarray(scales, np.float32)[levels][:, None]).astype(np.float32)
        onehot = np.eye(len(features), dtype=np.float32)[levels]
        feeds = {name: f for name, f in zip(FEATURE_NAMES, features)}
        feeds.update(rois=rois, levels=onehot)
        [probs] = self.roi_session.run(["mask_probs"], feeds)
        return probs[np.arange(len(boxes)), labels]
