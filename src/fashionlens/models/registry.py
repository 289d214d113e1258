"""Shipped models, found by name (``arch.tag``), like timm's registry.

Every shipped model has a :class:`ModelSpec`: its name, its file in ``fashionlens/weights/``, its
stored format header and a one-line description. :func:`fashionlens.models.loading.load_model`
loads one by name (or any weights file by path). This module imports nothing of the models, so
each model module may ask it for its default weights.

>>> list_models()[:2]
['damage-segmenter-lite0', 'garment-classifier-lite0']
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_CLASSIFIER = "garment-classifier-lite0"
DEFAULT_DETECTOR = "garment-detector-fcos-seg-lite0"
DEFAULT_ALIGNMENT = "garment-text-align-lite0"
DEFAULT_PIXEL_COLOURS = "garment-colours-pixels"
DEFAULT_DAMAGE_MODEL = "damage-segmenter-lite0"
DEFAULT_GRADER = "rise-grader-lite0"
DEFAULT_PIXEL_FILTER = "garment-pixel-filter"

__all__ = ["DEFAULT_ALIGNMENT", "DEFAULT_CLASSIFIER", "DEFAULT_DAMAGE_MODEL", "DEFAULT_DETECTOR", "DEFAULT_GRADER",
           "DEFAULT_PIXEL_COLOURS", "DEFAULT_PIXEL_FILTER", "FORMAT_KINDS", "MODELS", "ModelSpec", "default_weights_path", "list_models",
           "model_spec"]


#: stored ``format`` header → kind of file (the loaders are in :mod:`fashionlens.models.loading`)
FORMAT_KINDS: dict[str, str] = {
    "fashionlens/classifier-weights/v1": "classifier-pt",
    "fashionlens/detector-weights/v1": "detector-pt",
    "fashionlens/damage-segmenter/v1": "damage-pt",
    "fashionlens/alignment-heads/v1": "npz-heads",
    "fashionlens/grader-heads/v1": "npz-heads",
    "fashionlens/pixel-colours/v1": "npz-heads",
    "fashionlens/garment-pixel-filter/v1": "npz-heads",
}


@dataclass(frozen=True)
class ModelSpec:
    """A shipped model: ``name``, ``filename`` in ``fashionlens/weights/``, stored format ``header``
    and a short ``description``; ``format`` (the kind of file) and ``loader`` come from the header."""

    name: str
    filename: str
    header: str
    description: str

    @property
    def format(self) -> str:
        """The kind of file: ``classifier-pt``, ``detector-pt``, ``damage-pt`` or ``npz-heads``."""
        return FORMAT_KINDS[self.header]


MODELS: dict[str, ModelSpec] = {m.name: m for m in (
    ModelSpec("garment-classifier-lite0", "garment-classifier-lite0.pt", "fashionlens/classifier-weights/v1",
              "garment classifier (EfficientNet-Lite0): category and attribute heads, garment embeddings"),
    ModelSpec("garment-detector-fcos-seg-lite0", "garment-detector-fcos-seg-lite0.pt",
              "fashionlens/detector-weights/v1",
              "garment detector (FCOS + segmentation): boxes, masks and object types"),
    ModelSpec("garment-text-align-lite0", "garment-text-align-lite0.npz", "fashionlens/alignment-heads/v1",
              "text–image alignment heads for the default classifier (fashionlens.models.alignment)"),
    ModelSpec("damage-segmenter-lite0", "damage-segmenter-lite0.pt", "fashionlens/damage-segmenter/v1",
              "damage segmentation head trained on synthetic damage (fashionlens.grading.damage)"),
    ModelSpec("rise-grader-lite0", "rise-grader-lite0.npz", "fashionlens/grader-heads/v1",
              "grading heads on the classifier's embeddings of front/back photos (fashionlens.grading.grader)"),
    ModelSpec("garment-colours-pixels", "garment-colours-pixels.npz", "fashionlens/pixel-colours/v1",
              "colour names from a garment's own pixels, joined with the classifier's colour head "
              "(fashionlens.models.pixel_colours)"),
    ModelSpec("garment-pixel-filter", "garment-pixel-filter.npz", "fashionlens/garment-pixel-filter/v1",
              "drops skin, hair and background from a detected garment's mask before its colours are measured "
              "(fashionlens.models.pixel_filter)"),
)}


def list_models() -> list[str]:
    """Names of the shipped models, sorted; each loads with :func:`load_model`.

    >>> "garment-classifier-lite0" in list_models()
    True
    """
    return sorted(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a shipped model; ``ValueError`` naming the shipped models otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; shipped models: {list_models()}")
    return MODELS[name]


def default_weights_path(name: str = DEFAULT_CLASSIFIER) -> Path:
    """Path of a shipped model's weights inside the installed package."""
    spec = model_spec(name)
    path = Path(str(resources.files("fashionlens").joinpath("weights", spec.filename)))
    if not path.is_file():
        raise FileNotFoundError(f"shipped weights missing: {path} (reinstall fashionlens)")
    return path
