"""Service fixtures: the real shipped classifier (whole-image tagging is cheap), the tiny detector's
committed ONNX export (tests/fixtures/make_tiny_models.py: no torch, so the service is tested in the light
environment too), an item grader without OCR/damage heads, a small index of generated photos with toy
alignment heads and a fake caption encoder, and a generated trends dataset."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from service_testing import jpeg_bytes, make_client, png_bytes  # noqa: F401 - re-exported for fixtures

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

COLOURS = [(200, 30, 35), (40, 80, 180), (240, 220, 50), (20, 20, 20), (50, 130, 60)]


class _FakeTextEncoder:
    """Bag of random word vectors (384-d like MiniLM): deterministic, no model to load."""

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        out = []
        for t in texts:
            v = np.zeros(384)
            for w in t.lower().split():
                v += np.random.default_rng(sum(map(ord, w)) * 7919 + len(w)).standard_normal(384)
            out.append(v / max(np.linalg.norm(v), 1e-9))
        return np.asarray(out, np.float32)


@pytest.fixture(scope="session")
def service_data(tmp_path_factory: pytest.TempPathFactory, upper_body_detector_onnx: Path) -> Iterator[dict[str, Any]]:
    """Built once: models, index and trends inputs (the fake text encoder stays patched meanwhile)."""
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.grading.grade import ItemGrader
    from fashionlens.grading.routing import load_rules
    from fashionlens.pipeline import Tagger
    from fashionlens.search import text
    from fashionlens.models.alignment import AlignmentMeta, save_alignment
    from fashionlens.search.catalogue import GarmentSearcher, TagOptions, build_index
    from fashionlens.trends.synthetic import write_tagged_posts

    root = tmp_path_factory.mktemp("service")
    photos = root / "photos"
    photos.mkdir()
    for i, rgb in enumerate(COLOURS):
        Image.open(io.BytesIO(png_bytes(72, 96, rgb))).save(photos / f"p{i}.png")
    rng = np.random.default_rng(0)
    heads = save_alignment(AlignmentMeta(name="toy-align", version="t", dim=8),
                           {"image.0.weight": rng.standard_normal((8, 1280)), "image.0.bias": np.zeros(8),
                            "text.0.weight": rng.standard_normal((8, 384)), "text.0.bias": np.zeros(8)},
                           root / "heads.npz")
    results, posts = write_tagged_posts(root / "trends", 2400, months=24, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(text, "load_text_encoder", lambda *a, **k: _FakeTextEncoder())
        build_index([photos], root / "index", alignment=heads, options=TagOptions(whole_image=True, threads=1),
                    progress=False)
        tagger = Tagger(threads=1)
        detector = GarmentDetector(upper_body_detector_onnx, threads=1)
        grade_tagger = Tagger(threads=1, detector=detector)
        searcher = GarmentSearcher(root / "index", alignment=heads)
        yield {"tagger": tagger, "detector": detector, "detector_weights": upper_body_detector_onnx,
               "grader": ItemGrader(tagger=grade_tagger, rules=load_rules()), "searcher": searcher,
               "trends_inputs": (results, posts), "photos": photos, "root": root}
        searcher.close()


@pytest.fixture
def client(service_data: dict[str, Any]) -> Iterator[Any]:
    with make_client(service_data) as c:
        yield c

# the browser tests' fixtures (`browser`, `artefacts`) are in tests/conftest.py: one Chromium for every
# browser test of the suite (tests/service and tests/review)
