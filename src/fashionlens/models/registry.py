"""Shipped default models, found by name (``arch.tag``), like timm's registry."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_CLASSIFIER = "garment-classifier-lite0"
DEFAULT_DETECTOR = "garment-detector-fcos-seg-lite0"
DEFAULT_ALIGNMENT = "garment-text-align-lite0"
DEFAULT_PIXEL_COLOURS = "garment-colours-pixels"
DEFAULT_DAMAGE_MODEL = "damage-segmenter-lite0"
DEFAULT_GRADER = "rise-grader-lite0"

_SHIPPED: dict[str, str] = {
    "garment-classifier-lite0": "garment-classifier-lite0.pt",
    "garment-detector-fcos-seg-lite0": "garment-detector-fcos-seg-lite0.pt",
    # text–image alignment heads for the default classifier (fashionlens.search.alignment)
    "garment-text-align-lite0": "garment-text-align-lite0.npz",
    # damage segmentation head trained on synthetic damage (fashionlens.grading.damage)
    "damage-segmenter-lite0": "damage-segmenter-lite0.pt",
    # grading heads on the classifier's embeddings of front/back photos (fashionlens.grading.grader)
    "rise-grader-lite0": "rise-grader-lite0.npz",
    # colour names from a garment's own pixels, joined with the classifier's colour head (fashionlens.colours.pixel_model)
    "garment-colours-pixels": "garment-colours-pixels.npz",
}


def list_models() -> list[str]:
    return sorted(_SHIPPED)


def default_weights_path(name: str = DEFAULT_CLASSIFIER) -> Path:
    """Path of a shipped model's weights inside the installed package."""
    if name not in _SHIPPED:
        raise ValueError(f"unknown model {name!r}; shipped models: {list_models()}")
    path = Path(str(resources.files("fashionlens").joinpath("weights", _SHIPPED[name])))
    if not path.is_file():
        raise FileNotFoundError(f"shipped weights missing: {path} (reinstall fashionlens)")
    return path
