"""fashionlens: understand photos of clothes — garments, categories, attributes, colours.

The public API, imported on first use (``import fashionlens`` stays cheap and imports no torch):

* :class:`Tagger` tags decoded photos → :class:`TagResult` (one per photo; its ``garments`` are
  :class:`Garments`); :class:`TaggerConfig` builds one as ``fashionlens tag`` does;
  :func:`load_image` decodes a photo;
* :func:`load_model` / :func:`list_models`: the shipped models, or any weights file;
* :class:`ItemGrader`: grade second-hand items from their front/back/label photos;
* :class:`GarmentIndex`: a vector index of garment embeddings for search.

>>> from fashionlens import Tagger, load_image
>>> tagger = Tagger()
>>> [result] = tagger.tag([load_image("photo.jpg")], ["photo.jpg"])     # doctest: +SKIP
>>> print(result.garments.category)                                      # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module as _import_module
from types import ModuleType as _ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fashionlens.grading.grade import ItemGrader
    from fashionlens.imageio import load_image
    from fashionlens.runtime.loading import load_model
    from fashionlens.models.registry import list_models
    from fashionlens.pipeline import Tagger, TaggerConfig
    from fashionlens.result import Garments, TagResult
    from fashionlens.search.index import GarmentIndex

#: public name → the module that defines it (imported on first access, PEP 562)
_LAZY: dict[str, str] = {
    "Tagger": "fashionlens.pipeline",
    "TaggerConfig": "fashionlens.pipeline",
    "TagResult": "fashionlens.result",
    "Garments": "fashionlens.result",
    "load_image": "fashionlens.imageio",
    "load_model": "fashionlens.runtime.loading",
    "list_models": "fashionlens.models.registry",
    "ItemGrader": "fashionlens.grading.grade",
    "GarmentIndex": "fashionlens.search.index",
}

__all__ = ["GarmentIndex", "Garments", "ItemGrader", "TagResult", "Tagger", "TaggerConfig", "__version__",
           "list_models", "load_image", "load_model"]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fashionlens' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names and the submodules imported so far (not this module's helpers)."""
    loaded = [k for k, v in globals().items() if isinstance(v, _ModuleType) and not k.startswith("_")]
    return sorted({*__all__, *loaded})
