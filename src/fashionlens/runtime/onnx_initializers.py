"""The rewrite that :mod:`fashionlens.runtime.onnx_fp16` and :mod:`fashionlens.runtime.onnx_int8` share:
replace a graph's large float32 initializers by a compact stored form and the nodes that rebuild the
float32 tensor at the top of the graph (ONNX Runtime folds those constant nodes once, when a session is
created). Needs the ``onnx`` package (the ``[train]`` extra): only exports call it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Replacement", "rewrite_float_initializers"]

#: what replaces one initializer: ``(initializers stored instead, nodes that compute the original from them)``
Replacement = tuple[list[Any], list[Any]]


def rewrite_float_initializers(proto: Any, replace: Callable[[Any], Replacement | None], *,
                               min_elements: int) -> Any:
    """Rewrite ``proto`` (an ``onnx.ModelProto``) in place, check it and return it.

    ``replace(initializer)`` is called for every float32 initializer with at least ``min_elements``
    values, in graph order; it returns None to keep the initializer, or the initializers to store instead
    and the nodes that compute the original tensor (under its name) from them. Those nodes go at the top of
    the graph, in initializer order, before every node that was there.
    """
    import math

    import onnx
    from onnx import TensorProto

    graph = proto.graph
    kept: list[Any] = []
    prelude: list[Any] = []
    for init in graph.initializer:
        replacement = None
        if init.data_type == TensorProto.FLOAT and math.prod(init.dims) >= min_elements:
            replacement = replace(init)
        if replacement is None:
            kept.append(init)
            continue
        stored, nodes = replacement
        kept += stored
        prelude += nodes
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(prelude + nodes)
    onnx.checker.check_model(proto)
    return proto
