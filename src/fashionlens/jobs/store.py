"""Resumable tag jobs: results in atomically committed chunks (JSONL and Parquet) plus a job manifest.

A job folder holds::

    DIR/job.json          the manifest (schema ``fashionlens/tag-job/v1``): input-list fingerprint, settings,
                          model, chunk size, formats and one entry per *committed* chunk
    DIR/inputs.txt        the input list in job order, one JSON string per line
    DIR/chunks/000007.jsonl, DIR/chunks/000007.parquet
                          chunk k holds the results of inputs [k * chunk_size, (k + 1) * chunk_size), in order
    DIR/.lock             locked (``flock``) by the one process running the job

A chunk is committed when ``job.json`` lists it. Committing writes each chunk file under a temporary
name, fsyncs it, renames it into place and fsyncs the folder; then ``job.json`` is rewritten the same
way. A process killed at any point therefore leaves either a listed chunk whose files are complete, or
leftovers (temporary files, or chunk files not yet listed) that the next run deletes or overwrites.
Readers (:func:`job_status`, :func:`merge_job`, :func:`iter_job_records`) only read listed chunks.

Integrity: ``job.json`` records each chunk file's size, SHA-256 and record count; every chunk entry
carries ``entry_sha256`` (over the entry) and the manifest ``header_sha256`` (over everything but the
chunk list and the ``updated`` time). Resuming (:meth:`TagJob.open`) and reading results
(:func:`merge_job`, :func:`iter_job_records`) check every committed chunk file against them first
and refuse a job whose committed bytes changed (:class:`ChunkDamagedError`), naming the chunk.

The format does not depend on who computes the records: :class:`TagJob` hands out pending chunks
(:meth:`TagJob.pending_chunks`, :meth:`TagJob.chunk_inputs`) and commits finished ones
(:meth:`TagJob.commit_chunk`) from one process; :func:`run_job` is the local engine.
See ``docs/batch_jobs.md``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fashionlens.imageio import iter_image_paths
from fashionlens.io.atomic import TMP_PREFIX, atomic_write, atomic_write_bytes, fsync_dir
from fashionlens.result import TagResult

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Self


log = logging.getLogger(__name__)

JOB_SCHEMA = "fashionlens/tag-job/v1"
JOB_FILE = "job.json"
INPUTS_FILE = "inputs.txt"
CHUNKS_DIR = "chunks"
LOCK_FILE = ".lock"
FORMATS = ("jsonl", "parquet")
DEFAULT_CHUNK_SIZE = 500
#: top-level keys of a ``fashionlens/result/v1`` record (others go to the Parquet column ``extra_json``)
RECORD_KEYS = ("schema", "image", "model", "mode", "garments", "error", "timing_ms")
#: Parquet columns, in order: (name, Arrow type name, meaning)
PARQUET_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("input_index", "int64", "position of the input in the job's input list"),
    ("path", "string", "image.path: the input as given"),
    ("schema", "string", "record schema (fashionlens/result/v1)"),
    ("mode", "string", "detect | whole_image | whole_image_fallback; null for an error record"),
    ("width", "int32", "image width in pixels (after EXIF orientation); null for an error record"),
    ("height", "int32", "image height in pixels; null for an error record"),
    ("n_garments", "int32", "number of garments"),
    ("object_type", "string", "first garment's object type; null when there is none"),
    ("category", "string", "first garment's category id; null when there is none"),
    ("category_score", "float64", "first garment's category score; null when there is none"),
    ("error_type", "string", "error.type (a stable code); null when tagged"),
    ("error_message", "string", "error.message; null when tagged"),
    ("model_name", "string", "model.name"),
    ("model_version", "string", "model.version"),
    ("model_backend", "string", "model.backend"),
    ("model_json", "string", "the model object exactly as in the JSONL record (detector name, version, backend …)"),
    ("garments_json", "string", "the garments list exactly as in the JSONL record, as JSON"),
    ("timing_ms_json", "string", "timing_ms as JSON"),
    ("extra_json", "string", "any further top-level record keys as a JSON object; null when none"),
)

_CHUNK_NAME = re.compile(r"^\d{6,}\.(jsonl|parquet)$")
_TMP_MARK = TMP_PREFIX  # temporaries of io.atomic
#: job.json key sealing everything but ``chunks`` and ``updated`` (chunk entries carry ENTRY_SEAL)
HEADER_SEAL = "header_sha256"
ENTRY_SEAL = "entry_sha256"


class JobError(ValueError):
    """A job folder that cannot be used as asked: another job, other inputs or settings, a damaged
    chunk, a second process on the same job."""


class ChunkDamagedError(JobError):
    """A committed chunk whose files are not what ``job.json`` recorded at the commit (missing, another
    size or SHA-256, other records). ``chunk``: its index; ``problem``: what is wrong, e.g.
    ``chunks/000003.jsonl: checksum differs from job.json``."""

    def __init__(self, folder: Path, chunk: int, problem: str) -> None:
        self.chunk, self.problem = chunk, problem
        super().__init__(f"committed chunk {chunk} of the job in {str(folder)!r} is damaged: {problem}; the job "
                         "folder was changed after the commit: restore the file or start a new job")


# ------------------------------------------------------------------------------ inputs


def read_manifest(path: str | os.PathLike[str]) -> list[Path]:
    """Paths listed in a manifest file: one path per line (blank lines and ``#`` comments skipped) or,
    for a ``.csv`` file, the ``path`` column. Relative paths are relative to the manifest's folder.
    Paths are taken literally (no glob, no folder expansion); missing files become error records later.

    Raises:
        FileNotFoundError: no such manifest.
        ValueError: a CSV without a ``path`` column, a CSV row with an empty path, or no paths at all.
    """
    manifest = Path(path)
    text = manifest.read_text(encoding="utf-8-sig")
    entries: list[str] = []
    if manifest.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise ValueError(f"expected a 'path' column in CSV manifest {str(manifest)!r}; found columns {columns}")
        reader.fieldnames = columns
        for row_number, row in enumerate(reader, start=2):
            value = (row.get("path") or "").strip()
            if not value:
                raise ValueError(f"CSV manifest {str(manifest)!r}, line {row_number}: expected a path, got an empty cell")
            entries.append(value)
    else:
        entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise ValueError(f"expected manifest {str(manifest)!r} to list image paths; found none")
    base = manifest.parent
    out = []
    for entry in entries:
        p = Path(os.path.expanduser(entry))
        out.append(p if p.is_absolute() else base / p)
    return out


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]], *, manifest: str | os.PathLike[str] | None = None
                   ) -> list[Path]:
    """Files, folders and globs (:func:`~fashionlens.imageio.iter_image_paths`) followed by the paths of
    ``manifest`` (:func:`read_manifest`), in order, each path once (the first occurrence wins)."""
    paths = iter_image_paths(inputs) if inputs else []
    if manifest is not None:
        seen = {os.path.normcase(os.path.abspath(p)) for p in paths}
        for p in read_manifest(manifest):
            key = os.path.normcase(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                paths.append(p)
    if not paths:
        raise ValueError("nothing to tag: expected image files, folders, glob patterns or a manifest")
    return paths


# ------------------------------------------------------------------------------ atomic files


_fsync_dir = fsync_dir


def _write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` all or nothing: temporary name, fsync, rename, fsync the folder."""
    atomic_write_bytes(path, data, sync_dir=sync_dir)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _inputs_bytes(inputs: Sequence[str]) -> bytes:
    return "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in inputs).encode("utf-8")


def _normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(settings), sort_keys=True))
    except TypeError as exc:
        raise ValueError(f"expected JSON-serialisable job settings, got {settings!r}: {exc}") from None


