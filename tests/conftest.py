"""Shared fixtures: tiny FCOS-seg detectors (no ImageNet weights, 128 px) saved as detector weights.

``make_detector(force=...)`` builds one; with ``force`` set to an object type its heads are
overwritten so that every location predicts that type with a score ≈ 1, a box of ± one anchor
size around it and a semantic map that is that type everywhere (so each mask fills its box).
``save_detector_weights(path, force=...)`` writes such a detector with :func:`save_detector`.
The builder lives in tests/fixtures/make_tiny_models.py.

These fixtures build PyTorch models, so they need the ``train`` extra: where torch is not installed (the
light environment) a test that uses one is skipped, saying so. Nothing here imports torch at collection.
A test that only needs a detector to *run* takes ``upper_body_detector_onnx`` (the committed ONNX export
of the ``upper-body`` detector: no torch) or ``upper_body_detector`` (that export, and the PyTorch weights
as a second case marked ``train``), and runs in the light environment too.

Test modules that need the ``train`` extra say so with ``pytestmark = pytest.mark.train`` (or a list that
holds it). ``-m "not train"`` (the light environment's run, where such modules cannot even be imported)
leaves them uncollected instead of failing on their imports.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from fashionlens.models.fcos_seg import FCOSSeg

# The ONNX session cache (fashionlens.runtime.session_cache) of this test run: a fresh folder, removed at exit, so
# the tests neither read the user's ~/.cache/fashionlens/onnx nor fill it with their temporary models' graphs.
if "FASHIONLENS_ONNX_CACHE" not in os.environ:
    os.environ["FASHIONLENS_ONNX_CACHE"] = _onnx_cache = tempfile.mkdtemp(prefix="fashionlens-onnx-cache-")
    atexit.register(shutil.rmtree, _onnx_cache, ignore_errors=True)

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


def _load_tiny_models() -> ModuleType:
    """tests/fixtures/make_tiny_models.py (the tiny detectors' builder), imported by its path under its own
    name: ``tests/fixtures`` is not a package, and the name ``conftest`` is shared by several modules."""
    name = "make_tiny_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "fixtures" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tiny_models = _load_tiny_models()
#: builder kwargs of the tiny detector: 128 px, narrow FPN and mask head, few candidates
TINY_KWARGS: dict[str, Any] = tiny_models.TINY_KWARGS
TinyDetector = tiny_models.TinyDetector


def _torch() -> Any:
    """torch, or skip the test that needs it where the ``train`` extra is not installed."""
    return pytest.importorskip("torch", reason="needs the train extra (torch): pip install 'fashionlens[train]'")


def _make_detector(force: str | None = None, *, seed: int = 0, **overrides: Any) -> FCOSSeg:
    _torch()
    return tiny_models.make_tiny_detector(force, seed=seed, **overrides)


def _save(path: Path, force: str | None = None, *, defaults: dict[str, float] | None = None,
          **overrides: Any) -> Path:
    _torch()
    return tiny_models.save_tiny_detector(path, force, defaults=defaults, **overrides)


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


@pytest.fixture(scope="session")
def upper_body_detector_onnx() -> Path:
    """The committed ONNX export of the tiny ``upper-body`` detector (tests/fixtures/make_tiny_models.py): it
    finds what ``upper_body_detector_weights`` finds and runs on ONNX Runtime, so it needs no torch."""
    path: Path = tiny_models.UPPER_BODY_ONNX
    if not path.is_file():
        pytest.fail(f"missing test fixture {path}; regenerate it: python tests/fixtures/make_tiny_models.py")
    return path


@pytest.fixture(scope="session", params=["onnx", pytest.param("torch", marks=pytest.mark.train)])
def upper_body_detector(request: pytest.FixtureRequest, upper_body_detector_onnx: Path) -> Any:
    """The tiny ``upper-body`` detector on each backend, as a ``TinyDetector`` (path, backend): its committed ONNX
    export (every environment) and its PyTorch weights (marked ``train``: the light environment's ``-m "not train"`` deselects that case)."""
    if request.param == "onnx":
        return TinyDetector(upper_body_detector_onnx, "onnx")
    return TinyDetector(request.getfixturevalue("upper_body_detector_weights"), "torch")


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
