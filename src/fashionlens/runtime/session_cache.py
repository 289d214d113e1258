"""ONNX Runtime sessions that start fast: each model's optimised graph is kept in a per-machine cache.

Creating a session spends most of its time optimising the graph (constant folding, node fusions,
the CPU-specific NCHWc layout): the seven sessions of ``fashionlens grade`` (detector, RoI mask head,
classifier, damage head, RapidOCR's three models) took about 0.4 s of CPU, and about 0.15 s when their
already-optimised graphs are loaded with optimisation switched off (``docs/performance.md``). ONNX Runtime can write the graph it optimised (``SessionOptions.optimized_model_filepath``,
its documented "offline optimisation"); :func:`cached_session` does that on a model's first use and loads
that file afterwards. The loaded graph is the one the online optimiser produces, run by the same
kernels, so outputs are identical bit for bit (``tests/runtime/test_session_cache.py`` checks it).

The optimised graph is specific to the ONNX Runtime version and to the CPU's instruction set (ONNX
Runtime warns so when it writes one), so it is cached per machine, never shipped: under
``$FASHIONLENS_ONNX_CACHE`` when set (``off`` switches the cache off), else
``$XDG_CACHE_HOME/fashionlens/onnx`` (default ``~/.cache/fashionlens/onnx``). An entry's name holds a
hash of everything the optimised graph depends on — the model file (resolved path, size, modification
time), the ONNX Runtime version, the optimisation level and the CPU (machine, processor, instruction-set
flags) — so a changed model, an upgrade or another CPU makes a new entry; a newer entry for a model
path replaces the older ones, and the least recently used entries are removed when the folder outgrows
:data:`MAX_CACHE_BYTES` (entries of models that moved or were deleted, e.g. a test's temporary copies,
go that way). Entries are written to a temporary name and renamed, so concurrent
processes never read a partial file. A cache that cannot be written, or an entry that cannot be
loaded, only costs the time saved: the session is then made from the model file as without a cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "MAX_CACHE_BYTES", "cache_dir", "cached_session", "optimised_model_path", "session_options"]

#: environment variable: the cache folder, or ``off`` (also ``0``, ``false``, ``no``) for no cache
CACHE_ENV = "FASHIONLENS_ONNX_CACHE"
_OFF = frozenset({"off", "0", "false", "no", "none"})
#: the cache's size limit: one install's graphs take about 155 MB (``grade``'s seven 64 MB, the text encoder 87 MB)
MAX_CACHE_BYTES = 512 * 2**20
_PROVIDERS = ["CPUExecutionProvider"]


def cache_dir() -> Path | None:
    """The folder of optimised graphs (see the module docstring), or None when the cache is off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fashionlens" / "onnx"


def session_options(*, threads: int, level: str = "ORT_ENABLE_ALL", cpu_mem_arena: bool = True) -> Any:
    """ONNX Runtime session options: ``threads`` intra-op threads, one inter-op thread, optimisation
    ``level`` (a ``GraphOptimizationLevel`` name)."""
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"expected threads >= 1; got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.enable_cpu_mem_arena = cpu_mem_arena
    return options


@lru_cache(maxsize=1)
def _machine() -> str:
    """The CPU as far as the optimised graph depends on it: architecture, processor and its flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[-1].strip()
                    break
    except OSError:  # not Linux: the processor string has to do
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


#: the name of a cache entry: ``<model stem>-<12 hex: the model's path>-<16 hex: its content and the runtime>.onnx``;
#: only files named so are ever replaced or trimmed (the folder may hold other files)
_ENTRY_NAME = re.compile(r"^.+-[0-9a-f]{12}-[0-9a-f]{16}\.onnx$")
#: a write interrupted (process killed) leaves ``.<entry>.<pid>.<hex>.tmp``; removed by the next trim after an hour
_STALE_TMP_SECONDS = 3600
_EDGE_BYTES = 1 << 20


def _content_digest(path: Path, size: int) -> str:
    """SHA-256 of the model file's first and last MiB: a file replaced by another of the same size and time stamp
    (``cp -p``, ``tar x``) still gets a new entry. The whole file is not hashed, to keep start-up short."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            fh.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            h.update(fh.read(_EDGE_BYTES))
    return h.hexdigest()


def _entry(folder: Path, model: Path, level: str) -> tuple[Path, str]:
    """``(the cache entry of model, the prefix every entry of that model path has)``."""
    import onnxruntime as ort

    resolved = model.resolve()
    stat = resolved.stat()
    where = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    what = hashlib.sha256("\n".join([ort.__version__, str(stat.st_size), str(stat.st_mtime_ns),
                                     _content_digest(resolved, stat.st_size), level, _machine()])
                          .encode()).hexdigest()[:16]
    prefix = f"{model.stem}-{where}-"
    return folder / f"{prefix}{what}.onnx", prefix


