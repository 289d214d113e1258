"""The public Python API: ``import fashionlens`` is cheap, every exported name resolves, the README's
Python quick start runs as written, and every shipped model loads by name."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fashionlens

README = Path(__file__).resolve().parents[1] / "README.md"


def _quick_start() -> str:
    """The Python block of the README's "Python quick start" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python quick start", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return block


def test_import_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", "import fashionlens, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.stdout.strip() == "False"


def test_registry_listing_and_numpy_heads_do_not_import_torch() -> None:
    code = ("import sys, fashionlens; names = fashionlens.list_models(); "
            "fashionlens.load_model('garment-text-align-lite0'); fashionlens.load_model('rise-grader-lite0'); "
            "print(len(names), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(fashionlens.list_models())), "False"]


def test_every_public_name_resolves() -> None:
    assert fashionlens.__version__
    for name in fashionlens.__all__:
        value = getattr(fashionlens, name)
        assert value is not None, name
        if name != "__version__":
            assert value.__doc__, f"{name}: expected a docstring"
            if name not in ("TagResult", "Garments"):  # result.py's dataclasses document their fields only
                assert ">>>" in value.__doc__, f"{name}: expected an example in its docstring"
    assert set(fashionlens.__all__) <= set(dir(fashionlens))
    from fashionlens.pipeline import Tagger
    from fashionlens.result import Garments, TagResult

    assert (fashionlens.Tagger, fashionlens.TagResult, fashionlens.Garments) == (Tagger, TagResult, Garments)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fashionlens.nope  # noqa: B018
    from fashionlens import pipeline  # submodules still import as before

    assert pipeline.Tagger is Tagger


def test_readme_python_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = _quick_start()
    assert len(snippet.strip().splitlines()) <= 5 and 'load_image("photo.jpg")' in snippet
    rgb = np.full((200, 150, 3), 235, np.uint8)
    rgb[30:180, 30:120] = (40, 70, 160)  # a blue garment on a light backdrop
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=92)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert result.ok and result.path == "photo.jpg"  # type: ignore[attr-defined]
    [category] = result.garments.category  # type: ignore[attr-defined]
    assert category.id in out.getvalue()


@pytest.mark.parametrize("name", fashionlens.list_models())
def test_load_model_for_every_shipped_name(name: str) -> None:
    from fashionlens.models.loading import FORMATS
    from fashionlens.models.registry import MODELS

    model = fashionlens.load_model(name)
    spec = MODELS[name]
    with_torch = importlib.util.find_spec("torch") is not None  # else (light install) the ONNX runners
    if spec.format in ("detector-pt", "damage-pt"):
        module, meta = model
        assert meta.name and (not module.training if with_torch else callable(module))
    else:
        assert model is not None
    if spec.format == "classifier-pt":
        assert model.meta.name == name and (not model.training if with_torch else model.name == "onnx")
    assert spec.format == FORMATS[spec.header].kind
