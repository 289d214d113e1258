"""Store an exported ONNX graph's large float weights as float16, computing in float32.

The shipped ``.pt`` weights are float16 already, so an fp32 export doubles the file for no gain.
:func:`store_weights_fp16` rewrites every float32 initializer with at least ``min_elements``
values as a float16 initializer followed by a ``Cast`` to float32 at the top of the graph; ONNX
Runtime folds the casts once when the session is created, so the network computes in float32
exactly as the PyTorch model does on its (float16-stored) weights. Needs the ``onnx`` package
(the ``[train]`` extra): only exports call it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["store_weights_fp16"]


def store_weights_fp16(proto: Any, *, min_elements: int = 1024) -> Any:
    """Rewrite ``proto`` (an ``onnx.ModelProto``) in place and return it; see the module docstring.

    Initializers that are not float32, or smaller than ``min_elements`` (biases, norm scales),
    stay as they are. Values outside float16's range raise ``ValueError`` instead of silently
    becoming ``inf``.
    """
    from onnx import TensorProto, helper, numpy_helper

    from fashionlens.runtime.onnx_initializers import (
        Replacement,
        rewrite_float_initializers,
    )

    def as_fp16(init: Any) -> Replacement:
        values = numpy_helper.to_array(init)
        if np.abs(values).max(initial=0.0) > np.finfo(np.float16).max:
            raise ValueError(f"initializer {init.name!r} has values beyond float16's range")
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{init.name}__fp16")
        cast = helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"{init.name}__cast")
        return [half], [cast]

    return rewrite_float_initializers(proto, as_fp16, min_elements=min_elements)