def _entries(folder: Path) -> list[Path]:
    """The cache entries in ``folder`` (files named as :data:`_ENTRY_NAME` says; nothing else is touched)."""
    try:
        return [p for p in folder.iterdir() if _ENTRY_NAME.match(p.name)]
    except OSError:
        return []


def _write_entry(model: Path, entry: Path, prefix: str, options: Any) -> Any:
    """A session of ``model`` (``options`` as given) that also writes its optimised graph to ``entry``;
    older entries of the same model path are removed. Raises OSError when the folder cannot be written."""
    import onnxruntime as ort

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.touch()  # OSError here, not inside ONNX Runtime, when the folder cannot be written
    options.optimized_model_filepath = str(tmp)
    options.log_severity_level = 3  # not the "hardware specific optimisations" warning: that is why it is cached per machine
    try:
        session = ort.InferenceSession(str(model), options, providers=_PROVIDERS)
        os.replace(tmp, entry)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # housekeeping: a failure here (another user's files, a read-only folder) costs nothing but space
        for old in _entries(entry.parent):
            if old != entry and old.name.startswith(prefix):
                old.unlink(missing_ok=True)
        _trim(entry.parent, keep=entry)
    except OSError as exc:
        log.debug("ONNX cache %s not tidied (%s)", entry.parent, exc)
    return session


def _trim(folder: Path, *, keep: Path) -> None:
    """Remove the least recently used entries (oldest modification time: :func:`_used` renews it) until
    the folder holds at most :data:`MAX_CACHE_BYTES`; ``keep`` stays."""
    now = time.time()
    for tmp in folder.glob(".*.tmp"):  # left by a process killed while writing
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                tmp.unlink(missing_ok=True)
        except OSError:
            continue
    entries = []
    for path in _entries(folder):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile by another process
            continue
        entries.append((stat.st_mtime_ns, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= MAX_CACHE_BYTES:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size


def _used(entry: Path) -> Path:
    """``entry``, marked as just used (its modification time), for :func:`_trim`."""
    try:
        os.utime(entry)
    except OSError:  # a read-only cache still serves
        pass
    return entry


def _cached(model: Path, level: str) -> tuple[Path, str] | None:
    folder = cache_dir()
    if folder is None or level == "ORT_DISABLE_ALL":
        return None
    try:
        return _entry(folder, model, level)
    except OSError:  # the model file itself is missing: the session's own error says so
        return None


def cached_session(model: str | Path, *, threads: int, level: str = "ORT_ENABLE_ALL",
                   cpu_mem_arena: bool = True) -> Any:
    """An ONNX Runtime CPU session of ``model`` (:func:`session_options`), created from the cached
    optimised graph when there is one, else from ``model`` (writing the cache entry)."""
    import onnxruntime as ort

    path = Path(model)
    found = _cached(path, level)
    if found is not None:
        entry, prefix = found
        if entry.is_file():
            try:
                return ort.InferenceSession(str(_used(entry)), session_options(threads=threads, level="ORT_DISABLE_ALL",
                                                                         cpu_mem_arena=cpu_mem_arena),
                                            providers=_PROVIDERS)
            except Exception as exc:  # noqa: BLE001 - damaged, or removed meanwhile: drop it and optimise again
                log.warning("ONNX cache entry %s not loaded (%s); optimising %s again", entry, exc, path)
                entry.unlink(missing_ok=True)
        try:
            return _write_entry(path, entry, prefix, session_options(threads=threads, level=level,
                                                                     cpu_mem_arena=cpu_mem_arena))
        except OSError as exc:
            log.debug("ONNX cache %s not written (%s)", entry.parent, exc)
    return ort.InferenceSession(str(path), session_options(threads=threads, level=level, cpu_mem_arena=cpu_mem_arena),
                                providers=_PROVIDERS)


def optimised_model_path(model: str | Path) -> Path:
    """The cached optimised graph of ``model`` (written first when missing), for a library that creates
    its own sessions with every optimisation on (RapidOCR): loading it optimises an already optimised
    graph, which gives the same graph (outputs identical bit for bit, ``tests/runtime``) in a fraction
    of the time. ``model`` itself when the cache is off or cannot be written."""
    path = Path(model)
    found = _cached(path, "ORT_ENABLE_ALL")
    if found is None:
        return path
    entry, prefix = found
    if entry.is_file():
        return _used(entry)
    try:
        _write_entry(path, entry, prefix, session_options(threads=1))
    except OSError as exc:
        log.debug("ONNX cache %s not written (%s)", entry.parent, exc)
        return path
    return entry
