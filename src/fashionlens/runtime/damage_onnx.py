"""The damage head in ONNX Runtime: a runner that needs onnxruntime and NumPy only (no torch).

The exported graph (:func:`fashionlens.runtime.damage_export.export_damage_onnx`) takes ``images``
``(B, 3, H, W)`` (H, W multiples of 32; dynamic) and returns ``probs`` ``(B, K, H, W)`` — softmax and
upsampling included — so the runner is a session call. The head's :class:`DamageMeta` (input side,
normalisation, decoding settings, region verifier) is stored in the export's custom metadata under
:data:`fashionlens.runtime.backends.ONNX_META_KEY`. :class:`fashionlens.grading.damage.DamageFinder`
uses the runner when ``<weights>.onnx`` sits next to the weights (``backend="auto"``).

``export_damage_onnx`` is still importable from here (it is loaded from
:mod:`fashionlens.runtime.damage_export`, with torch, on first access).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.damage_meta import DamageMeta
from fashionlens.runtime.backends import ONNX_META_KEY, onnx_path_for, onnx_session, onnx_stored_meta

__all__ = ["OnnxDamageRunner", "damage_onnx_path", "stale_export_hint"]  # and export_damage_onnx, lazily

#: where the export of a damage head's weights lives: next to them, ``.onnx`` (as for every model)
damage_onnx_path = onnx_path_for


def stale_export_hint(onnx_path: str | Path) -> str:
    """Why an export lacks the damage meta, and the command that writes one with it."""
    path = Path(onnx_path)
    return (f"{path} has no stored damage meta (exported before exports stored it); re-export it: "
            f"fashionlens export onnx --damage {path.with_suffix('.pt')}")


class OnnxDamageRunner:
    """``runner(x)``: ``(B, 3, H, W)`` float32 array → ``(B, K, H, W)`` probabilities.

    ``meta``: the :class:`DamageMeta` stored in the export, or None for an export written before the
    meta was stored there (re-export it: ``fashionlens export onnx --damage <weights>.pt``).
    """

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(onnx_path)
        self.session = onnx_session(self.path, threads=threads)
        raw = onnx_stored_meta(self.session)
        try:
            self.meta: DamageMeta | None = None if raw is None else DamageMeta.from_dict(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.path}: its {ONNX_META_KEY} metadata is not a damage head's meta ({exc})") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["probs"], {"images": np.ascontiguousarray(x, dtype=np.float32)})[0]


def __getattr__(name: str) -> Any:
    if name == "export_damage_onnx":  # the export needs torch: imported on first use only
        from fashionlens.runtime.damage_export import export_damage_onnx

        return export_damage_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
