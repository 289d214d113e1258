"""Inference runtimes: the same classifier run by PyTorch or ONNX Runtime."""

from fashionlens.runtime.backends import (
    ClassifierBackend,
    OnnxBackend,
    TorchBackend,
    create_backend,
)

__all__ = ["ClassifierBackend", "OnnxBackend", "TorchBackend", "create_backend"]
