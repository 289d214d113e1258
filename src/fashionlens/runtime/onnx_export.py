"""Export the garment classifier to ONNX (one graph: image batch in, one probability tensor per head
out, plus the L2-normalised garment embedding as the output ``embedding``).

Export only (``fashionlens export onnx``): this module imports torch and ``onnx`` (the ``[train]``
extra); the run time reads the files with :class:`fashionlens.runtime.backends.OnnxBackend`.
:func:`finish_onnx_export` is the last step of every fashionlens export: the model's meta into the
custom metadata (:data:`~fashionlens.runtime.backends.ONNX_META_KEY`, with the weights' format header
under :data:`~fashionlens.runtime.backends.ONNX_FORMAT_KEY`), and with ``fp16`` the large
weights stored as float16 (:func:`fashionlens.runtime.onnx_fp16.store_weights_fp16`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fashionlens.io.atomic import atomic_write
from fashionlens.models.classifier import (
    EMBEDDING_OUTPUT,
    GarmentClassifier,
    load_classifier,
)
from fashionlens.models.meta import WEIGHTS_FORMAT
from fashionlens.runtime.backends import ONNX_FORMAT_KEY, ONNX_META_KEY, onnx_path_for

__all__ = ["export_classifier_onnx", "finish_onnx_export"]

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


def finish_onnx_export(path: str | Path, meta: Mapping[str, Any], *, fmt: str, fp16: bool) -> None:
    """Rewrite the exported graph at ``path``: ``meta`` (JSON) under ``ONNX_META_KEY`` and the weights'
    format header ``fmt`` under ``ONNX_FORMAT_KEY`` (replacing older entries) and, with ``fp16``,
    float32 weights of 1,024 values or more stored as float16."""
    import onnx

    from fashionlens.runtime.onnx_fp16 import store_weights_fp16

    proto = onnx.load(str(path))
    entries = {p.key: p.value for p in proto.metadata_props}
    entries.update({ONNX_META_KEY: json.dumps(dict(meta)), ONNX_FORMAT_KEY: fmt})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, entries)
    if fp16:
        store_weights_fp16(proto)
    onnx.save(proto, str(path))


def export_classifier_onnx(weights: str | Path | None = None, output: str | Path | None = None, *,
                           opset: int = 17, fp16: bool = False) -> Path:
    """Write ``output`` (default: next to the weights, ``.onnx``) with the meta as ONNX metadata.

    ``fp16=False`` (the default, the shipped file): float32 weights with BatchNorm folded by the
    exporter. ``fp16=True``: the weights stored as float16 — the fp16 ``.pt`` values exactly, BatchNorm
    left unfolded so that ONNX Runtime folds it in float32 when it opens the session — half the file,
    probabilities within 1.5e-6 of PyTorch (as the float32 file), but not bit-identical: ONNX Runtime's folding rounds
    differently from the exporter's, which moves stored fp16 garment embeddings by one unit in the last
    place here and there (so the golden ``tag --embed`` records would change); hence not the default.
    """
    from fashionlens.models.registry import default_weights_path

    weights = Path(weights) if weights else default_weights_path()
    output = Path(output) if output else onnx_path_for(weights)
    model = load_classifier(weights)
    wrapped = _ProbabilityModel(model).eval()
    size = model.meta.input_size
    dummy = torch.zeros(2, 3, size, size)
    names = [h.name for h in model.meta.heads] + [EMBEDDING_OUTPUT]

    def write(tmp: Path) -> None:
        torch.onnx.export(wrapped, (dummy,), str(tmp), input_names=["images"], output_names=names,
                          dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                          opset_version=opset, dynamo=False, do_constant_folding=not fp16)
        finish_onnx_export(tmp, model.meta.to_dict(), fmt=WEIGHTS_FORMAT, fp16=fp16)

    atomic_write(output, write)
    log.info("exported %s → %s", weights, output)
    return output