# ------------------------------------------------------------------------------ Parquet rows
#
# Parquet goes through fastparquet (Snappy through cramjam) on pandas frames, so the core install needs
# no pyarrow (only the `ray` extra brings it). The files are plain Parquet with the types of
# PARQUET_COLUMNS, every column optional: the schema pyarrow wrote before, so chunks and merged files of
# older jobs read unchanged, and pyarrow, DuckDB or Spark read the new ones.

#: pandas dtype for each type name of :data:`PARQUET_COLUMNS` (nullable: ``None`` is a Parquet null)
_PANDAS_DTYPES: dict[str, Any] = {"int64": "Int64", "int32": "Int32", "float64": "Float64", "string": object}
_PARQUET_MAGIC = b"PAR1"
_COMPRESSION = "SNAPPY"  # as pyarrow's default: every Parquet reader has it


def _fastparquet() -> Any:
    try:
        with warnings.catch_warnings():  # fastparquet reads a pandas option that pandas 3 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            import fastparquet
    except ImportError as exc:  # pragma: no cover - fastparquet is a dependency
        raise RuntimeError("Parquet chunks need fastparquet (pip install 'fastparquet>=2024.11')") from exc
    return fastparquet


def record_to_row(record: Mapping[str, Any], input_index: int) -> dict[str, Any]:
    """One result record as a Parquet row (see :data:`PARQUET_COLUMNS`); :func:`row_to_record` inverts it."""
    image, model = record.get("image") or {}, record.get("model") or {}
    garments = record.get("garments") or []
    first = garments[0] if garments else {}
    error = record.get("error")
    extra = {k: v for k, v in record.items() if k not in RECORD_KEYS}
    return {
        "input_index": input_index, "path": image.get("path"), "schema": record.get("schema"),
        "mode": record.get("mode"), "width": image.get("width"), "height": image.get("height"),
        "n_garments": len(garments), "object_type": first.get("object_type"),
        "category": (first.get("category") or {}).get("id"), "category_score": (first.get("category") or {}).get("score"),
        "error_type": None if error is None else error.get("type"),
        "error_message": None if error is None else error.get("message"),
        "model_name": model.get("name"), "model_version": model.get("version"), "model_backend": model.get("backend"),
        "model_json": json.dumps(model, ensure_ascii=False),
        "garments_json": json.dumps(garments, ensure_ascii=False),
        "timing_ms_json": json.dumps(record.get("timing_ms") or {}, ensure_ascii=False),
        "extra_json": json.dumps(extra, ensure_ascii=False) if extra else None,
    }


