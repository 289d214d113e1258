"""Int8 quantisation of a classifier ONNX export: metadata kept, outputs close to float, errors.

A tiny classifier-shaped network (conv stem, depthwise conv, pooled features → two heads +
embedding, 32 px input) stands in for the shipped model so that each test takes well under a second.

Lab code, not collected by the project's test run (``testpaths = ["tests"]``); run it with
``.venv/bin/python -m pytest experiments/scripts/test_onnx_quantize.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from fashionlens.models.heads import HeadSpec
from fashionlens.models.meta import EMBEDDING_OUTPUT, ClassifierMeta
from fashionlens.runtime.backends import OnnxBackend, create_backend

sys.path.insert(0, str(Path(__file__).resolve().parent))  # onnx_quantize.py lives beside this file
from onnx_quantize import (  # noqa: E402
    QUANT_KEY,
    QuantizeSettings,
    calibration_batches,
    int8_path_for,
    quantize_classifier_onnx,
    read_quantization_info,
)

SIZE = 32
META = ClassifierMeta(name="tiny", version="test", backbone="tiny", input_size=SIZE,
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                      heads=(HeadSpec("category", "single", ("a", "b", "c", "d")),
                             HeadSpec("colours", "multi", ("red", "blue", "green"))))


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU6(),
                                  nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
                                  nn.Conv2d(16, 32, 1), nn.ReLU6())
        self.category = nn.Linear(32, 4)
        self.colours = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.stem(x).mean((2, 3))
        emb = f / f.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return self.category(f).softmax(-1), self.colours(f).sigmoid(), emb


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour fields of assorted sizes (photo-like statistics, not white noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = rng.integers(24, 64, 2)
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        big = np.kron(small, np.ones((16, 16, 1)))[:h, :w]
        out.append(np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    names = ["category", "colours", EMBEDDING_OUTPUT]
    torch.onnx.export(_Tiny().eval(), (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["images"],
                      output_names=names, dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "fashionlens_meta", json.dumps(META.to_dict())
    onnx.save(proto, str(path))
    return path


def _outputs(path: Path, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    backend = OnnxBackend(path, threads=1)
    return backend.run(np.concatenate(calibration_batches(images, json.dumps(META.to_dict()))), embed=True)


@pytest.mark.parametrize("settings", [
    QuantizeSettings(),
    QuantizeSettings(reduce_range=True, calibration_method="percentile"),
    QuantizeSettings(keep_float_ops=("Gemm",), keep_float_first_conv=True),
    QuantizeSettings(mode="dynamic"),
], ids=["static", "static-reduce-percentile", "static-float-heads", "dynamic"])
def test_quantised_outputs_close_to_float(tiny_export: Path, tmp_path: Path, settings: QuantizeSettings) -> None:
    out = quantize_classifier_onnx(tiny_export, tmp_path / "q.onnx", calibration_images=_images(24),
                                   settings=settings)
    test_images = _images(16, seed=1)
    fp, q = _outputs(tiny_export, test_images), _outputs(out, test_images)
    assert set(fp) == set(q) == {"category", "colours", EMBEDDING_OUTPUT}
    for name in fp:
        assert q[name].shape == fp[name].shape and q[name].dtype == np.float32, name
        np.testing.assert_allclose(q[name], fp[name], atol=0.05, err_msg=name)
    # quantisation really happened: integer operators/QDQ pairs in the graph, and outputs not bit-identical
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert ops & {"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}, ops
    assert not np.array_equal(q["category"], fp["category"])


def test_metadata_kept_and_default_path(tiny_export: Path) -> None:
    out = quantize_classifier_onnx(tiny_export, calibration_images=_images(8))
    assert out == tiny_export.with_name("tiny.int8.onnx") == int8_path_for(tiny_export)
    backend = create_backend(out)  # an .onnx path selects ONNX Runtime
    assert backend.name == "onnx"
    assert backend.meta == META
    info = read_quantization_info(out)
    assert info is not None
    assert info["mode"] == "static" and info["calibration_images"] == 8 and info["source"] == "tiny.onnx"
    assert read_quantization_info(tiny_export) is None


def test_keep_float_ops_leaves_those_nodes_float(tiny_export: Path, tmp_path: Path) -> None:
    out = quantize_classifier_onnx(tiny_export, tmp_path / "q.onnx", calibration_images=_images(8),
                                   settings=QuantizeSettings(keep_float_ops=("Gemm",)))
    graph = onnx.load(str(out)).graph
    produced_by = {o: n for n in graph.node for o in n.output}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 2
    for g in gemms:  # the Gemm's weight is a float initializer, not the output of a DequantizeLinear
        assert g.input[1] not in produced_by or produced_by[g.input[1]].op_type != "DequantizeLinear"
    assert json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}[QUANT_KEY])[
        "keep_float_ops"] == ["Gemm"]


def test_static_without_calibration_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    for images in (None, []):
        with pytest.raises(ValueError, match="calibration_images"):
            quantize_classifier_onnx(tiny_export, tmp_path / "q.onnx", calibration_images=images)
    assert not (tmp_path / "q.onnx").exists()


def test_quantising_twice_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    once = quantize_classifier_onnx(tiny_export, tmp_path / "once.onnx", settings=QuantizeSettings(mode="dynamic"))
    with pytest.raises(ValueError, match="already quantised"):
        quantize_classifier_onnx(once, tmp_path / "twice.onnx", settings=QuantizeSettings(mode="dynamic"))


def test_not_a_fashionlens_export(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    torch.onnx.export(nn.Linear(4, 2).eval(), (torch.zeros(1, 4),), str(path), dynamo=False)
    with pytest.raises(ValueError, match="not a fashionlens classifier export"):
        quantize_classifier_onnx(path, settings=QuantizeSettings(mode="dynamic"))
    with pytest.raises(FileNotFoundError, match="no ONNX export"):
        quantize_classifier_onnx(tmp_path / "missing.onnx", settings=QuantizeSettings(mode="dynamic"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "fp16"}, "mode"),
    ({"calibration_method": "mse"}, "calibration_method"),
    ({"weight_type": "int4"}, "weight_type"),
])
def test_settings_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuantizeSettings(**kwargs)


def test_keep_float_ops_must_be_a_tuple() -> None:
    with pytest.raises(TypeError, match="keep_float_ops"):
        QuantizeSettings(keep_float_ops="Gemm")  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "expected"), [
    ("m.onnx", "m.int8.onnx"), ("dir/garment-classifier-lite0.onnx", "dir/garment-classifier-lite0.int8.onnx"),
])
def test_int8_path_for(path: str, expected: str) -> None:
    assert int8_path_for(path) == Path(expected)


def test_int8_path_for_rejects_other_files() -> None:
    with pytest.raises(ValueError, match=r"\.onnx"):
        int8_path_for("model.pt")


def test_calibration_batches_shapes_and_errors() -> None:
    meta_json = json.dumps(META.to_dict())
    batches = calibration_batches(_images(5), meta_json, batch_size=2)
    assert [b.shape for b in batches] == [(2, 3, SIZE, SIZE), (2, 3, SIZE, SIZE), (1, 3, SIZE, SIZE)]
    assert all(b.dtype == np.float32 for b in batches)
    assert calibration_batches([], meta_json) == []
    with pytest.raises(ValueError, match="calibration image 0"):
        calibration_batches([np.zeros((8, 8), np.uint8)], meta_json)
    with pytest.raises(ValueError, match="batch_size"):
        calibration_batches(_images(1), meta_json, batch_size=0)
