"""Store an exported ONNX graph's large weight matrices as int8 with block-wise scales, computing in float32.

Weight-only quantisation: :func:`store_weights_int8` replaces every float32 matrix that is only the
weight operand of ``MatMul`` (``B``, shape ``(in, out)``) or only the table of ``Gather`` (an
embedding table, ``(rows, dim)``) by a symmetric int8 copy with one float16 scale per block of
``block`` consecutive input rows of each output column (``MatMul``) or per block of ``table_block``
values of each table row (``Gather``; ``None``: one scale per row), followed by ``Cast`` → ``Mul`` →
``Reshape`` back to the float32 original at the top of the graph. Every input of those nodes is a
constant, so ONNX Runtime folds them once when the session is created: the network then computes
in float32 on weights that differ from the originals by at most half a quantisation step. Unlike
ONNX Runtime's dynamic quantisation (``quantize_dynamic``), activations are never quantised, which
is what keeps a sentence encoder's embeddings within cosine 0.999 of the float32 ones (see the text
encoder's model card). The file shrinks ~4x; memory at run time is that of the float32 weights.
Needs the ``onnx`` package (the ``[train]`` extra): only exports call it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["store_weights_int8"]


def _consumers(graph: Any) -> dict[str, list[tuple[str, int]]]:
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, i))
    return uses


def _blocks(values: np.ndarray, role: str, block: int, table_block: int | None) -> tuple[np.ndarray, int]:
    """``values`` reshaped so that the axis returned holds one block (its scale is the max over it)."""
    if role == "matmul":
        n_in, n_out = values.shape
        b = block if n_in % block == 0 else n_in
        return values.reshape(n_in // b, b, n_out), 1
    rows, dim = values.shape
    b = table_block if table_block and dim % table_block == 0 else dim
    return values.reshape(rows, dim // b, b), 2


def store_weights_int8(proto: Any, *, block: int = 64, table_block: int | None = None,
                       min_elements: int = 1024) -> Any:
    """Rewrite ``proto`` (an ``onnx.ModelProto``) in place and return it; see the module docstring.

    Initializers that are not 2-d float32, smaller than ``min_elements``, or used by anything other
    than a ``MatMul``'s second input or a ``Gather``'s table stay as they are. ``block`` must be
    positive; a matrix whose input size it does not divide gets one scale per column.
    """
    from onnx import TensorProto, helper, numpy_helper

    from fashionlens.runtime.onnx_initializers import (
        Replacement,
        rewrite_float_initializers,
    )

    if block < 1 or (table_block is not None and table_block < 1):
        raise ValueError(f"block sizes: expected positive numbers; got block={block}, table_block={table_block}")
    uses = _consumers(proto.graph)

    def as_int8(init: Any) -> Replacement | None:
        used = uses.get(init.name, [])
        if len(init.dims) != 2 or not used:
            return None
        if all(op == "MatMul" and i == 1 for op, i in used):
            role = "matmul"
        elif all(op == "Gather" and i == 0 for op, i in used):
            role = "table"
        else:
            return None
        values = numpy_helper.to_array(init)
        blocks, axis = _blocks(values, role, block, table_block)
        amax = np.abs(blocks).max(axis=axis, keepdims=True)
        if not np.isfinite(amax).all() or float(amax.max(initial=0.0)) > float(np.finfo(np.float16).max) * 127:
            raise ValueError(f"initializer {init.name!r} has values int8 with float16 scales cannot hold")
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float16)
        scale = np.maximum(scale, np.finfo(np.float16).smallest_subnormal)   # never 0 (tiny blocks)
        codes = np.clip(np.rint(blocks / scale.astype(np.float32)), -127, 127).astype(np.int8)
        name = init.name
        q = numpy_helper.from_array(codes, f"{name}__int8")
        s = numpy_helper.from_array(scale, f"{name}__scale")
        shape = numpy_helper.from_array(np.array(values.shape, np.int64), f"{name}__shape")
        return [q, s, shape], [
            helper.make_node("Cast", [q.name], [f"{name}__codes"], to=TensorProto.FLOAT, name=f"{name}__cast"),
            helper.make_node("Cast", [s.name], [f"{name}__scale32"], to=TensorProto.FLOAT,
                             name=f"{name}__cast_scale"),
            helper.make_node("Mul", [f"{name}__codes", f"{name}__scale32"], [f"{name}__blocks"],
                             name=f"{name}__dequantise"),
            helper.make_node("Reshape", [f"{name}__blocks", shape.name], [name], name=f"{name}__reshape"),
        ]

    return rewrite_float_initializers(proto, as_int8, min_elements=min_elements)
