"""Load any model for inference: :func:`load_model` gives the PyTorch module when torch is installed
(the ``[train]`` extra) and otherwise runs the model's ONNX export with ONNX Runtime — without torch.

:func:`fashionlens.models.loading.load_model` is the weights loader underneath (torch modules and
NumPy heads); this one adds the choice of runtime, which belongs to this layer.

>>> classifier = load_model("garment-classifier-lite0", backend="onnx")     # no torch imported
>>> classifier.meta.head("category").values[:2]
('shirts', 'formal-jackets')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from fashionlens.models.extras import TRAIN_EXTRA, MissingExtraError, torch_available
from fashionlens.models.loading import load_model as load_weights
from fashionlens.models.loading import resolve_weights
from fashionlens.models.registry import FORMAT_KINDS, MODELS
from fashionlens.runtime.backends import BACKEND_NAMES, ONNX_FORMAT_KEY, onnx_path_for

__all__ = ["load_model"]

LoadBackend = Literal["auto", "onnx", "torch"]

#: the kinds of file that are torch networks, each with an ONNX runner
_NETWORK_KINDS = ("classifier-pt", "detector-pt", "damage-pt")


def load_model(name_or_path: str | os.PathLike[str], *, backend: LoadBackend = "auto",
               threads: int | None = None) -> Any:
    """Load a shipped model by name (:func:`~fashionlens.models.registry.list_models`) or a fashionlens
    weights file by path, ready for inference.

    ``backend``:

    * ``auto`` — the PyTorch module when torch is installed (``pip install 'fashionlens[train]'``),
      else the ONNX export next to the weights (``<weights>.onnx``) run by ONNX Runtime;
    * ``onnx`` — always the ONNX export (``FileNotFoundError`` with the export command when there is none);
    * ``torch`` — always the PyTorch module (:class:`~fashionlens.models.extras.MissingExtraError`, a
      one-line ``RuntimeError`` naming the ``[train]`` extra, when torch is not installed).

    What comes back, by model (torch / ONNX Runtime):

    * classifier: ``GarmentClassifier`` (``.meta``) / :class:`~fashionlens.runtime.backends.OnnxBackend`
      (``.meta``; ``.run(batch, embed=False)`` → ``{head: probabilities}``);
    * damage head: ``(DamageSegmenter, DamageMeta)`` / ``(OnnxDamageRunner, DamageMeta)``
      (``runner(x)`` → ``(B, K, H, W)`` probabilities);
    * detector: ``(detector module, DetectorMeta)`` / ``(OnnxDetector, DetectorMeta)``
      (``runner(rgb, limits)`` → boxes, scores, labels, masks);
    * ``.npz`` heads: the NumPy object (``AlignmentHeads``, ``GraderModel``, ``PixelColourModel``, ``GarmentPixelFilter``)
      whatever the backend.

    An ``.onnx`` path loads that export (``auto``/``onnx``). ``threads``: ONNX Runtime's intra-op threads
    (None: the cores this process may use). An unknown name raises ``ValueError``, a missing file
    ``FileNotFoundError``, both naming the shipped models.

    >>> damage, meta = load_model("damage-segmenter-lite0", backend="onnx")
    >>> meta.input_side
    640
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be auto, onnx or torch; got {backend!r}")
    if not (isinstance(name_or_path, str) and name_or_path in MODELS) and Path(name_or_path).suffix == ".onnx":
        onnx_path = Path(name_or_path)
        if backend == "torch":
            raise ValueError(f"{onnx_path}: an ONNX export; the torch backend loads {onnx_path.with_suffix('.pt')}")
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX export not found: {onnx_path}")
        return _load_onnx(onnx_path, None, threads=threads)
    path, header = resolve_weights(name_or_path, read_pt_header=False)
    kind = FORMAT_KINDS.get(header) if header is not None else None
    if kind == "npz-heads":
        return load_weights(path)
    onnx_file = onnx_path_for(path)
    if backend == "torch" or (backend == "auto" and torch_available()):
        return load_weights(path)
    if not onnx_file.is_file():
        if backend == "onnx":
            if kind is None and torch_available():  # only to name the right export option
                kind = FORMAT_KINDS.get(resolve_weights(path)[1] or "")
            raise FileNotFoundError(f"no ONNX export at {onnx_file}; run: fashionlens export onnx "
                                    f"{_export_option(kind)} {path}")
        raise MissingExtraError(f"{path} has no ONNX export next to it and PyTorch is not installed; "
                                f"install the train extra to load it: {TRAIN_EXTRA}")
    return _load_onnx(onnx_file, kind, threads=threads)


def _export_option(kind: str | None) -> str:
    if kind is None:  # a .pt file whose header needs torch to read
        return "--weights|--detector|--damage (classifier, detector, damage head)"
    return {"detector-pt": "--detector", "damage-pt": "--damage"}.get(kind, "--weights")


def _load_onnx(onnx_file: Path, kind: str | None, *, threads: int | None) -> Any:
    """The ONNX runner of ``onnx_file``; ``kind`` None (a ``.pt`` whose header needs torch to read, or an
    ``.onnx`` path): the kind the export itself stores."""
    if kind is None:
        kind = _stored_kind(onnx_file)
    if kind == "classifier-pt":
        from fashionlens.runtime.backends import OnnxBackend

        return OnnxBackend(onnx_file, threads=threads)
    if kind == "damage-pt":
        from fashionlens.runtime.damage_onnx import OnnxDamageRunner, stale_export_hint

        runner = OnnxDamageRunner(onnx_file, threads=threads)
        if runner.meta is None:
            raise ValueError(stale_export_hint(onnx_file))
        return runner, runner.meta
    from fashionlens.runtime.detector_onnx import OnnxDetector

    detector = OnnxDetector(onnx_file, threads=threads)
    return detector, detector.meta


def _stored_kind(onnx_file: Path) -> str:
    """The kind of model an export holds, from its metadata (read without optimising the graph)."""
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    custom = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"]
                                  ).get_modelmeta().custom_metadata_map
    header = custom.get(ONNX_FORMAT_KEY)
    if header is None:
        from fashionlens.runtime.detector_onnx import CONFIG_KEY, DETECTOR_ONNX_FORMAT

        if CONFIG_KEY in custom and json.loads(custom[CONFIG_KEY]).get("format") == DETECTOR_ONNX_FORMAT:
            return "detector-pt"  # detector exports keep their own format record
    if header in FORMAT_KINDS and FORMAT_KINDS[header] in _NETWORK_KINDS:
        return FORMAT_KINDS[header]
    raise ValueError(f"{onnx_file}: an ONNX file without a fashionlens format record ({ONNX_FORMAT_KEY}), so its "
                     f"kind of model is unknown; re-export it with `fashionlens export onnx`, or install the "
                     f"train extra to load the weights next to it: {TRAIN_EXTRA}")
