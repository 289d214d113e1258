"""One way to load any model: :func:`load_model` by shipped name or by weights path, the loader
picked from the ``format`` header stored in the file. Loaders are imported when called: listing
models or loading NumPy heads does not import torch. This is the weights loader (torch modules need
the ``[train]`` extra); :func:`fashionlens.runtime.loading.load_model` also runs ONNX exports.

>>> heads = load_model("garment-text-align-lite0")   # NumPy only
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashionlens.models.extras import TRAIN_EXTRA, MissingExtraError, torch_available
from fashionlens.models.registry import MODELS, default_weights_path, list_models

__all__ = ["FORMATS", "WeightsFormat", "load_model", "resolve_weights"]


# ------------------------------------------------------------------ loaders (imported lazily)

def _load_classifier(path: Path) -> Any:
    from fashionlens.models.classifier import load_classifier

    return load_classifier(path)


def _load_detector(path: Path) -> Any:
    from fashionlens.models.detector_weights import load_detector

    return load_detector(path)


def _load_damage(path: Path) -> Any:
    from fashionlens.models.damage import load_damage_model

    return load_damage_model(path)


def _load_alignment(path: Path) -> Any:
    from fashionlens.models.alignment import load_alignment

    return load_alignment(path)


def _load_grader(path: Path) -> Any:
    from fashionlens.models.grader import load_grader

    return load_grader(path)


def _load_pixel_colours(path: Path) -> Any:
    from fashionlens.models.pixel_colours import PixelColourModel

    return PixelColourModel.load(path)


def _load_pixel_filter(path: Path) -> Any:
    from fashionlens.models.pixel_filter import GarmentPixelFilter

    return GarmentPixelFilter.load(path)


@dataclass(frozen=True)
class WeightsFormat:
    """One weights file format: the ``format`` header stored in the file, its kind of file
    (``classifier-pt``, ``detector-pt``, ``damage-pt`` or ``npz-heads``), its loader and what the
    loader returns."""

    header: str
    kind: str
    loader: Callable[[Path], Any]
    returns: str


#: stored ``format`` header → how to load it (the headers are the *_FORMAT constants of the loaders'
#: modules, written out here so that this table needs no torch; tests/models/test_registry.py checks them)
FORMATS: dict[str, WeightsFormat] = {f.header: f for f in (
    WeightsFormat("fashionlens/classifier-weights/v1", "classifier-pt", _load_classifier,
                  "GarmentClassifier (torch, eval mode; .meta: ClassifierMeta)"),
    WeightsFormat("fashionlens/detector-weights/v1", "detector-pt", _load_detector,
                  "(detector nn.Module in eval mode, DetectorMeta)"),
    WeightsFormat("fashionlens/damage-segmenter/v1", "damage-pt", _load_damage,
                  "(DamageSegmenter in eval mode, DamageMeta)"),
    WeightsFormat("fashionlens/alignment-heads/v1", "npz-heads", _load_alignment,
                  "AlignmentHeads (NumPy; .meta: AlignmentMeta)"),
    WeightsFormat("fashionlens/grader-heads/v1", "npz-heads", _load_grader,
                  "GraderModel (NumPy; .meta: GraderMeta)"),
    WeightsFormat("fashionlens/pixel-colours/v1", "npz-heads", _load_pixel_colours,
                  "PixelColourModel (NumPy)"),
    WeightsFormat("fashionlens/garment-pixel-filter/v1", "npz-heads", _load_pixel_filter,
                  "GarmentPixelFilter (NumPy)"),
)}


def resolve_weights(name_or_path: str | os.PathLike[str], *, read_pt_header: bool = True
                    ) -> tuple[Path, str | None]:
    """``(weights path, stored format header)`` of a shipped model's name or a weights file's path.

    Reading a ``.pt`` file's header needs torch; with ``read_pt_header=False`` it is not read (None)
    unless the file is ``.npz`` heads. Errors as :func:`load_model`'s.
    """
    if isinstance(name_or_path, str) and name_or_path in MODELS:
        spec = MODELS[name_or_path]
        return default_weights_path(spec.name), spec.header
    path = Path(name_or_path)
    if not path.is_file():
        text = os.fspath(name_or_path)
        if os.sep in text or "/" in text or path.suffix in (".pt", ".npz", ".onnx"):
            raise FileNotFoundError(f"weights not found: {path} (shipped models, loadable by name: {list_models()})")
        raise ValueError(f"unknown model {text!r}: not a shipped model nor a weights file; "
                         f"shipped models: {list_models()}")
    if path.suffix == ".onnx":
        raise ValueError(f"{path}: an ONNX export, not weights; load {path.with_suffix('.pt')} "
                         "(the runtime picks the export next to it)")
    from fashionlens.models.weights_io import npz_format, stored_format

    if not read_pt_header:
        return path, npz_format(path)
    return path, stored_format(path)


def load_model(name_or_path: str | os.PathLike[str]) -> Any:
    """Load a shipped model by name (see :func:`list_models`) or a fashionlens weights file by path.

    The loader is chosen by the ``format`` header stored in the file, and what comes back is what
    that model's own loader returns: a ``GarmentClassifier`` (torch module, ``.meta``) for the
    classifier; ``(module, meta)`` pairs for the detector and the damage head; NumPy-only objects
    (``AlignmentHeads``, ``GraderModel``, ``PixelColourModel``) for ``.npz`` heads. Torch is only
    imported for torch models, and without torch installed those raise
    :class:`~fashionlens.models.extras.MissingExtraError` (one line naming the ``[train]`` extra);
    :func:`fashionlens.runtime.loading.load_model` runs their ONNX exports instead. A name that is
    neither shipped nor an existing file raises ``ValueError`` (``FileNotFoundError`` when it looks
    like a path), naming the shipped models.

    >>> from fashionlens.models.loading import load_model
    >>> classifier = load_model("garment-classifier-lite0")      # torch: the [train] extra
    >>> classifier.meta.head("category").values[:3]
    ('shirts', 'formal-jackets', 't-shirts')
    >>> heads = load_model("runs/alignment/heads.npz")      # doctest: +SKIP
    """
    path, header = resolve_weights(name_or_path, read_pt_header=torch_available())
    if header is None:  # a .pt file without torch to read it
        raise MissingExtraError(f"{path}: reading torch weights needs PyTorch, which is not installed; "
                                f"install the train extra ({TRAIN_EXTRA}) or load its ONNX export with "
                                "fashionlens.runtime.loading.load_model")
    if header not in FORMATS:
        raise ValueError(f"{path}: unknown weights format {header!r}; expected one of {sorted(FORMATS)}")
    fmt = FORMATS[header]
    if fmt.kind != "npz-heads" and not torch_available():
        raise MissingExtraError(f"{path}: a {fmt.kind} torch model needs PyTorch, which is not installed; install "
                                f"the train extra ({TRAIN_EXTRA}) or load its ONNX export with "
                                "fashionlens.runtime.loading.load_model")
    return fmt.loader(path)
