"""``store_weights_fp16`` on a tiny graph: large float32 weights become float16 (the file about halves),
the outputs stay those of the float16-rounded weights computed in float32, small or non-float
initializers are kept, and values beyond float16's range raise instead of becoming ``inf``.
Export-side code: needs ``onnx`` (the ``[train]`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fashionlens.runtime.onnx_fp16 import store_weights_fp16  # noqa: E402

IN, OUT = 64, 48  # W has 3,072 values (≥ the 1,024 default), B 48 (kept as float32)


def _tiny(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """``y = x @ W + B``, then a Reshape by an int64 shape initializer (a non-float weight)."""
    inits = [numpy_helper.from_array(weight.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "B"),
             numpy_helper.from_array(np.array([-1, OUT], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["yb"]),
             helper.make_node("Reshape", ["yb", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", OUT])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_round_trip_halves_the_weights_and_keeps_the_outputs() -> None:
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(0, 0.2, (IN, OUT)), rng.normal(0, 0.1, OUT)
    x = rng.normal(size=(5, IN)).astype(np.float32)
    model = _tiny(weight, bias)
    before, y32 = model.ByteSize(), _run(model, x)

    assert store_weights_fp16(model) is model  # in place
    inits = _inits(model)
    assert inits["W__fp16"].dtype == np.float16 and "W" not in inits  # W is now the Cast's output
    assert inits["B"].dtype == np.float32 and inits["shape"].dtype == np.int64  # small and non-float: kept
    assert model.graph.node[0].op_type == "Cast" and model.graph.node[0].output == ["W"]
    weight_bytes = IN * OUT * 4
    assert before - model.ByteSize() == pytest.approx(weight_bytes / 2, rel=0.02)  # W's bytes halved
    assert model.ByteSize() < 0.6 * before

    y16 = _run(model, x)
    # exactly the float16-rounded weights, computed in float32 ...
    rounded = x @ weight.astype(np.float32).astype(np.float16).astype(np.float32) + bias.astype(np.float32)
    np.testing.assert_allclose(y16, rounded, rtol=0, atol=1e-5)
    # ... which is close to, but not the same as, the float32 original (the rounding is real)
    np.testing.assert_allclose(y16, y32, rtol=0, atol=1e-2)
    assert np.abs(y16 - y32).max() > 0


def test_weights_that_are_float16_values_give_the_same_outputs() -> None:
    """What the shipped exports rely on: the fp16 .pt values survive fp16 storage exactly."""
    rng = np.random.default_rng(1)
    weight = rng.normal(0, 0.2, (IN, OUT)).astype(np.float16).astype(np.float32)
    model = _tiny(weight, rng.normal(0, 0.1, OUT))
    x = rng.normal(size=(3, IN)).astype(np.float32)
    y32 = _run(model, x)
    np.testing.assert_allclose(_run(store_weights_fp16(model), x), y32, rtol=0, atol=1e-6)


def test_min_elements_decides_which_weights_are_stored_as_float16() -> None:
    rng = np.random.default_rng(2)
    model = _tiny(rng.normal(size=(IN, OUT)), rng.normal(size=OUT))
    store_weights_fp16(model, min_elements=IN * OUT + 1)  # W is now "small"
    assert {n: a.dtype for n, a in _inits(model).items()} == {"W": np.float32, "B": np.float32, "shape": np.int64}
    assert all(n.op_type != "Cast" for n in model.graph.node)


def test_values_beyond_float16_range_raise_and_leave_the_graph_alone() -> None:
    weight = np.zeros((IN, OUT))
    weight[3, 7] = 1e5  # float16's largest finite value is 65504
    model = _tiny(weight, np.zeros(OUT))
    before = model.SerializeToString()
    with pytest.raises(ValueError, match="'W' has values beyond float16's range"):
        store_weights_fp16(model)
    assert model.SerializeToString() == before
