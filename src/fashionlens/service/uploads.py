"""Uploaded photos: safe display names, and storage only when the settings enable it."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

__all__ = ["display_name", "store_uploads"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def display_name(filename: str | None, fallback: str) -> str:
    """The client's file name without folders and odd characters (never a server path)."""
    name = Path((filename or "").replace("\\", "/")).name
    name = _UNSAFE.sub("_", name).strip("._")[:120]
    return name or fallback


def store_uploads(storage_dir: Path | None, kind: str, files: dict[str, bytes]) -> Path | None:
    """Write ``files`` (name → bytes) to ``storage_dir/kind/YYYYMMDD/<uuid>/`` when storage is on;
    return that folder (``None`` when storage is off: nothing is kept)."""
    if storage_dir is None:
        return None
    folder = Path(storage_dir) / kind / time.strftime("%Y%m%d") / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / display_name(name, "upload")).write_bytes(data)
    return folder
