"""Helpers of the garment-picker tests (issue 27): a stand-in detector that finds an outfit — shoes,
a jacket and trousers — in any photo, and a generated outfit photo whose garments are those boxes.

The stand-in lists the shoes first with the highest score, as a real detector sorted by score may:
the old behaviour (search garment 0) searched the shoes; ``garment=auto`` must search the jacket.
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

#: (object type, score, colour, box as fractions of the photo: x0, y0, x1, y1), in the detector's order
OUTFIT = (("footwear", 0.97, (20, 20, 20), (0.25, 0.86, 0.75, 0.97)),
          ("upper-body", 0.90, (200, 30, 35), (0.18, 0.08, 0.82, 0.50)),
          ("lower-body", 0.85, (40, 80, 180), (0.30, 0.50, 0.70, 0.84)))
JACKET, TROUSERS, SHOES = 1, 2, 0


def outfit_boxes(width: int, height: int) -> np.ndarray:
    return np.array([[x0 * width, y0 * height, x1 * width, y1 * height] for *_, (x0, y0, x1, y1) in OUTFIT])


def outfit_png(width: int = 300, height: int = 400) -> bytes:
    """A light photo with the three garments of :data:`OUTFIT` painted in their boxes."""
    img = np.full((height, width, 3), 236, np.uint8)
    for (_, _, colour, _), (x0, y0, x1, y1) in zip(OUTFIT, outfit_boxes(width, height).round().astype(int)):
        img[y0:y1, x0:x1] = colour
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


class OutfitDetector:
    """Stand-in :class:`~fashionlens.detection.detector.GarmentDetector`: the :data:`OUTFIT` boxes."""

    meta = SimpleNamespace(name="outfit-stand-in", version="test", extra={})
    backend = "stand-in"

    def __init__(self) -> None:
        from fashionlens.detection.settings import DetectSettings

        self.settings = DetectSettings()

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.meta.name, "version": self.meta.version, "backend": self.backend}

    def thresholds(self, settings: Any = None) -> tuple[float, float]:
        return 0.3, 0.6

    def detect(self, image: Any, settings: Any = None) -> Any:
        from fashionlens.result import Garments

        return Garments(xyxy=outfit_boxes(image.width, image.height), object_type=[t for t, *_ in OUTFIT],
                        confidence=[s for _, s, *_ in OUTFIT])
