"""JSON sidecars next to weights files (calibration, street priors): written atomically, read with one
clear error.

A sidecar is a small JSON document stored beside the weights it belongs to (``<weights>.<kind>.json``), so
it travels with them without re-exporting them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashionlens.io.atomic import atomic_write_bytes

__all__ = ["read_sidecar", "write_sidecar"]


def write_sidecar(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``path`` (atomically: a temporary file renamed over it)."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    return path


def read_sidecar(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object at ``path``; ``ValueError`` naming ``what`` (e.g. ``"calibration"``) and the path when
    it cannot be read, is not JSON or is not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: expected a JSON object, got {type(data).__name__}")
    return data
