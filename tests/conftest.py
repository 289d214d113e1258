"""Shared fixtures: tiny FCOS-seg detectors (no ImageNet weights, 128 px) saved as detector weights.

``make_detector(force=...)`` builds one; with ``force`` set to an object type its heads are
overwritten so that every location predicts that type with a score ≈ 1, a box of ± one anchor
size around it and a semantic map that is that type everywhere (so each mask fills its box).
``save_detector_weights(path, force=...)`` writes such a detector with :func:`save_detector`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fashionlens.models.detector import create_detector, detector_class_names
from fashionlens.models.detector_weights import DetectorMeta, save_detector
from fashionlens.models.fcos_seg import FCOSSeg

#: builder kwargs of the tiny detector: 128 px, narrow FPN and mask head, few candidates
TINY_KWARGS: dict[str, Any] = {"min_size": 128, "max_size": 128, "fpn_channels": 64, "seg_channels": 16,
                               "topk_candidates": 50, "detections_per_img": 10}


def _make_detector(force: str | None = None, *, seed: int = 0, **overrides: Any) -> FCOSSeg:
    torch.manual_seed(seed)
    model = create_detector("fcos-seg-lite0-fpn", pretrained_backbone=False, **{**TINY_KWARGS, **overrides})
    if force is not None:
        c = detector_class_names().index(force)
        with torch.no_grad():
            cls = model.head.classification_head.cls_logits
            cls.weight.zero_()
            cls.bias.fill_(-10.0)
            cls.bias[c] = 10.0
            reg = model.head.regression_head.bbox_reg
            reg.weight.zero_()
            reg.bias.fill_(1.0)
            ctr = model.head.regression_head.bbox_ctrness
            ctr.weight.zero_()
            ctr.bias.fill_(10.0)
            seg = model.seg_head.classifier
            seg.weight.zero_()
            seg.bias.fill_(-10.0)
            seg.bias[c] = 10.0
    return model.eval()


def _save(path: Path, force: str | None = None, *, defaults: dict[str, float] | None = None,
          **overrides: Any) -> Path:
    meta = DetectorMeta(name="tiny-detector", version="test", arch="fcos-seg-lite0-fpn",
                        class_names=tuple(detector_class_names()), builder_kwargs={**TINY_KWARGS, **overrides},
                        extra={"defaults": defaults} if defaults else {})
    save_detector(_make_detector(force, **overrides), meta, path)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread (much faster than two on a 2-core machine that is busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_detector() -> Callable[..., FCOSSeg]:
    return _make_detector


@pytest.fixture(scope="session")
def save_detector_weights() -> Callable[..., Path]:
    return _save


@pytest.fixture(scope="session")
def random_detector_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny detector (random heads; scores ≈ 0.05–0.1)."""
    return _save(tmp_path_factory.mktemp("weights") / "random.pt")


@pytest.fixture(scope="session")
def upper_body_detector_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny detector that finds ``upper-body`` garments everywhere with score ≈ 1."""
    return _save(tmp_path_factory.mktemp("weights") / "upper.pt", "upper-body")


class FakeTextEncoder:
    """Bag of random word vectors (384-d, like MiniLM): deterministic, no model to load."""

    dim = 384

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = []
        for t in texts:
            v = np.zeros(self.dim)
            for w in t.lower().replace(",", " ").replace(".", " ").split():
                seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                v += np.random.default_rng(seed).standard_normal(self.dim)
            out.append(v / max(np.linalg.norm(v), 1e-9))
        return np.asarray(out, np.float32)


@pytest.fixture
def fake_text_encoder() -> FakeTextEncoder:
    return FakeTextEncoder()
