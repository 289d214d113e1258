"""Export the garment classifier to ONNX (one graph: image batch in, one probability tensor per head
out, plus the L2-normalised garment embedding as the output ``embedding``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.classifier import (
    EMBEDDING_OUTPUT,
    GarmentClassifier,
    load_classifier,
)
from fashionlens.runtime.backends import onnx_path_for

log = logging.getLogger(__name__)


class _ProbabilityModel(nn.Module):
    """Logits → probabilities (softmax / sigmoid per head), so every backend returns the same thing;
    the garment embedding is the last output."""

    def __init__(self, model: GarmentClassifier) -> None:
        super().__init__()
        self.model = model
        self.kinds = [h.kind for h in model.meta.heads]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs, embedding = self.model.forward_with_embedding(images)
        probs = tuple(o.softmax(-1) if k == "single" else o.sigmoid() for o, k in zip(outs, self.kinds))
        return (*probs, embedding)


def export_classifier_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                           opset: int = 17) -> Path:
    """Write ``output`` (default: next to the weights, ``.onnx``) with the meta as ONNX metadata."""
    from fashionlens.models.registry import default_weights_path

    weights = Path(weights) if weights else default_weights_path()
    output = Path(output) if output else onnx_path_for(weights)
    model = load_classifier(weights)
    wrapped = _ProbabilityModel(model).eval()
    size = model.meta.input_size
    dummy = torch.zeros(2, 3, size, size)
    names = [h.name for h in model.meta.heads] + [EMBEDDING_OUTPUT]
    def write(tmp: Path) -> None:
        import onnx

        torch.onnx.export(wrapped, (dummy,), str(tmp), input_names=["images"], output_names=names,
                          dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                          opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "fashionlens_meta", json.dumps(model.meta.to_dict())
        onnx.save(proto, str(tmp))

    atomic_write(output, write)
    log.info("exported %s → %s", weights, output)
    return output
