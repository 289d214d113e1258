"""Export an FCOS-seg detector to ONNX (needs torch: the ``[train]`` extra); run it with
:class:`fashionlens.runtime.detector_onnx.OnnxDetector`, which needs neither torch nor this module.

Two graphs, written next to the weights:

* ``<weights>.onnx`` — the network: the normalised, padded image batch ``images`` (height and width
  dynamic) → the FCOS head's raw ``cls_logits``, ``bbox_regression``, ``bbox_ctrness``, the semantic
  mask probabilities ``seg`` and, for a detector with a RoI mask head, the three backbone pyramid
  levels ``p3``, ``p4``, ``p5`` the head pools from. Its metadata holds the detector's
  :class:`~fashionlens.models.detector_weights.DetectorMeta` (``fashionlens_meta``: class names,
  builder kwargs, stored default thresholds) and what the runner needs to pre- and post-process
  (``fashionlens_detector``: input size, normalisation, anchors, top-k, the mask graph's file name);
* ``<weights>.roi-mask.onnx`` (only with a RoI mask head) — the head: ``p3``, ``p4``, ``p5``, the
  kept boxes ``rois`` ``(N, 4)`` already in the pixels of each box's own pyramid level and
  ``levels`` ``(N, 3)`` (one-hot: which level each box pools from, chosen as torchvision's
  ``LevelMapper`` does) → RoIAlign (14×14, sampling ratio 2, ``aligned=False``) on every level, the
  box's own level kept, → ``MaskRCNNHeads`` → ``MaskRCNNPredictor`` → sigmoid: ``mask_probs``
  ``(N, K, 28, 28)``.

Weights are stored as float16 where that is exact (the ``.pt`` weights are float16 already; tensors
folded at export, such as frozen batch-norm scales, stay float32) and computed in float32
(:func:`fashionlens.runtime.onnx_fp16.store_weights_fp16`), so the export equals the PyTorch model
up to floating-point noise (``tests/runtime/test_detector_numpy_parity.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.detector_weights import DetectorMeta, load_detector
from fashionlens.models.fcos_seg import FCOSSeg, RoIMaskHead
from fashionlens.runtime.detector_onnx import (
    CONFIG_KEY,
    DETECTOR_ONNX_FORMAT,
    FEATURE_NAMES,
    META_KEY,
    OUTPUT_NAMES,
    detector_onnx_path,
    roi_mask_onnx_path,
)
from fashionlens.runtime.detector_postprocess import DetectorConfig

log = logging.getLogger(__name__)

__all__ = ["detector_config", "export_detector_onnx"]


class _DetectorNetwork(nn.Module):
    def __init__(self, model: FCOSSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        features = self.model.backbone(images)
        head = self.model.head(list(features.values()))
        seg = self.model.seg_head(features["0"]).softmax(1)
        out = (head["cls_logits"], head["bbox_regression"], head["bbox_ctrness"], seg)
        if self.model.roi_mask is not None:  # the RoI mask head's own graph pools from these levels
            out += (features["0"], features["1"], features["2"])
        return out


class _RoIMaskNetwork(nn.Module):
    """RoIAlign on each level for every box, the box's own level kept (``levels`` one-hot: exact,
    since ``x·1 + y·0 = x``), then the mask head and a sigmoid."""

    def __init__(self, head: RoIMaskHead) -> None:
        super().__init__()
        self.head = head
        self.output_size = head.pool.output_size
        self.sampling_ratio = head.pool.sampling_ratio

    def forward(self, p3: Tensor, p4: Tensor, p5: Tensor, rois: Tensor, levels: Tensor) -> Tensor:
        from torchvision.ops import roi_align

        with_batch = torch.cat([torch.zeros_like(rois[:, :1]), rois], dim=1)
        pooled = None
        for k, feature in enumerate((p3, p4, p5)):
            part = roi_align(feature, with_batch, output_size=self.output_size, spatial_scale=1.0,
                             sampling_ratio=self.sampling_ratio, aligned=False) * levels[:, k, None, None, None]
            pooled = part if pooled is None else pooled + part
        return self.head.predictor(self.head.head(pooled)).sigmoid()


def detector_config(model: FCOSSeg) -> DetectorConfig:
    """The pre- and post-processing settings of ``model`` that the ONNX runner reproduces; ``ValueError``
    for a configuration it does not (several anchors per location, another box coder, another pooler)."""
    gen = model.anchor_generator
    if any(len(s) != 1 for s in gen.sizes) or any(tuple(a) != (1.0,) for a in gen.aspect_ratios):
        raise ValueError(f"the ONNX runner supports one square anchor per location; got sizes {gen.sizes}, "
                         f"aspect ratios {gen.aspect_ratios}")
    if not model.box_coder.normalize_by_size:
        raise ValueError("the ONNX runner supports FCOS's size-normalised box coder only")
    transform = model.transform
    if transform.fixed_size is not None:
        raise ValueError("the ONNX runner supports min_size/max_size resizing, not fixed_size")
    if model.roi_mask is not None:
        pool = model.roi_mask.pool
        if list(pool.featmap_names) != ["0", "1", "2"]:
            raise ValueError(f"the ONNX runner pools from levels 0, 1, 2; this head uses {pool.featmap_names}")
    return DetectorConfig(
        min_size=int(transform.min_size[-1]), max_size=int(transform.max_size),
        image_mean=tuple(float(v) for v in transform.image_mean), image_std=tuple(float(v) for v in transform.image_std),
        anchor_sizes=tuple(int(s[0]) for s in gen.sizes), topk_candidates=int(model.topk_candidates),
        mask_size_limit=int(model.mask_size_limit), roi_masks=model.roi_mask is not None,
        size_divisible=int(transform.size_divisible),
        roi_canonical_scale=int(model.roi_mask.pool.canonical_scale) if model.roi_mask is not None else 224,
        roi_canonical_level=int(model.roi_mask.pool.canonical_level) if model.roi_mask is not None else 4)


def _store_fp16_exact(proto: Any) -> Any:
    """:func:`store_weights_fp16` for the initializers whose values float16 holds exactly (the trained
    weights); larger float32 initializers that it would round (constants folded at export) stay float32."""
    from onnx import TensorProto, numpy_helper

    from fashionlens.runtime.onnx_fp16 import store_weights_fp16

    smallest = 1024
    for init in proto.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(init)
            if values.size >= smallest and not np.array_equal(values.astype(np.float16).astype(np.float32), values):
                smallest = values.size + 1  # keep every initializer this size or smaller in float32
    return store_weights_fp16(proto, min_elements=smallest)


def _export(module: nn.Module, args: tuple[Tensor, ...], output: Path, *, input_names: list[str],
            output_names: list[str], dynamic: dict[str, dict[int, str]], opset: int, fp16: bool,
            metadata: dict[str, str]) -> None:
    def write(tmp: Path) -> None:
        import onnx

        torch.onnx.export(module.eval(), args, str(tmp), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        if fp16:
            _store_fp16_exact(proto)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))

    atomic_write(output, write)


def export_detector_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                         opset: int = 17, fp16: bool = True) -> Path:
    """Write the ONNX graphs of the detector ``weights`` (default: the shipped detector) — the network
    at ``output`` (default: next to the weights, ``.onnx``) and, with a RoI mask head, the head next to
    it (``.roi-mask.onnx``); return the network's path. ``fp16``: store weights as float16 where exact."""
    from fashionlens.models.registry import DEFAULT_DETECTOR, default_weights_path

    weights = Path(weights) if weights else default_weights_path(DEFAULT_DETECTOR)
    output = Path(output) if output else detector_onnx_path(weights)
    model, meta = load_detector(weights)
    if not isinstance(model, FCOSSeg):
        raise ValueError(f"{weights}: only fcos-seg detectors export to ONNX, this one is {meta.arch!r}")
    config = detector_config(model)
    roi_file = roi_mask_onnx_path(output) if model.roi_mask is not None else None
    if roi_file is not None:
        assert model.roi_mask is not None
        channels = model.backbone.out_channels
        feats = tuple(torch.zeros(1, channels, s, s * 3 // 2) for s in (24, 12, 6))
        rois = torch.tensor([[4.0, 4.0, 20.0, 30.0], [1.0, 2.0, 9.0, 8.0], [0.5, 0.5, 4.0, 5.0]])
        levels = torch.eye(3)
        _export(_RoIMaskNetwork(model.roi_mask), (*feats, rois, levels), roi_file,
                input_names=[*FEATURE_NAMES, "rois", "levels"], output_names=["mask_probs"],
                dynamic={**{n: {2: f"{n}_h", 3: f"{n}_w"} for n in FEATURE_NAMES}, "rois": {0: "boxes"},
                         "levels": {0: "boxes"}, "mask_probs": {0: "boxes"}},
                opset=opset, fp16=fp16, metadata={})
    size = config.max_size
    dummy = torch.zeros(1, 3, size * 2 // 3 // 32 * 32, size)
    names = list(OUTPUT_NAMES) + (list(FEATURE_NAMES) if model.roi_mask is not None else [])
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}, "seg": {0: "batch", 2: "seg_h", 3: "seg_w"},
               **{n: {0: "batch", 1: "locations"} for n in OUTPUT_NAMES[:3]},
               **{n: {0: "batch", 2: f"{n}_h", 3: f"{n}_w"} for n in FEATURE_NAMES}}
    dynamic = {k: v for k, v in dynamic.items() if k in names or k == "images"}
    info = {"format": DETECTOR_ONNX_FORMAT, "config": config.to_dict(),
            "roi_mask_file": roi_file.name if roi_file is not None else None}
    _export(_DetectorNetwork(model), (dummy,), output, input_names=["images"], output_names=names, dynamic=dynamic,
            opset=opset, fp16=fp16, metadata={META_KEY: json.dumps(_meta_dict(meta)), CONFIG_KEY: json.dumps(info)})
    log.info("exported detector %s → %s%s", weights, output, f" and {roi_file}" if roi_file else "")
    return output


def _meta_dict(meta: DetectorMeta) -> dict[str, Any]:
    """The meta as JSON-safe values (tuples become lists)."""
    return json.loads(json.dumps(meta.to_dict()))
