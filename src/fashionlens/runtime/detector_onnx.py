"""The detector's network in ONNX Runtime; resizing and post-processing stay in PyTorch.

The exported graph takes the normalised, padded image batch (what the detector's own
``GeneralizedRCNNTransform`` produces; height and width are dynamic axes) and returns the FCOS
head's raw outputs (``cls_logits``, ``bbox_regression``, ``bbox_ctrness``), the semantic mask
probabilities and, for a detector with a RoI mask head, the three backbone pyramid levels the
head pools from (the head itself — RoIAlign and a few small convs on the kept boxes — runs in
PyTorch). Anchors, box decoding, NMS and instance masks then run through the very same
:meth:`~fashionlens.models.fcos_seg.FCOSSeg.detect_from_outputs` as the PyTorch path, so both
backends differ only by floating-point noise in the network (``tests/runtime``).

Only :class:`~fashionlens.models.fcos_seg.FCOSSeg` detectors are exported; Mask R-CNN's RoI heads
do not export cleanly and stay PyTorch-only.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.detector_weights import load_detector
from fashionlens.models.fcos_seg import DetectionLimits, FCOSSeg

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("cls_logits", "bbox_regression", "bbox_ctrness", "seg")
FEATURE_NAMES = ("p3", "p4", "p5")


class _DetectorNetwork(nn.Module):
    def __init__(self, model: FCOSSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        features = self.model.backbone(images)
        head = self.model.head(list(features.values()))
        seg = self.model.seg_head(features["0"]).softmax(1)
        out = (head["cls_logits"], head["bbox_regression"], head["bbox_ctrness"], seg)
        if self.model.roi_mask is not None:  # the RoI mask head runs in PyTorch on these pyramid levels
            out += (features["0"], features["1"], features["2"])
        return out


def detector_onnx_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".onnx")


def export_detector_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                         opset: int = 17) -> Path:
    """Write the detector network of ``weights`` (default: the shipped detector) to ONNX."""
    from fashionlens.models.registry import DEFAULT_DETECTOR, default_weights_path

    weights = Path(weights) if weights else default_weights_path(DEFAULT_DETECTOR)
    output = Path(output) if output else detector_onnx_path(weights)
    model, meta = load_detector(weights)
    if not isinstance(model, FCOSSeg):
        raise ValueError(f"{weights}: only fcos-seg detectors export to ONNX, this one is {meta.arch!r}")
    size = int(meta.builder_kwargs.get("max_size", 384))
    dummy = torch.zeros(1, 3, size * 2 // 3 // 32 * 32, size)
    names = list(OUTPUT_NAMES) + (list(FEATURE_NAMES) if model.roi_mask is not None else [])
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}, "seg": {0: "batch", 2: "seg_h", 3: "seg_w"},
               **{n: {0: "batch", 1: "locations"} for n in OUTPUT_NAMES[:3]},
               **{n: {0: "batch", 2: f"{n}_h", 3: f"{n}_w"} for n in FEATURE_NAMES}}
    dynamic = {k: v for k, v in dynamic.items() if k in names or k == "images"}
    atomic_write(output, lambda tmp: torch.onnx.export(
        _DetectorNetwork(model).eval(), (dummy,), str(tmp), input_names=["images"], output_names=names,
        dynamic_axes=dynamic, opset_version=opset, dynamo=False))
    log.info("exported detector %s → %s", weights, output)
    return output


class OnnxDetectorRunner:
    """Callable like the PyTorch detector in eval mode: ``runner([image]) → [detections]``.

    Post-processing limits (``score_thresh``, ``nms_thresh``, ``detections_per_img``) come with each
    call (:class:`~fashionlens.models.fcos_seg.DetectionLimits`), else the model's own.
    """

    def __init__(self, model: FCOSSeg, onnx_path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        from fashionlens.runtime.backends import default_threads

        self.model = model
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    @torch.no_grad()
    def __call__(self, images: list[Tensor], limits: DetectionLimits | None = None) -> list[dict[str, Tensor]]:
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        image_list, _ = self.model.transform(images)
        with_features = self.model.roi_mask is not None
        names = list(OUTPUT_NAMES) + (list(FEATURE_NAMES) if with_features else [])
        cls, box, ctr, seg, *levels_out = self.session.run(names, {"images": image_list.tensors.numpy()})
        features = (OrderedDict((str(i), torch.from_numpy(f)) for i, f in enumerate(levels_out))
                    if with_features else None)
        head = {"cls_logits": torch.from_numpy(cls), "bbox_regression": torch.from_numpy(box),
                "bbox_ctrness": torch.from_numpy(ctr)}
        levels = self.model.level_sizes(*image_list.tensors.shape[-2:])
        if sum(h * w for h, w in levels) != cls.shape[1]:
            raise RuntimeError(f"ONNX detector returned {cls.shape[1]} locations, expected "
                               f"{sum(h * w for h, w in levels)} for input {tuple(image_list.tensors.shape)}")
        return self.model.detect_from_outputs(image_list, head, levels, torch.from_numpy(np.asarray(seg)),
                                              original_sizes, features, limits=limits)