def row_to_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The result record a Parquet row was made from (:func:`record_to_row`)."""
    error = None if row["error_type"] is None else {"type": row["error_type"], "message": row["error_message"]}
    record = {"schema": row["schema"], "image": {"path": row["path"], "width": row["width"], "height": row["height"]},
              "model": json.loads(row["model_json"]) if row.get("model_json") else
              {"name": row["model_name"], "version": row["model_version"], "backend": row["model_backend"]},
              "mode": row["mode"], "garments": json.loads(row["garments_json"]), "error": error,
              "timing_ms": json.loads(row["timing_ms_json"])}
    if row.get("extra_json"):
        record.update(json.loads(row["extra_json"]))
    return record


def records_to_frame(records: Sequence[Mapping[str, Any]], *, first_index: int = 0) -> pd.DataFrame:
    """Result records as a pandas DataFrame with the columns of :data:`PARQUET_COLUMNS` in order, in
    nullable dtypes (``Int64``, ``Int32``, ``Float64``; strings as ``object``); row i is input
    ``first_index + i``. :func:`frame_to_rows` gives the rows back."""
    return rows_to_frame([record_to_row(r, first_index + i) for i, r in enumerate(records)])


def rows_to_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Parquet rows (:func:`record_to_row`) as a DataFrame typed like :func:`records_to_frame`."""
    import pandas as pd

    return pd.DataFrame({name: pd.array([row[name] for row in rows], dtype=_PANDAS_DTYPES[kind])
                         for name, kind, _ in PARQUET_COLUMNS})


def frame_to_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a DataFrame with the :data:`PARQUET_COLUMNS` (however a reader typed them) as dicts
    of Python values, nulls (``None``, ``NaN``, ``pd.NA``) as ``None``: what :func:`row_to_record` takes.

    Raises:
        ValueError: a column is missing.
    """
    import pandas as pd

    missing = [name for name, _, _ in PARQUET_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"expected the Parquet columns {[c for c, _, _ in PARQUET_COLUMNS]}; missing {missing}")
    columns = {}
    for name, kind, _ in PARQUET_COLUMNS:
        cast = int if kind.startswith("int") else float if kind.startswith("float") else str
        columns[name] = [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else cast(v)
                         for v in frame[name].tolist()]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


class _MemoryFile(io.BytesIO):
    """A BytesIO that stays readable after fastparquet closes it."""

    def close(self) -> None:
        pass


def _write_frame(path: Path | None, frame: pd.DataFrame) -> bytes:
    """Write ``frame`` (:func:`records_to_frame`) as a Parquet file to ``path``, or, for ``None``,
    to memory; returns the bytes written to memory (``b""`` for a path)."""
    fastparquet = _fastparquet()
    options = {"write_index": False, "has_nulls": True, "object_encoding": "utf8", "compression": _COMPRESSION}
    if path is not None:
        fastparquet.write(str(path), frame, **options)
        return b""
    memory = _MemoryFile()
    fastparquet.write("memory.parquet", frame, open_with=lambda _path, _mode: memory, **options)
    return memory.getvalue()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    return _write_frame(None, frame)


def _parquet_file(data: bytes, name: str) -> Any:
    """``data`` opened as a ``fastparquet.ParquetFile`` after checking it is framed as Parquet
    (``PAR1`` at both ends, a footer that fits), with the columns of :data:`PARQUET_COLUMNS`.

    Raises:
        ValueError: not a readable Parquet file of this format.
    """
    def unreadable(why: str) -> ValueError:
        return ValueError(f"{name}: not a readable Parquet file: {' '.join(why.split())}")

    if len(data) < 12 or data[:4] != _PARQUET_MAGIC or data[-4:] != _PARQUET_MAGIC:
        raise unreadable(f"expected {_PARQUET_MAGIC!r} at the start and the end of {len(data)} bytes")
    footer = int.from_bytes(data[-8:-4], "little")
    if footer > len(data) - 12:
        raise unreadable(f"footer of {footer} bytes in a file of {len(data)} bytes (truncated?)")
    fastparquet = _fastparquet()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # fastparquet prints thrift decoding errors
            parquet = fastparquet.ParquetFile(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any failure to decode the footer means unreadable bytes
        raise unreadable(f"{type(exc).__name__}: {exc}") from None
    expected = [c for c, _, _ in PARQUET_COLUMNS]
    if list(parquet.columns) != expected:
        raise ValueError(f"{name}: expected Parquet columns {expected}, got {list(parquet.columns)}")
    return parquet


def _parquet_rows(data: bytes, name: str) -> list[dict[str, Any]]:
    """The rows of a Parquet chunk (:func:`frame_to_rows`).

    fastparquet decodes without bounds checks: damaged bytes usually raise, but can crash the
    process (dask/fastparquet#666). Committed chunks reach it only after their size and SHA-256
    matched ``job.json`` (:func:`_chunk_bytes`); give :func:`read_chunk_file` trusted files only.

    Raises:
        ValueError: not a readable Parquet file of this format.
    """
    parquet = _parquet_file(data, name)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return frame_to_rows(parquet.to_pandas(index=False))
    except Exception as exc:  # noqa: BLE001 - damaged pages fail in the decoder, with any exception type
        raise ValueError(f"{name}: not a readable Parquet file: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())}") from None


def _jsonl_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def read_chunk_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The result records of one chunk file (``.jsonl`` or ``.parquet``), in input order. Not checked
    against a job's checksums: :func:`iter_job_records` reads a job's chunks with the checks. For
    trusted files: a damaged Parquet file can crash the process (see :func:`_parquet_rows`).

    Raises:
        ValueError: the file is not valid JSONL / Parquet of this format.
    """
    path = Path(path)
    if path.suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"expected a .jsonl or .parquet chunk file, got {str(path)!r}")
    return parse_chunk(path.read_bytes(), path.suffix[1:], str(path))


def parse_chunk(data: bytes, fmt: str, name: str) -> list[dict[str, Any]]:
    """The result records in the bytes of a ``fmt`` (``jsonl``/``parquet``) chunk file called ``name``.

    Raises:
        ValueError: not valid JSONL (UTF-8, one JSON object per terminated line) / Parquet of this format.
    """
    if fmt == "parquet":
        return [row_to_record(row) for row in _parquet_rows(data, name)]
    out = []
    try:
        for n, line in enumerate(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), start=1):
            if not line.endswith("\n"):
                raise ValueError(f"{name}: line {n} is not terminated (truncated chunk)")
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name}: line {n} is not JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: expected UTF-8 JSON lines, got {exc}") from None
    return out


def _json_digest(obj: Any) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ the job


@dataclass(frozen=True)
class ChunkEntry:
    """One committed chunk as listed in ``job.json``: inputs [start, stop), its files (format → name,
    bytes, sha256) and how many of its inputs are error records."""

    index: int
    start: int
    stop: int
    failed: int
    files: dict[str, dict[str, Any]]
    committed: str = ""

    def to_json(self) -> dict[str, Any]:
        """The entry as in ``job.json``, sealed with :data:`ENTRY_SEAL`."""
        d = {"index": self.index, "start": self.start, "stop": self.stop, "failed": self.failed,
             "files": self.files, "committed": self.committed}
        return {**d, ENTRY_SEAL: _json_digest(d)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChunkEntry:
        """Parse an entry of ``job.json``, checking its seal (entries of older jobs have none).

        Raises:
            JobError: not an entry, or it does not match its seal.
        """
        try:
            entry = cls(index=int(d["index"]), start=int(d["start"]), stop=int(d["stop"]), failed=int(d["failed"]),
                        files=dict(d["files"]), committed=str(d.get("committed", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise JobError(f"job.json: expected a chunk entry (index, start, stop, failed, files), got "
                           f"{str(d)[:120]} ({type(exc).__name__}: {exc})") from None
        seal = d.get(ENTRY_SEAL)
        if seal is not None and seal != _json_digest({k: v for k, v in d.items() if k != ENTRY_SEAL}):
            raise JobError(f"job.json: the entry of committed chunk {entry.index} does not match its {ENTRY_SEAL}: "
                           "job.json was changed after the commit; restore it or start a new job")
        return entry


def _chunk_name(index: int, fmt: str) -> str:
    return f"{CHUNKS_DIR}/{index:06d}.{fmt}"


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if not out or bad:
        raise ValueError(f"expected chunk formats from {list(FORMATS)}, got {list(formats)}")
    return out


class _Lock:
    """An exclusive ``flock`` on ``DIR/.lock``; the kernel drops it when the process dies (even on SIGKILL)."""

    def __init__(self, folder: Path) -> None:
        self._fd: int | None = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            log.warning("no file locking on this platform: do not run one job from two processes")
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise JobError(f"job folder {str(folder)!r} is in use by another process") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class TagJob:
    """A job folder opened for writing by this process (holding its lock). Use :meth:`open`.

    >>> with TagJob.open("job", inputs=paths, settings={"whole_image": True}, resume=True) as job:
    ...     for k in job.pending_chunks():
    ...         job.commit_chunk(k, [tag(p) for p in job.chunk_inputs(k)])
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], inputs: list[str], lock: _Lock) -> None:
        self.folder = folder
        self._manifest = manifest
        self.inputs = inputs
        self._lock = lock
        self._chunks = {c.index: c for c in map(ChunkEntry.from_json, manifest["chunks"])}

    # -------------------------------------------------------------- opening

    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, inputs: Sequence[str | os.PathLike[str]] | None,
             settings: Mapping[str, Any], chunk_size: int | None = None, formats: Sequence[str] | None = None,
             resume: bool = False) -> TagJob:
        """Create a job in ``folder`` or, with ``resume``, continue the one there.

        ``inputs``: the input list in job order (``None`` with ``resume``: the job's stored list).
        ``settings``: everything that changes results (JSON-serialisable); a resumed job must have the
        same. ``chunk_size``/``formats``: ``None`` = the job's (resume) or the defaults (new job).
        With ``resume`` and no job in ``folder`` yet, a new job is started.

        Raises:
            JobError: a job exists and ``resume`` is not set; the inputs, settings, chunk size or
                formats differ from the job's; a committed chunk file is missing or changed; another
                process holds the job.
        """
        folder = Path(folder)
        if chunk_size is not None and chunk_size <= 0:
            raise ValueError(f"expected a positive chunk size, got {chunk_size}")
        fmts = None if formats is None else _check_formats(formats)
        settings = _normalise(settings)
        folder.mkdir(parents=True, exist_ok=True)
        lock = _Lock(folder)
        try:
            _remove_temporaries(folder)
            if (folder / JOB_FILE).exists():
                job = cls._resume(folder, lock, inputs=inputs, settings=settings, chunk_size=chunk_size,
                                  formats=fmts, resume=resume)
            else:
                if inputs is None:
                    raise JobError(f"no job to resume in {str(folder)!r}: give the inputs to start one")
                job = cls._create(folder, lock, inputs=[str(p) for p in inputs], settings=settings,
                                  chunk_size=chunk_size or DEFAULT_CHUNK_SIZE, formats=fmts or FORMATS)
        except BaseException:
            lock.release()
            raise
        return job

    @classmethod
    def _create(cls, folder: Path, lock: _Lock, *, inputs: list[str], settings: dict[str, Any], chunk_size: int,
                formats: tuple[str, ...]) -> TagJob:
        if not inputs:
            raise ValueError("expected at least one input for a job, got none")
        (folder / CHUNKS_DIR).mkdir(exist_ok=True)
        for leftover in (folder / CHUNKS_DIR).iterdir():  # files of a job whose job.json was removed
            if _CHUNK_NAME.match(leftover.name):
                leftover.unlink()
        data = _inputs_bytes(inputs)
        _write_atomic(folder / INPUTS_FILE, data)
        manifest = {"schema": JOB_SCHEMA, "created": _now(), "updated": _now(),
                    "inputs": {"file": INPUTS_FILE, "count": len(inputs), "sha256": hashlib.sha256(data).hexdigest()},
                    "settings": settings, "model": None, "chunk_size": chunk_size, "formats": list(formats),
                    "chunks": []}
        _write_atomic(folder / JOB_FILE, _manifest_bytes(manifest))
        log.info("new job in %s: %d inputs, chunks of %d", folder, len(inputs), chunk_size)
        return cls(folder, manifest, inputs, lock)

    @classmethod
    def _resume(cls, folder: Path, lock: _Lock, *, inputs: Sequence[str | os.PathLike[str]] | None,
                settings: dict[str, Any], chunk_size: int | None, formats: tuple[str, ...] | None,
                resume: bool) -> TagJob:
        manifest = load_manifest(folder)
        done = sum(c["stop"] - c["start"] for c in manifest["chunks"])
        total = manifest["inputs"]["count"]
        if not resume:
            raise JobError(f"job folder {str(folder)!r} already holds a job ({done}/{total} inputs done): "
                           "resume it (--resume) or choose another folder")
        stored = _read_inputs(folder, manifest)
        if inputs is not None:
            given = [str(p) for p in inputs]
            if given != stored:
                raise JobError(f"cannot resume the job in {str(folder)!r} with other inputs: "
                               + _describe_difference(stored, given))
        problems = [f"{key}: job has {manifest['settings'].get(key)!r}, this run {settings.get(key)!r}"
                    for key in sorted(set(manifest["settings"]) | set(settings))
                    if manifest["settings"].get(key) != settings.get(key)]
        if chunk_size is not None and chunk_size != manifest["chunk_size"]:
            problems.append(f"chunk size: job has {manifest['chunk_size']}, this run {chunk_size}")
        if formats is not None and list(formats) != manifest["formats"]:
            problems.append(f"formats: job has {manifest['formats']}, this run {list(formats)}")
        if problems:
            raise JobError(f"cannot resume the job in {str(folder)!r} with other settings: " + "; ".join(problems))
        _check_chunks(folder, _entries(folder, manifest))  # before any result of this job is used
        log.info("resuming job in %s: %d/%d inputs done", folder, done, total)
        return cls(folder, manifest, stored, lock)

    # -------------------------------------------------------------- state

    @property
    def chunk_size(self) -> int:
        return int(self._manifest["chunk_size"])

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self._manifest["formats"])

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self._manifest["settings"])

    @property
    def n_chunks(self) -> int:
        return -(-len(self.inputs) // self.chunk_size)

    @property
    def n_done(self) -> int:
        return sum(c.stop - c.start for c in self._chunks.values())

    @property
    def n_failed(self) -> int:
        return sum(c.failed for c in self._chunks.values())

    @property
    def committed(self) -> list[ChunkEntry]:
        return [self._chunks[k] for k in sorted(self._chunks)]

    def chunk_range(self, index: int) -> tuple[int, int]:
        """Input positions [start, stop) of chunk ``index``."""
        if not 0 <= index < self.n_chunks:
            raise ValueError(f"expected a chunk index in [0, {self.n_chunks}), got {index}")
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, len(self.inputs))

    def chunk_inputs(self, index: int) -> list[str]:
        start, stop = self.chunk_range(index)
        return self.inputs[start:stop]

    def pending_chunks(self) -> list[int]:
        """Chunk indices not committed yet, ascending."""
        return [k for k in range(self.n_chunks) if k not in self._chunks]

    def bind_model(self, model: Mapping[str, str]) -> None:
        """Record the model (``Tagger.model_info``) on the first run; refuse another model on a resume.

        Raises:
            JobError: the job's results so far came from another model or backend.
        """
        model = dict(model)
        stored = self._manifest.get("model")
        if stored is None:
            self._manifest["model"] = model
            self._save()
        elif stored != model:
            raise JobError(f"cannot resume the job in {str(self.folder)!r} with another model: "
                           f"job has {stored}, this run {model}")

    # -------------------------------------------------------------- committing

    def commit_chunk(self, index: int, records: Sequence[TagResult | Mapping[str, Any]]) -> ChunkEntry:
        """Write chunk ``index`` (one result per input of :meth:`chunk_inputs`, in order: :class:`TagResult`
        objects, or their JSON records) in every format and commit it atomically (see the module docstring).

        Raises:
            ValueError: the records do not match the chunk's inputs, or the chunk is already committed.
        """
        records = [r.to_json() if isinstance(r, TagResult) else r for r in records]
        if index in self._chunks:
            raise ValueError(f"chunk {index} of the job in {str(self.folder)!r} is already committed")
        expected = self.chunk_inputs(index)
        got = [str((r.get("image") or {}).get("path")) for r in records]
        if got != expected:
            raise ValueError(f"chunk {index}: expected records for {len(expected)} inputs "
                             f"{_preview(expected)}, got {len(got)} {_preview(got)}")
        start, stop = self.chunk_range(index)
        files = {}
        for fmt in self.formats:
            data = _jsonl_bytes(records) if fmt == "jsonl" else _parquet_bytes(records_to_frame(records, first_index=start))
            name = _chunk_name(index, fmt)
            _write_atomic(self.folder / name, data, sync_dir=False)
            files[fmt] = {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "records": len(records)}
        _fsync_dir(self.folder / CHUNKS_DIR)
        entry = ChunkEntry(index=index, start=start, stop=stop, failed=sum(r.get("error") is not None for r in records),
                           files=files, committed=_now())
        self._chunks[index] = entry
        self._manifest["chunks"] = [c.to_json() for c in self.committed]
        self._save()  # the commit point
        return entry

    def _save(self) -> None:
        self._manifest["updated"] = _now()
        _write_atomic(self.folder / JOB_FILE, _manifest_bytes(self._manifest))

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """``job.json``'s bytes, with :data:`HEADER_SEAL` (re)computed and last."""
    body = {k: v for k, v in manifest.items() if k != HEADER_SEAL}
    body[HEADER_SEAL] = _header_digest(body)
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _header_digest(manifest: Mapping[str, Any]) -> str:
    """The seal of everything in ``job.json`` but the chunk list (each entry has its own) and ``updated``."""
    return _json_digest({k: v for k, v in manifest.items() if k not in ("chunks", "updated", HEADER_SEAL)})


def _preview(items: Sequence[str], n: int = 3) -> str:
    head = ", ".join(repr(s) for s in items[:n])
    return f"[{head}{', …' if len(items) > n else ''}]"


def _describe_difference(stored: Sequence[str], given: Sequence[str]) -> str:
    if len(stored) != len(given):
        head = f"the job has {len(stored)} inputs, this run {len(given)}"
    else:
        head = f"both have {len(stored)} inputs"
    for i, (a, b) in enumerate(zip(stored, given)):
        if a != b:
            return f"{head}; first difference at input {i}: job has {a!r}, this run {b!r}"
    return f"{head}; the shorter list is a prefix of the longer"


def _remove_temporaries(folder: Path) -> None:
    for d in (folder, folder / CHUNKS_DIR):
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(".") and _TMP_MARK in p.name:
                    p.unlink()


# ------------------------------------------------------------------------------ reading a job


def load_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``job.json`` of a job folder, checked for its schema, shape and :data:`HEADER_SEAL`.

    Raises:
        FileNotFoundError: no job in ``folder``.
        JobError: not a ``fashionlens/tag-job/v1`` manifest, malformed, or changed after it was written.
    """
    path = Path(folder) / JOB_FILE
    if not path.exists():
        raise FileNotFoundError(f"expected a job manifest {str(path)!r}; there is none (not a job folder)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JobError(f"{path}: expected a JSON job manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != JOB_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise JobError(f"{path}: expected schema {JOB_SCHEMA!r}, got {got!r}")
    seal = manifest.pop(HEADER_SEAL, None)  # jobs started before seals existed have none
    if seal is not None and seal != _header_digest(manifest):
        raise JobError(f"{path}: expected the contents sealed by its {HEADER_SEAL}, got other contents: job.json "
                       "was changed after it was written; restore it or start a new job")
    _check_shape(path, manifest)
    return manifest


def _is_count(value: object, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_shape(path: Path, m: Mapping[str, Any]) -> None:
    inputs = m.get("inputs")
    checks = (
        ("inputs", f"{{'file': {INPUTS_FILE!r}, 'count': n, 'sha256': …}}",
         isinstance(inputs, dict) and inputs.get("file") == INPUTS_FILE and _is_count(inputs.get("count"))
         and isinstance(inputs.get("sha256"), str)),
        ("settings", "an object", isinstance(m.get("settings"), dict)),
        ("model", "an object or null", m.get("model") is None or isinstance(m.get("model"), dict)),
        ("chunk_size", "a positive integer", _is_count(m.get("chunk_size"), 1)),
        ("formats", f"a list from {list(FORMATS)}", isinstance(m.get("formats"), list) and bool(m["formats"])
         and all(f in FORMATS for f in m["formats"])),
        ("chunks", "a list", isinstance(m.get("chunks"), list)),
    )
    for key, expected, ok in checks:
        if not ok:
            raise JobError(f"{path}: expected {key!r} to be {expected}, got {m.get(key)!r}")


def _entries(folder: Path, manifest: Mapping[str, Any]) -> list[ChunkEntry]:
    """The committed chunk entries of ``job.json``, by index, each checked against the job's shape.

    Raises:
        JobError: an entry is malformed, changed (:data:`ENTRY_SEAL`), listed twice or does not fit the job.
    """
    entries = sorted((ChunkEntry.from_json(c) for c in manifest["chunks"]), key=lambda e: e.index)
    for a, b in itertools.pairwise(entries):
        if a.index == b.index:
            raise JobError(f"{folder / JOB_FILE}: expected each chunk listed once, got chunk {a.index} twice")
    for e in entries:
        _check_entry(folder, manifest, e)
    return entries


def _check_entry(folder: Path, manifest: Mapping[str, Any], e: ChunkEntry) -> None:
    size, count = manifest["chunk_size"], manifest["inputs"]["count"]
    start = e.index * size
    stop = min(start + size, count)
    n = stop - start
    problems = []
    if not 0 <= start < count:
        problems.append(f"a chunk index in [0, {-(-count // size)}), got {e.index}")
    if (e.start, e.stop) != (start, stop):
        problems.append(f"inputs [{start}, {stop}), got [{e.start}, {e.stop})")
    if sorted(e.files) != sorted(manifest["formats"]):
        problems.append(f"files in {manifest['formats']}, got {sorted(e.files)}")
    for fmt, info in e.files.items():
        if not (isinstance(info, dict) and info.get("name") == _chunk_name(e.index, fmt) and _is_count(info.get("bytes"))
                and isinstance(info.get("sha256"), str) and info.get("records", n) == n):
            problems.append(f"files.{fmt} = {{'name': {_chunk_name(e.index, fmt)!r}, 'bytes': …, 'sha256': …, "
                            f"'records': {n}}}, got {info!r}")
    if not 0 <= e.failed <= n:
        problems.append(f"failed in [0, {n}], got {e.failed}")
    if problems:
        raise JobError(f"{folder / JOB_FILE}: committed chunk {e.index}: expected " + "; expected ".join(problems))


def _read_inputs(folder: Path, manifest: Mapping[str, Any]) -> list[str]:
    path = folder / manifest["inputs"]["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JobError(f"{path}: expected the job's input list, got {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != manifest["inputs"]["sha256"]:
        raise JobError(f"{path}: the input list does not match its fingerprint in job.json (the file was changed)")
    inputs = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    if len(inputs) != manifest["inputs"]["count"]:
        raise JobError(f"{folder}: job.json says {manifest['inputs']['count']} inputs, inputs file has {len(inputs)}")
    return inputs


# ------------------------------------------------------------------------------ checking committed chunks


def _chunk_bytes(folder: Path, entry: ChunkEntry, fmt: str) -> bytes:
    """The bytes of one file of a committed chunk, read once and checked against ``job.json``: size,
    SHA-256, record count.

    Raises:
        ChunkDamagedError: the file is missing, unreadable or differs.
    """
    info = entry.files[fmt]
    name = info["name"]
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise ChunkDamagedError(folder, entry.index, f"{name}: missing") from None
    except OSError as exc:
        raise ChunkDamagedError(folder, entry.index, f"{name}: unreadable ({exc.strerror or exc})") from None
    if len(data) != info["bytes"]:
        raise ChunkDamagedError(folder, entry.index, f"{name}: {len(data)} bytes, expected {info['bytes']}")
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise ChunkDamagedError(folder, entry.index, f"{name}: checksum differs from job.json")
    try:
        n = _count_records(data, fmt, name)
    except ValueError as exc:
        raise ChunkDamagedError(folder, entry.index, str(exc)) from None
    if n != entry.stop - entry.start:
        raise ChunkDamagedError(folder, entry.index, f"{name}: {n} records, expected {entry.stop - entry.start}")
    return data


def _count_records(data: bytes, fmt: str, name: str) -> int:
    if fmt == "jsonl":
        return data.count(b"\n")
    return int(_parquet_file(data, name).count())


def _check_chunks(folder: Path, entries: Sequence[ChunkEntry]) -> None:
    """Every file of every committed chunk against ``job.json`` (:func:`_chunk_bytes`).

    Raises:
        ChunkDamagedError: naming the first damaged chunk.
    """
    for e in entries:
        for fmt in e.files:
            _chunk_bytes(folder, e, fmt)


def _chunk_records(folder: Path, entry: ChunkEntry, fmt: str, inputs: Sequence[str]) -> list[dict[str, Any]]:
    """The records of a committed chunk, from its checked ``fmt`` file, checked to be its inputs in order."""
    name = entry.files[fmt]["name"]
    data = _chunk_bytes(folder, entry, fmt)
    try:
        records = parse_chunk(data, fmt, name)
    except ValueError as exc:
        raise ChunkDamagedError(folder, entry.index, str(exc)) from None
    paths = [(r.get("image") or {}).get("path") if isinstance(r, dict) else None for r in records]
    _check_paths(folder, entry, name, paths, inputs)
    return records


def _chunk_frame(folder: Path, entry: ChunkEntry, fmt: str, inputs: Sequence[str]) -> pd.DataFrame:
    """A committed chunk as a DataFrame (:func:`records_to_frame`), checked like :func:`_chunk_records`."""
    if fmt != "parquet":
        return records_to_frame(_chunk_records(folder, entry, fmt, inputs), first_index=entry.start)
    name = entry.files[fmt]["name"]
    data = _chunk_bytes(folder, entry, fmt)
    try:
        rows = _parquet_rows(data, name)
    except ValueError as exc:
        raise ChunkDamagedError(folder, entry.index, str(exc)) from None
    _check_paths(folder, entry, name, [row["path"] for row in rows], inputs)
    if [row["input_index"] for row in rows] != list(range(entry.start, entry.stop)):
        raise ChunkDamagedError(folder, entry.index, f"{name}: expected input_index {entry.start}…{entry.stop - 1}")
    return rows_to_frame(rows)


def _check_paths(folder: Path, entry: ChunkEntry, name: str, paths: Sequence[Any], inputs: Sequence[str]) -> None:
    expected = list(inputs[entry.start:entry.stop])
    if list(paths) != expected:
        raise ChunkDamagedError(folder, entry.index,
                                f"{name}: expected records for {_preview(expected)}, got {_preview(list(paths))}")


@dataclass
class JobStatus:
    """What :func:`job_status` found in a job folder."""

    folder: str
    n_inputs: int
    n_done: int
    n_failed: int
    chunk_size: int
    chunks_committed: int
    chunks_total: int
    formats: list[str]
    model: dict[str, str] | None
    complete: bool
    uncommitted_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def job_status(folder: str | os.PathLike[str], *, verify: bool = False) -> JobStatus:
    """Progress of a job (readable while it runs). ``verify``: read every committed chunk file and
    check its size, checksum, record count and paths; what is wrong goes to ``problems``.

    Raises:
        JobError: ``job.json`` is malformed or was changed (its seals).
    """
    folder = Path(folder)
    manifest = load_manifest(folder)
    entries = _entries(folder, manifest)
    n = manifest["inputs"]["count"]
    total = -(-n // manifest["chunk_size"])
    listed = {info["name"] for e in entries for info in e.files.values()}
    chunk_dir = folder / CHUNKS_DIR
    uncommitted = sorted(f"{CHUNKS_DIR}/{p.name}" for p in chunk_dir.iterdir()
                         if f"{CHUNKS_DIR}/{p.name}" not in listed) if chunk_dir.is_dir() else []
    problems: list[str] = []
    if verify:
        inputs = _read_inputs(folder, manifest)
        for e in entries:
            problems.extend(_chunk_problems(folder, e, inputs))
    done = sum(e.stop - e.start for e in entries)
    return JobStatus(folder=str(folder), n_inputs=n, n_done=done, n_failed=sum(e.failed for e in entries),
                     chunk_size=manifest["chunk_size"], chunks_committed=len(entries), chunks_total=total,
                     formats=list(manifest["formats"]), model=manifest.get("model"), complete=done == n,
                     uncommitted_files=uncommitted, problems=problems)


def _chunk_problems(folder: Path, entry: ChunkEntry, inputs: Sequence[str]) -> list[str]:
    problems = []
    for fmt in entry.files:
        try:
            _chunk_records(folder, entry, fmt, inputs)
        except ChunkDamagedError as exc:
            problems.append(exc.problem)
    return problems


def _committed(folder: Path, *, partial: bool) -> tuple[dict[str, Any], list[ChunkEntry], list[str]]:
    """``job.json``, its committed chunks and the input list, after checking every committed chunk file."""
    manifest = load_manifest(folder)
    entries = _entries(folder, manifest)
    done, total = sum(e.stop - e.start for e in entries), manifest["inputs"]["count"]
    if done != total and not partial:
        raise JobError(f"job in {str(folder)!r} is not complete ({done}/{total} inputs done): "
                       "resume it first, or ask for the partial results")
    inputs = _read_inputs(folder, manifest)
    _check_chunks(folder, entries)  # every committed byte, before the first result is used
    return manifest, entries, inputs


def iter_job_records(folder: str | os.PathLike[str], *, fmt: str | None = None, partial: bool = False
                     ) -> Iterator[dict[str, Any]]:
    """The result records of a job's committed chunks, in input order, read from ``fmt`` chunks
    (default: JSONL when the job writes it). Every committed chunk file is checked against
    ``job.json`` before the first record is yielded, and each chunk again as it is read.

    Raises:
        JobError: the job is not complete and ``partial`` is not set.
        ChunkDamagedError: a committed chunk file is missing or differs from ``job.json``.
    """
    folder = Path(folder)
    manifest, entries, inputs = _committed(folder, partial=partial)
    source = fmt or ("jsonl" if "jsonl" in manifest["formats"] else manifest["formats"][0])
    if source not in manifest["formats"]:
        raise JobError(f"job in {str(folder)!r} writes {manifest['formats']}, not {source!r}")
    for e in entries:
        yield from _chunk_records(folder, e, source, inputs)


def merge_job(folder: str | os.PathLike[str], output: str | os.PathLike[str] | IO[str], *, partial: bool = False
              ) -> int:
    """Write a job's results as one file, atomically: ``.parquet`` → Parquet (:data:`PARQUET_COLUMNS`),
    anything else (or a text stream) → JSONL. Returns the number of records. Every committed chunk
    file is checked against ``job.json`` first (size, SHA-256, record count), and each chunk's records
    against the input list as it is merged.

    Raises:
        JobError: the job is not complete and ``partial`` is not set.
        ChunkDamagedError: a committed chunk file is missing or differs from ``job.json`` (nothing is written).
    """
    if hasattr(output, "write"):
        n = 0
        for record in iter_job_records(folder, partial=partial):
            output.write(json.dumps(record, ensure_ascii=False) + "\n")  # type: ignore[union-attr]
            n += 1
        return n
    out = Path(output)  # type: ignore[arg-type]
    counted: list[int] = []

    def write(tmp: Path) -> None:
        if out.suffix.lower() == ".parquet":
            manifest, entries, inputs = _committed(Path(folder), partial=partial)
            source = "parquet" if "parquet" in manifest["formats"] else "jsonl"

            def frames() -> Iterator[pd.DataFrame]:
                for e in entries:
                    frame = _chunk_frame(Path(folder), e, source, inputs)
                    counted.append(len(frame))
                    yield frame
            # the schema (a file without rows), then one row group per chunk, read one at a time
            _write_frame(tmp, records_to_frame([]))
            _fastparquet().ParquetFile(str(tmp)).write_row_groups(frames(), compression=_COMPRESSION)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                counted.append(merge_job(folder, fh, partial=partial))

    atomic_write(out, write, sync_dir=True)
    return sum(counted)
