"""Classifier backends with one interface: ``run(batch, embed=False) -> {head: probabilities}``.

``batch`` is a normalised float32 ``(B, 3, S, S)`` array; probabilities are softmax (single-label
heads) or sigmoid (multi-label heads) as ``(B, K)`` float32 arrays. With ``embed=True`` the result
also holds ``"embedding"``: the garment embeddings, ``(B, D)`` float32, L2-normalised (the
backbone's pooled features, D = 1280 for EfficientNet-Lite0).

The ONNX backend needs onnxruntime and NumPy only: the classifier's meta travels in the export's
custom metadata (:data:`ONNX_META_KEY`). The torch backend imports torch when it is created and
needs the ``[train]`` extra.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from fashionlens.models.meta import EMBEDDING_OUTPUT, ClassifierMeta

log = logging.getLogger(__name__)

BackendName = Literal["auto", "onnx", "torch"]
#: the accepted ``backend`` values, for validation and CLI choices
BACKEND_NAMES: tuple[str, ...] = ("auto", "onnx", "torch")


def default_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: custom-metadata key of a fashionlens ONNX export: the model's meta as JSON (ClassifierMeta.to_dict(),
#: DamageMeta.to_dict(), ...), so that ONNX Runtime runs it without reading the torch weights
ONNX_META_KEY = "fashionlens_meta"
#: custom-metadata key of the ``format`` header of the weights a classifier or damage export was made
#: from (e.g. ``fashionlens/classifier-weights/v1``): what kind of model the file holds
ONNX_FORMAT_KEY = "fashionlens_format"


def onnx_session(onnx_path: str | Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``onnx_path``: ``threads`` intra-op threads (None: the cores this
    process may use), one inter-op thread, every graph optimisation — the optimised graph loaded from the
    per-machine cache after the first use (:mod:`fashionlens.runtime.session_cache`)."""
    from fashionlens.runtime.session_cache import cached_session

    return cached_session(onnx_path, threads=threads or default_threads())


def onnx_stored_meta(session: Any) -> dict[str, Any] | None:
    """The meta a fashionlens export stores under :data:`ONNX_META_KEY` (None when it has none)."""
    raw = session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
    return None if raw is None else json.loads(raw)


def onnx_path_for(weights: str | Path) -> Path:
    """Where the ONNX export of a ``.pt`` weights file lives: next to it, ``.onnx``."""
    return Path(weights).with_suffix(".onnx")


def resolve_backend(backend: str, weights: str | Path, *, export: str = "--weights") -> Literal["onnx", "torch"]:
    """The runtime to use for ``weights``: the one backend check of the classifier, the detector and
    the damage head.

    ``backend``: ``auto`` (ONNX Runtime when ``<weights>.onnx`` sits next to the weights, else
    PyTorch), ``onnx`` or ``torch``; any other value is a ``ValueError``. ``onnx`` without an export
    raises ``FileNotFoundError`` with the command that writes one: ``fashionlens export onnx
    <export> <weights>`` (``export``: ``--weights``, ``--detector`` or ``--damage``).

    >>> resolve_backend("auto", "runs/classifier/model.pt")   # doctest: +SKIP
    'torch'
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be auto, onnx or torch; got {backend!r}")
    onnx_file = onnx_path_for(weights)
    if backend == "onnx" and not onnx_file.is_file():
        raise FileNotFoundError(f"no ONNX export at {onnx_file}; run: fashionlens export onnx {export} "
                                f"{Path(weights).with_suffix('.pt')}")
    return "torch" if backend == "torch" or not onnx_file.is_file() else "onnx"


class ClassifierBackend(Protocol):
    name: str
    meta: ClassifierMeta

    def run(self, batch: np.ndarray, *, embed: bool = False) -> dict[str, np.ndarray]: ...


class TorchBackend:
    name = "torch"

    def __init__(self, weights: str | Path, *, threads: int | None = None) -> None:
        from fashionlens.models.extras import require_torch

        torch = require_torch("the classifier's torch backend")
        from fashionlens.models.classifier import load_classifier

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = load_classifier(weights)
        self.meta = self.model.meta

    def run(self, batch: np.ndarray, *, embed: bool = False) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            outs, embedding = self.model.forward_with_embedding(torch.from_numpy(batch))
        result = {h.name: (o.softmax(-1) if h.kind == "single" else o.sigmoid()).numpy()
                  for h, o in zip(self.meta.heads, outs)}
        if embed:
            result[EMBEDDING_OUTPUT] = embedding.numpy()
        return result


class OnnxBackend:
    name = "onnx"

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        self.session = onnx_session(onnx_path, threads=threads)
        raw = onnx_stored_meta(self.session)
        if raw is None:
            raise ValueError(f"{onnx_path}: not a fashionlens classifier export (no {ONNX_META_KEY} metadata)")
        self.meta = ClassifierMeta.from_dict(raw)
        outputs = [o.name for o in self.session.get_outputs()]
        self._names = [n for n in outputs if n != EMBEDDING_OUTPUT]
        self.has_embedding = EMBEDDING_OUTPUT in outputs
        self._path = Path(onnx_path)

    def run(self, batch: np.ndarray, *, embed: bool = False) -> dict[str, np.ndarray]:
        names = self._names
        if embed:
            if not self.has_embedding:
                raise ValueError(f"{self._path}: this ONNX export has no {EMBEDDING_OUTPUT!r} output (exported "
                                 "before embeddings existed); re-export it: fashionlens export onnx --weights "
                                 f"{self._path.with_suffix('.pt')}")
            names = [*names, EMBEDDING_OUTPUT]
        outs = self.session.run(names, {"images": np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(names, outs))


def create_backend(weights: str | Path | None = None, *, backend: BackendName = "auto",
                   threads: int | None = None) -> ClassifierBackend:
    """``auto``: ONNX Runtime when an ``.onnx`` export sits next to the weights, else PyTorch (which
    needs the ``[train]`` extra: :class:`~fashionlens.models.extras.MissingExtraError` without it)."""
    from fashionlens.models.registry import default_weights_path

    weights = Path(weights) if weights else default_weights_path()
    if resolve_backend(backend, weights) == "onnx":
        return OnnxBackend(onnx_path_for(weights), threads=threads)
    if weights.suffix == ".onnx":
        raise ValueError("the torch backend needs .pt weights, got an .onnx file")
    return TorchBackend(weights, threads=threads)
