"""Weight files written atomically (temporary name, then rename) and read back with a format check.

* ``.npz`` heads (NumPy only: the alignment heads, the grading heads): named arrays plus a JSON
  header ``{"format": ..., "meta": {...}}`` stored as the ``__meta__`` byte array;
* ``.pt`` networks (the classifier, the detector, the damage head): ``{"format", "meta",
  "state_dict"}`` with floating-point tensors in fp16 by default.

:func:`stored_format` reads a file's ``format`` without building its model
(:func:`fashionlens.models.loading.load_model` uses it to pick the loader); :func:`npz_format` reads
it from ``.npz`` heads only, without torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.atomic import atomic_write


def save_npz_weights(path: str | os.PathLike[str], *, fmt: str, meta: Mapping[str, Any],
                     arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` (dtypes as given) and the header to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = dict(arrays)
    header = json.dumps({"format": fmt, "meta": dict(meta)})
    blob["__meta__"] = np.frombuffer(header.encode("utf-8"), dtype=np.uint8)
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file object: np.savez would add ".npz" to a name
            np.savez(fh, **blob)

    return atomic_write(path, write)


def load_npz_weights(path: str | os.PathLike[str], *, fmt: str, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :func:`save_npz_weights` with format ``fmt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: expected a {fmt} .npz file, could not read it ({exc})") from None
    if header.get("format") != fmt:
        raise ValueError(f"{path}: expected format {fmt}; got {header.get('format')!r}")
    return header["meta"], arrays


def save_torch_weights(path: str | os.PathLike[str], *, fmt: str, meta: Mapping[str, Any], state_dict: Mapping[str, Any],
                       half: bool = True) -> Path:
    """Write ``{format, meta, state_dict}`` atomically; floating-point tensors in fp16 when ``half``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: torch.save({"format": fmt, "meta": dict(meta), "state_dict": state}, tmp))


def load_torch_weights(path: str | os.PathLike[str], *, fmt: str, map_location: str = "cpu"
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, state_dict)`` of a file written by :func:`save_torch_weights` with format ``fmt``."""
    import torch

    path = Path(path)
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: expected a {fmt} file, could not read it ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path}: expected a {fmt} file, got {got!r}")
    return blob["meta"], blob["state_dict"]


def npz_format(path: str | os.PathLike[str]) -> str | None:
    """The ``format`` header of ``.npz`` heads, None for a torch.save archive (whose header needs torch
    to read: :func:`stored_format`); ``ValueError`` when the file is neither or has no header. NumPy only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    with path.open("rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"  # both .npz and torch.save files are zip archives
    if not is_zip:
        raise ValueError(f"{path}: not a fashionlens weights file (neither .npz nor torch.save zip)")
    header: Any = None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" in z.files:  # a torch.save archive has no such member
                header = json.loads(z["__meta__"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError):  # JSON and decoding errors are ValueErrors
        header = None
    if header is None:
        return None
    fmt = header.get("format") if isinstance(header, dict) else None
    if not isinstance(fmt, str):
        raise ValueError(f"{path}: .npz weights without a format header")
    return fmt


def stored_format(path: str | os.PathLike[str]) -> str:
    """The ``format`` header of a weights file (``.npz`` heads or a ``.pt`` network), without
    building its model; ``ValueError`` when the file is neither or has no header. A ``.pt`` file
    needs torch to read (the ``[train]`` extra).

    >>> stored_format("garment-text-align-lite0.npz")   # doctest: +SKIP
    'fashionlens/alignment-heads/v1'
    """
    path = Path(path)
    fmt = npz_format(path)
    if fmt is not None:
        return fmt
    import torch

    try:  # mmap: the tensors' bytes are mapped, not read
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a fashionlens weights file, could not read it ({exc})") from exc
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if not isinstance(fmt, str):
        raise ValueError(f"{path}: not a fashionlens weights file (no format header; got {type(blob).__name__})")
    return fmt
