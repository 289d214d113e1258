"""Garment embeddings in result records: encode a vector as compact JSON and read it back.

A garment embedding is the classifier backbone's pooled features, L2-normalised (1280 numbers for
the default EfficientNet-Lite0 classifier). In a ``fashionlens/result/v1`` garment (``fashionlens tag
--embed``) it is stored as::

    "embedding": {"dim": 1280, "dtype": "float16", "encoding": "base64", "data": "<base64 of the
                  little-endian float16 bytes>"}

— 3,416 characters per garment instead of ~16,000 for a JSON list of floats. float16 keeps about
three significant digits: cosine similarities computed from decoded vectors differ from the float32
ones by less than 1e-3. Import-light (NumPy only), so readers of tag results need neither torch nor FAISS.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["decode_embedding", "encode_embedding", "l2_normalise"]

_DTYPES = {"float16": "<f2", "float32": "<f4"}


def l2_normalise(x: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (``(n, d)`` or ``(d,)``) scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


def encode_embedding(vector: np.ndarray, *, dtype: str = "float16") -> dict[str, Any]:
    """One ``(d,)`` vector → the JSON-ready dict above (``dtype``: ``float16`` or ``float32``)."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}; got {dtype!r}")
    v = np.asarray(vector)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"embedding: expected a non-empty 1-D vector; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("embedding: expected finite numbers; got NaN or inf")
    raw = v.astype(_DTYPES[dtype]).tobytes()
    return {"dim": int(v.size), "dtype": dtype, "encoding": "base64", "data": base64.b64encode(raw).decode("ascii")}


def decode_embedding(obj: Mapping[str, Any] | list[float]) -> np.ndarray:
    """A stored embedding (the dict above, or a plain list of numbers) → ``(d,)`` float32."""
    if isinstance(obj, (list, tuple)):
        v = np.asarray(obj, dtype=np.float32)
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"embedding: expected a non-empty list of numbers; got shape {v.shape}")
        return v
    if not isinstance(obj, Mapping):
        raise TypeError(f"embedding: expected a dict with dim/dtype/data or a list; got {type(obj).__name__}")
    missing = [k for k in ("dim", "dtype", "data") if k not in obj]
    if missing:
        raise ValueError(f"embedding: expected keys dim, dtype, data; missing {missing}")
    if obj["dtype"] not in _DTYPES:
        raise ValueError(f"embedding: expected dtype in {sorted(_DTYPES)}; got {obj['dtype']!r}")
    if obj.get("encoding", "base64") != "base64":
        raise ValueError(f"embedding: expected encoding 'base64'; got {obj.get('encoding')!r}")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"embedding: data is not valid base64 ({exc})") from None
    v = np.frombuffer(raw, dtype=_DTYPES[obj["dtype"]])
    if v.size != int(obj["dim"]):
        raise ValueError(f"embedding: expected {obj['dim']} values (dim); got {v.size}")
    return v.astype(np.float32)
