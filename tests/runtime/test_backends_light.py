"""Without torch (the light install, ``pip install fashionlens``): the shipped networks load and run on
their ONNX exports, and whatever needs torch says, in one line, which extra to install.

Each test runs in a fresh interpreter where torch, torchvision, timm and onnx cannot be imported
(``sys.modules[name] = None``), so it checks the same thing in the light and the full environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fashionlens.models.registry import DEFAULT_CLASSIFIER, DEFAULT_DAMAGE_MODEL, default_weights_path

#: what only the [train] extra installs, made unimportable in the child interpreter
BLOCKED = ("torch", "torchvision", "timm", "onnx")
TRAIN_EXTRA = "pip install 'fashionlens[train]'"


def _run_without_torch(code: str, *args: str) -> dict:
    """Run ``code`` (which prints one JSON object last) with the train-only modules blocked."""
    prelude = f"import sys\nfor _m in {BLOCKED!r}:\n    sys.modules[_m] = None\n"
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                         text=True, timeout=300, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_shipped_networks_load_and_run_on_onnx_runtime_without_torch() -> None:
    result = _run_without_torch("""
        import json
        import numpy as np
        from fashionlens.runtime.loading import load_model
        from fashionlens.pipeline import preprocess

        classifier = load_model("garment-classifier-lite0", threads=1)      # auto: no torch -> ONNX
        rgb = np.full((300, 200, 3), 235, np.uint8); rgb[40:260, 40:160] = (180, 30, 40)
        probs = classifier.run(preprocess(rgb, classifier.meta)[None], embed=True)
        damage, meta = load_model("damage-segmenter-lite0", threads=1)
        p = damage(np.zeros((1, 3, 64, 96), np.float32))
        detector, detector_meta = load_model("garment-detector-fcos-seg-lite0", threads=1)
        heads = load_model("garment-text-align-lite0")
        print(json.dumps({
            "classifier": type(classifier).__name__, "meta": classifier.meta.name,
            "category_sum": float(probs["category"].sum()), "embedding": list(probs["embedding"].shape),
            "damage": [type(damage).__name__, type(meta).__name__, meta.input_side, list(p.shape),
                       float(np.abs(p.sum(1) - 1).max())],
            "detector": [type(detector).__name__, detector_meta.name],
            "heads": type(heads).__name__, "torch": sys.modules.get("torch") is not None}))
    """)
    assert result["classifier"] == "OnnxBackend" and result["meta"] == DEFAULT_CLASSIFIER
    assert abs(result["category_sum"] - 1) < 1e-4 and result["embedding"] == [1, 1280]
    kind, meta_kind, side, shape, sum_error = result["damage"]
    assert (kind, meta_kind, side, shape) == ("OnnxDamageRunner", "DamageMeta", 640, [1, 5, 64, 96])
    assert sum_error < 1e-4
    assert result["detector"][0] == "OnnxDetector" and result["detector"][1]
    assert result["heads"] == "AlignmentHeads" and result["torch"] is False


def test_weights_paths_load_by_the_kind_their_export_stores(tmp_path: Path) -> None:
    """A ``.pt`` path (whose own header needs torch to read) and an ``.onnx`` path, under neutral names."""
    for name in (DEFAULT_CLASSIFIER, DEFAULT_DAMAGE_MODEL):
        weights = default_weights_path(name)
        stem = "a" if name == DEFAULT_CLASSIFIER else "b"
        shutil.copy(weights, tmp_path / f"{stem}.pt")
        shutil.copy(weights.with_suffix(".onnx"), tmp_path / f"{stem}.onnx")
    result = _run_without_torch("""
        import json
        from fashionlens.runtime.loading import load_model
        a, b = load_model(sys.argv[1] + "/a.pt", threads=1), load_model(sys.argv[1] + "/b.onnx", threads=1)
        print(json.dumps({"a": type(a).__name__, "b": [type(x).__name__ for x in b]}))
    """, str(tmp_path))
    assert result == {"a": "OnnxBackend", "b": ["OnnxDamageRunner", "DamageMeta"]}


def test_what_needs_torch_says_which_extra_in_one_line(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely.pt"  # damage weights without an ONNX export next to them
    shutil.copy(default_weights_path(DEFAULT_DAMAGE_MODEL), lonely)
    result = _run_without_torch("""
        import json
        from fashionlens.grading.damage import DamageFinder
        from fashionlens.models import loading as weights_loading
        from fashionlens.runtime import loading
        from fashionlens.runtime.backends import create_backend

        calls = {
            "weights loader": lambda: weights_loading.load_model("garment-classifier-lite0"),
            "load_model torch": lambda: loading.load_model("damage-segmenter-lite0", backend="torch"),
            "load_model lonely": lambda: loading.load_model(sys.argv[1]),
            "classifier torch backend": lambda: create_backend(backend="torch"),
            "damage finder torch": lambda: DamageFinder(backend="torch"),
            "damage finder lonely": lambda: DamageFinder(sys.argv[1]),
        }
        errors = {}
        for what, call in calls.items():
            try:
                call()
                errors[what] = None
            except Exception as exc:
                errors[what] = [type(exc).__name__, isinstance(exc, RuntimeError), str(exc)]
        print(json.dumps(errors))
    """, str(lonely))
    for what, error in result.items():
        assert error is not None, f"{what}: expected an error without torch"
        kind, is_runtime_error, message = error
        assert kind == "MissingExtraError" and is_runtime_error, (what, error)
        assert TRAIN_EXTRA in message and "\n" not in message, (what, message)
    assert str(lonely) in result["load_model lonely"][2] and str(lonely) in result["damage finder lonely"][2]


def test_onnx_backend_is_chosen_by_name_in_the_full_environment_too() -> None:
    from fashionlens.runtime.backends import OnnxBackend
    from fashionlens.runtime.loading import load_model

    classifier = load_model(DEFAULT_CLASSIFIER, backend="onnx", threads=1)
    assert isinstance(classifier, OnnxBackend) and classifier.meta.name == DEFAULT_CLASSIFIER
    with pytest.raises(ValueError, match="backend must be auto, onnx or torch"):
        load_model(DEFAULT_CLASSIFIER, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_model("nope")


def test_onnx_backend_without_an_export_names_the_export_command(tmp_path: Path) -> None:
    from fashionlens.runtime.loading import load_model

    lonely = tmp_path / "lonely.pt"
    shutil.copy(default_weights_path(DEFAULT_DAMAGE_MODEL), lonely)
    # with torch the .pt's header names its kind (--damage); without it the message lists the three options
    with pytest.raises(FileNotFoundError, match=r"no ONNX export at .*lonely\.onnx.*fashionlens export onnx --\S*damage"):
        load_model(lonely, backend="onnx")
