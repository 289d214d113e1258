"""Shared fixtures: tiny FCOS-seg detectors (no ImageNet weights, 128 px) saved as detector weights.

``make_detector(force=...)`` builds one; with ``force`` set to an object type its heads are
overwritten so that every location predicts that type with a score ≈ 1, a box of ± one anchor
size around it and a semantic map that is that type everywhere (so each mask fills its box).
``save_detector_weights(path, force=...)`` writes such a detector with :func:`save_detector`.

These fixtures build PyTorch models, so they need the ``train`` extra: where torch is not installed (the
light environment) a test that uses one is skipped, saying so. Nothing here imports torch at collection.

Test modules that need the ``train`` extra say so with ``pytestmark = pytest.mark.train`` (or a list that
holds it). ``-m "not train"`` (the light environment's run, where such modules cannot even be imported)
leaves them uncollected instead of failing on their imports.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from fashionlens.models.fcos_seg import FCOSSeg

#: a module-level ``pytestmark`` that holds the ``train`` mark
_TRAIN_MODULE = re.compile(r"^pytestmark\s*=.*\bpytest\.mark\.train\b", re.MULTILINE)
#: a ``-m`` expression that deselects the ``train`` mark
_NOT_TRAIN = re.compile(r"\bnot\s+train\b")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave modules marked ``train`` uncollected when ``-m`` deselects ``train``: their tests would be
    deselected anyway, and importing them needs torch, which the light environment does not have."""
    if collection_path.suffix != ".py" or not _NOT_TRAIN.search(config.option.markexpr or ""):
        return None
    try:
        source = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return True if _TRAIN_MODULE.search(source) else None


#: builder kwargs of the tiny detector: 128 px, narrow FPN and mask head, few candidates
TINY_KWARGS: dict[str, Any] = {"min_size": 128, "max_size": 128, "fpn_channels": 64, "seg_channels": 16,
                               "topk_candidates": 50, "detections_per_img": 10}


def _torch() -> Any:
    """torch, or skip the test that needs it where the ``train`` extra is not installed."""
    return pytest.importorskip("torch", reason="needs the train extra (torch): pip install 'fashionlens[train]'")


def _make_detector(force: str | None = None, *, seed: int = 0, **overrides: Any) -> FCOSSeg:
    torch = _torch()
    from fashionlens.models.detector import create_detector, detector_class_names

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
    _torch()
    from fashionlens.models.detector import detector_class_names
    from fashionlens.models.detector_weights import DetectorMeta, save_detector

    meta = DetectorMeta(name="tiny-detector", version="test", arch="fcos-seg-lite0-fpn",
                        class_names=tuple(detector_class_names()), builder_kwargs={**TINY_KWARGS, **overrides},
                        extra={"defaults": defaults} if defaults else {})
    save_detector(_make_detector(force, **overrides), meta, path)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread (much faster than two on a 2-core machine that is busy); without
    torch (the light environment) there is no torch thread pool to narrow and the test runs as it is."""
    try:
        import torch
    except ModuleNotFoundError:
        yield
        return
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


# ------------------------------------------------------------------------------------ browser tests


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per browser-test module (skipped without playwright or a Chromium binary). Module,
    not session, scope: Playwright's sync API keeps an event loop running in the main thread while it is open,
    and tests that call ``asyncio.run`` later in the session (tests/service/test_service_limits.py) must not
    find it running."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
    service_tests = str(Path(__file__).parent / "service")
    if service_tests not in sys.path:
        sys.path.insert(0, service_tests)
    from test_web_browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set FASHIONLENS_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Where screenshots go: a temporary folder, and ``$FASHIONLENS_ARTEFACTS/web`` when that is set."""
    dirs = [tmp_path_factory.mktemp("web-screenshots")]
    if os.environ.get("FASHIONLENS_ARTEFACTS"):
        extra = Path(os.environ["FASHIONLENS_ARTEFACTS"]) / "web"
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs
