"""Export a damage head to ONNX: probabilities at the input size, the head's meta in the metadata.

Export only (``fashionlens export onnx --damage``): this module imports torch and ``onnx`` (the
``[train]`` extra). The run time is :class:`fashionlens.runtime.damage_onnx.OnnxDamageRunner`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.damage import DAMAGE_WEIGHTS_FORMAT, damage_probabilities, load_damage_model
from fashionlens.runtime.backends import onnx_path_for
from fashionlens.runtime.onnx_export import finish_onnx_export

__all__ = ["export_damage_onnx"]

log = logging.getLogger(__name__)


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return damage_probabilities(self.model, images)


def export_damage_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                       opset: int = 17, fp16: bool = True) -> Path:
    """Write the damage head of ``weights`` (default: the shipped one) to ONNX, atomically, with its
    :class:`~fashionlens.models.damage_meta.DamageMeta` under ``fashionlens_meta``.

    ``fp16`` (the default): weights stored as float16 — the fp16 ``.pt`` values exactly, constant
    folding being left to ONNX Runtime — and computed in float32; ``fp16=False``: float32 weights.
    """
    from fashionlens.models.registry import DEFAULT_DAMAGE_MODEL, default_weights_path

    weights = Path(weights) if weights else default_weights_path(DEFAULT_DAMAGE_MODEL)
    output = Path(output) if output else onnx_path_for(weights)
    model, meta = load_damage_model(weights)
    side = meta.input_side
    dummy = torch.zeros(1, 3, side, side * 9 // 16 // 32 * 32)

    def write(tmp: Path) -> None:
        torch.onnx.export(_Probabilities(model).eval(), (dummy,), str(tmp), input_names=["images"],
                          output_names=["probs"], opset_version=opset, dynamo=False, do_constant_folding=not fp16,
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "probs": {0: "batch", 2: "height", 3: "width"}})
        finish_onnx_export(tmp, meta.to_dict(), fmt=DAMAGE_WEIGHTS_FORMAT, fp16=fp16)

    atomic_write(output, write)
    log.info("exported damage head %s → %s", weights, output)
    return output
