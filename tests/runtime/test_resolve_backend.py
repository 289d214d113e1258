"""resolve_backend: the one backend check of the classifier, the detector and the damage head."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashionlens.runtime.backends import BACKEND_NAMES, resolve_backend


def test_resolve_backend(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"")
    assert BACKEND_NAMES == ("auto", "onnx", "torch")
    assert resolve_backend("auto", weights) == "torch"
    assert resolve_backend("torch", weights) == "torch"
    with pytest.raises(FileNotFoundError, match=r"no ONNX export at .*model\.onnx; run: fashionlens export onnx "
                                                r"--detector .*model\.pt"):
        resolve_backend("onnx", weights, export="--detector")
    with pytest.raises(ValueError, match="backend must be auto, onnx or torch; got 'tensorrt'"):
        resolve_backend("tensorrt", weights)
    (tmp_path / "model.onnx").write_bytes(b"")
    assert resolve_backend("auto", weights) == "onnx"
    assert resolve_backend("onnx", weights) == "onnx"
    assert resolve_backend("torch", weights) == "torch"
    assert resolve_backend("auto", tmp_path / "model.onnx") == "onnx"  # an export named directly


def test_every_site_uses_it(random_detector_weights: Path, tmp_path: Path) -> None:
    """The detector and the damage head give the same errors as the classifier backends."""
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.grading.damage import DamageFinder

    with pytest.raises(ValueError, match="backend must be auto, onnx or torch"):
        GarmentDetector(random_detector_weights, backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="fashionlens export onnx --detector"):
        GarmentDetector(random_detector_weights, backend="onnx")
    assert GarmentDetector(random_detector_weights, backend="auto").backend == "torch"
    with pytest.raises(ValueError, match="backend must be auto, onnx or torch"):
        DamageFinder(backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="fashionlens export onnx --damage"):
        DamageFinder(tmp_path / "lonely.pt", backend="onnx")
