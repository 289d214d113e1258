"""Helpers shared by the service tests (a uniquely named module: several test folders have a
``conftest.py``, so ``from conftest import …`` would pick whichever was imported last)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image


def png_bytes(w: int = 64, h: int = 48, colour: tuple[int, int, int] = (200, 30, 35)) -> bytes:
    img = np.full((h, w, 3), 230, np.uint8)
    img[h // 6: h - h // 6, w // 5: w - w // 5] = colour
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(w: int = 64, h: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_client(service_data: dict[str, Any], *, raise_server_exceptions: bool = True, **settings: Any):
    """A TestClient of an app whose models are loaded (small ones injected)."""
    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    s = ServiceSettings(**{"detector_weights": str(service_data["detector_weights"]),
                           "trends": {"synthetic": service_data["trends_inputs"]}, **settings})
    models = ServiceModels(s, tagger=service_data["tagger"], detector=service_data["detector"],
                           grader=service_data["grader"], searcher=service_data["searcher"],
                           trends=service_data.get("trends_loaded"))
    models.load()
    service_data.setdefault("trends_loaded", dict(models.trends))
    return TestClient(create_app(s, models=models), raise_server_exceptions=raise_server_exceptions)
