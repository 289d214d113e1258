"""The damage head in ONNX Runtime: export (probabilities at the input size) and a runner.

The exported graph takes ``images`` ``(B, 3, H, W)`` (H, W multiples of 32; dynamic) and returns
``probs`` ``(B, K, H, W)`` — softmax and upsampling included — so the runner is a session call.
:class:`fashionlens.grading.damage.DamageFinder` uses it when ``<weights>.onnx`` sits next to the
weights (``backend="auto"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.damage import damage_probabilities, load_damage_model
from fashionlens.runtime.backends import onnx_path_for

log = logging.getLogger(__name__)


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return damage_probabilities(self.model, images)


#: where the export of a damage head's weights lives: next to them, ``.onnx`` (as for every model)
damage_onnx_path = onnx_path_for


def export_damage_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                       opset: int = 17) -> Path:
    """Write the damage head of ``weights`` (default: the shipped one) to ONNX, atomically."""
    from fashionlens.models.registry import DEFAULT_DAMAGE_MODEL, default_weights_path

    weights = Path(weights) if weights else default_weights_path(DEFAULT_DAMAGE_MODEL)
    output = Path(output) if output else damage_onnx_path(weights)
    model, meta = load_damage_model(weights)
    side = meta.input_side
    dummy = torch.zeros(1, 3, side, side * 9 // 16 // 32 * 32)
    atomic_write(output, lambda tmp: torch.onnx.export(
        _Probabilities(model).eval(), (dummy,), str(tmp), input_names=["images"], output_names=["probs"],
        opset_version=opset, dynamo=False, dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                                         "probs": {0: "batch", 2: "height", 3: "width"}}))
    log.info("exported damage head %s → %s", weights, output)
    return output


class OnnxDamageRunner:
    """``runner(x)``: ``(B, 3, H, W)`` float32 array → ``(B, K, H, W)`` probabilities."""

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        from fashionlens.runtime.backends import default_threads

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["probs"], {"images": np.ascontiguousarray(x, dtype=np.float32)})[0]
