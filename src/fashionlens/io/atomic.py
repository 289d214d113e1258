"""Files written all or nothing: under a temporary name in the same folder, flushed to disk, then
renamed over the target with :func:`os.replace` (atomic on POSIX and Windows). A reader sees the old
file or the new one, never half of one; an interrupted write leaves a temporary file (its name
starts with :data:`TMP_PREFIX`), which the writer's owner may sweep.

>>> atomic_write_bytes(Path("out.json"), b"{}")                  # doctest: +SKIP
>>> atomic_write(Path("model.pt"), lambda tmp: torch.save(obj, tmp))   # doctest: +SKIP
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["TMP_PREFIX", "atomic_write", "atomic_write_bytes", "fsync_dir", "temporary_path"]

#: temporary files written here start with this (``.tmp-<random>-<final name>``)
TMP_PREFIX = ".tmp-"


def temporary_path(final: Path) -> Path:
    """A fresh temporary name for ``final``, in its folder (so the rename stays on one file system)."""
    return final.parent / f"{TMP_PREFIX}{secrets.token_hex(6)}-{final.name}"


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_write(final: str | os.PathLike[str], write: Callable[[Path], object], *, fsync: bool = True,
                 sync_dir: bool = False) -> Path:
    """Have ``write(tmp)`` produce the file under a temporary name, then rename it to ``final``.

    ``fsync`` flushes the file before the rename (durable once this returns); ``sync_dir`` also
    flushes the folder entry. On any exception (``KeyboardInterrupt`` included) the temporary file
    is removed, ``final`` is left as it was, and the exception propagates.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        write(tmp)
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(final.parent)
    return final


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes, *, fsync: bool = True,
                       sync_dir: bool = False) -> Path:
    """Write ``data`` to ``final`` all or nothing (see :func:`atomic_write`)."""
    return atomic_write(final, lambda tmp: tmp.write_bytes(data), fsync=fsync, sync_dir=sync_dir)
