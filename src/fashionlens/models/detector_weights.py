"""Save and load trained detectors: tensors (fp16 by default) + the metadata that rebuilds them.

:class:`DetectorMeta` is torch-free (the ONNX runtime reads it from an export's metadata); saving
and loading ``.pt`` weights import torch when called (the ``[train]`` extra)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashionlens.models.weights_io import load_torch_weights, save_torch_weights

if TYPE_CHECKING:
    from torch import nn

DETECTOR_WEIGHTS_FORMAT = "fashionlens/detector-weights/v1"


@dataclass
class DetectorMeta:
    """Everything needed to rebuild a detector besides its tensors.

    ``builder_kwargs`` go to the registered builder (:func:`create_detector`), e.g. ``min_size``,
    ``max_size``, ``fpn_channels``; ``score_thresh``/``nms_thresh`` are the run-time defaults.
    """

    name: str
    version: str
    arch: str
    class_names: tuple[str, ...]
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorMeta:
        d = dict(d)
        d["class_names"] = tuple(d["class_names"])
        return cls(**d)


def save_detector(model: nn.Module, meta: DetectorMeta, path: str | Path, *, half: bool = True) -> None:
    """Write ``{format, meta, state_dict}`` atomically (temporary name, then rename)."""
    save_torch_weights(path, fmt=DETECTOR_WEIGHTS_FORMAT, meta=meta.to_dict(), state_dict=model.state_dict(), half=half)


def load_detector(path: str | Path, *, map_location: str = "cpu", **overrides: Any) -> tuple[nn.Module, DetectorMeta]:
    """Rebuild a saved detector in eval mode (float32); ``overrides`` replace builder kwargs
    (e.g. ``score_thresh=0.3``)."""
    from fashionlens.models.detector import create_detector

    raw_meta, state = load_torch_weights(path, fmt=DETECTOR_WEIGHTS_FORMAT)
    meta = DetectorMeta.from_dict(raw_meta)
    kwargs = {**meta.builder_kwargs, **overrides, "pretrained_backbone": False}
    model = create_detector(meta.arch, num_classes=len(meta.class_names) - 1, **kwargs)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    return model, meta


def set_detector_defaults(path: str | Path, defaults: dict[str, Any]) -> None:
    """Store run-time defaults (``score_thresh``, ``nms_thresh``, ``rules`` and where they were
    measured) in a saved detector's metadata, rewriting the file atomically."""
    meta, state = load_torch_weights(path, fmt=DETECTOR_WEIGHTS_FORMAT)
    meta.setdefault("extra", {})["defaults"] = defaults
    save_torch_weights(path, fmt=DETECTOR_WEIGHTS_FORMAT, meta=meta, state_dict=state, half=False)
