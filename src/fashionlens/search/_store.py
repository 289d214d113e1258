"""On-disk pieces of a garment index: atomic file writes, the manifest, the SQLite metadata table.

Machinery for :mod:`fashionlens.search.index`; the public names are re-exported there.

Layout of an index directory (one *generation* = one committed state)::

    DIR/manifest.json                   format, dim, kind + parameters, counts, times, file names
    DIR/vectors-<generation>.faiss      the FAISS index (faiss.write_index)
    DIR/metadata-<generation>.sqlite    one row per live vector + the HNSW tombstones

Every file is written under a temporary name (``.tmp-…``) in the same directory, flushed,
``fsync``-ed and moved into place with :func:`os.replace`; new generations get new file names, so
the files of the committed generation are never touched. Replacing ``manifest.json`` is the
single commit point: until it happens, a crash (or an exception) leaves the previous manifest
pointing at the previous, complete files. Files of older generations are deleted only after the
new manifest is durable.

Integrity: the manifest records the size and SHA-256 of both data files (``checksums``) and seals
itself with ``manifest_sha256`` (the SHA-256 of its own JSON text without that key); a reader
checks the seal and that the text is exactly what the writer produced, then each data file before
using it (:func:`read_checked`, :func:`check_file`), and opens the metadata with ``PRAGMA
quick_check``. Manifests written before checksums existed have neither key: they still load (the
index module logs a warning); ``fashionlens index verify`` reports them as unverifiable.

Why SQLite rather than Parquet for the metadata: it is in the standard library (no pyarrow
dependency), lookups by id, path or category use B-tree indexes without loading the table,
filters run as SQL (``json_each`` gives "value in list" containment on JSON attributes), and an
incremental ``add``/``remove`` is a transaction on a copy of the file (SQLite's backup API)
instead of rewriting and re-reading a whole columnar file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.io.atomic import TMP_PREFIX as ATOMIC_TMP_PREFIX
from fashionlens.io.atomic import atomic_write, fsync_dir  # noqa: F401 - fsync_dir used by index.py

FORMAT = "fashionlens/garment-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ATOMIC_TMP_PREFIX  # temporaries of io.atomic (swept by cleanup)
#: the manifest key holding the SHA-256 of the manifest's own text without that key (the last key)
SEAL_KEY = "manifest_sha256"
#: data files whose size and SHA-256 the manifest records (``checksums``)
CHECKED_FILES = ("vectors", "metadata")
_READ_BLOCK = 1 << 22  # bytes hashed per read
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_GENERATION_FILE = re.compile(r"^(vectors-[0-9a-f-]+\.faiss|metadata-[0-9a-f-]+\.sqlite)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: metadata fields stored as their own columns (filterable by equality)
COLUMN_FIELDS = ("path", "category", "object_type")
Scalar = str | int | float | bool


class IndexFormatError(ValueError):
    """An index directory whose files are missing pieces, corrupt or inconsistent with each other."""


# ------------------------------------------------------------------------------------ metadata


@dataclass(frozen=True)
class GarmentMeta:
    """Metadata of one indexed vector (one garment crop, or one whole image).

    * ``path``: the source image (stored as given; relative paths are relative to whatever root the
      caller uses);
    * ``xyxy``: the garment box ``(x_min, y_min, x_max, y_max)`` in original-image pixels (after
      EXIF orientation, as :class:`fashionlens.result.Garments` uses), or ``None`` for the whole image;
    * ``category``, ``object_type``: taxonomy ids or ``None``;
    * ``attributes``: name → a scalar (str/int/float/bool) or a list of scalars, e.g.
      ``{"colours": ["red", "white"], "pattern": "striped", "material": "wool"}``. Names are
      identifiers (``[A-Za-z_][A-Za-z0-9_]*``); they become filter fields.
    """

    path: str
    xyxy: tuple[float, float, float, float] | None = None
    category: str | None = None
    object_type: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path):
            raise ValueError(f"GarmentMeta.path: expected a non-empty str or path; got {self.path!r}")
        object.__setattr__(self, "path", os.fspath(self.path))
        if self.xyxy is not None:
            box = tuple(float(v) for v in np.asarray(self.xyxy, dtype=np.float64).reshape(-1))
            if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
                raise ValueError("GarmentMeta.xyxy: expected 4 finite numbers (x_min, y_min, x_max, y_max) "
                                 f"with x_max >= x_min and y_max >= y_min; got {self.xyxy!r}")
            object.__setattr__(self, "xyxy", box)
        for name in ("category", "object_type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"GarmentMeta.{name}: expected a str or None; got {value!r}")
        if not isinstance(self.attributes, Mapping):
            raise TypeError(f"GarmentMeta.attributes: expected a mapping; got {type(self.attributes).__name__}")
        clean: dict[str, Any] = {}
        for key, value in self.attributes.items():
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                raise ValueError(f"GarmentMeta.attributes: expected identifier keys; got {key!r}")
            if key in COLUMN_FIELDS:
                raise ValueError(f"GarmentMeta.attributes: {key!r} is a column of its own, not an attribute")
            if isinstance(value, (list, tuple, set, frozenset)):
                items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
                if not all(_is_scalar(v) for v in items):
                    raise ValueError(f"GarmentMeta.attributes[{key!r}]: expected scalars in the list; got {value!r}")
                clean[key] = items
            elif value is None or _is_scalar(value):
                clean[key] = value
            else:
                raise ValueError(f"GarmentMeta.attributes[{key!r}]: expected a str/int/float/bool or a list of "
                                 f"them; got {type(value).__name__}")
        object.__setattr__(self, "attributes", clean)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> GarmentMeta:
        """From a dict with the field names as keys; unknown keys are an error (with a suggestion)."""
        if isinstance(data, GarmentMeta):
            return data
        if not isinstance(data, Mapping):
            raise TypeError(f"metadata: expected a GarmentMeta or a mapping; got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                hint = difflib.get_close_matches(str(key), names, n=1)
                raise ValueError(f"metadata: unknown field {key!r}; expected one of {names}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if "path" not in data:
            raise ValueError(f"metadata: expected a 'path' field; got fields {sorted(data)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``xyxy`` as a list or ``None``)."""
        return {"path": self.path, "xyxy": list(self.xyxy) if self.xyxy is not None else None,
                "category": self.category, "object_type": self.object_type, "attributes": dict(self.attributes)}


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, bool, int, float, np.integer, np.floating)) and (
        not isinstance(value, (float, np.floating)) or math.isfinite(float(value)))


def as_meta_list(metadata: Iterable[GarmentMeta | Mapping[str, Any]], n: int) -> list[GarmentMeta]:
    """Validate ``metadata`` as ``n`` :class:`GarmentMeta` (dicts are converted)."""
    if isinstance(metadata, (str, bytes, Mapping)):
        raise TypeError(f"metadata: expected a sequence of {n} GarmentMeta or dicts; got {type(metadata).__name__}")
    out = [GarmentMeta.from_mapping(m) for m in metadata]
    if len(out) != n:
        raise ValueError(f"metadata: expected {n} rows (one per vector); got {len(out)}")
    return out


# ------------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class IndexManifest:
    """Contents of ``manifest.json``.

    ``count`` is the number of live vectors (= metadata rows); ``ntotal`` the vectors inside the
    FAISS index, which exceeds ``count`` by ``tombstones`` for HNSW (removed but not yet compacted).
    ``params`` holds the kind's parameters (``nlist``/``nprobe`` for ``ivf``, ``M``,
    ``ef_construction``/``ef_search`` for ``hnsw``) and ``auto_threshold``. ``info`` is free-form
    caller metadata (e.g. which encoder produced the vectors). ``checksums`` maps ``vectors`` and
    ``metadata`` to ``{"bytes": size, "sha256": hex digest}`` of the files named in ``files``
    (empty for indexes written before checksums existed).
    """

    dim: int
    kind: str
    requested_kind: str
    params: dict[str, Any]
    count: int
    ntotal: int
    tombstones: int
    next_id: int
    generation: int
    files: dict[str, str]
    attribute_keys: list[str]
    info: dict[str, Any]
    created: str
    updated: str
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    metric: str = "inner_product"
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        """The sealed text of ``manifest.json`` (see :func:`render_manifest`)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        order = ["format", "format_version", "dim", "metric", "kind", "requested_kind", "params", "count",
                 "ntotal", "tombstones", "next_id", "generation", "files", "checksums", "attribute_keys", "info",
                 "created", "updated"]
        return render_manifest({k: data[k] for k in order})

    @classmethod
    def read(cls, directory: Path) -> IndexManifest:
        """Parse and check ``directory/manifest.json``.

        Raises:
            FileNotFoundError: no directory or no manifest in it.
            IndexFormatError: not JSON, another format, a newer version, or fields of the wrong type.
        """
        path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise FileNotFoundError(f"no garment index at {directory}: not a directory")
        if not path.is_file():
            raise FileNotFoundError(f"no garment index at {directory}: {MANIFEST_NAME} not found")
        try:
            text = path.read_bytes().decode("utf-8")
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexFormatError(f"corrupt manifest {path}: expected JSON; got a parse error ({e})") from None
        if not isinstance(data, dict):
            raise IndexFormatError(f"corrupt manifest {path}: expected a JSON object; got {type(data).__name__}")
        _check_seal(path, text, data)
        if data.get("format") != FORMAT:
            raise IndexFormatError(f"manifest {path}: expected format {FORMAT!r}; got {data.get('format')!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(f"manifest {path}: expected format_version {FORMAT_VERSION}; "
                                   f"got {data.get('format_version')!r}")
        types: dict[str, type | tuple[type, ...]] = {
            "dim": int, "kind": str, "requested_kind": str, "params": dict, "count": int, "ntotal": int,
            "tombstones": int, "next_id": int, "generation": int, "files": dict, "attribute_keys": list,
            "info": dict, "created": str, "updated": str, "metric": str}
        for key, typ in types.items():
            value = data.get(key)
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
                raise IndexFormatError(f"manifest {path}: expected {key!r} to be {name}; got {value!r}")
        if data["dim"] < 1 or min(data["count"], data["ntotal"], data["tombstones"]) < 0:
            raise IndexFormatError(f"manifest {path}: expected dim >= 1 and non-negative counts; got dim="
                                   f"{data['dim']}, count={data['count']}, ntotal={data['ntotal']}")
        for key in ("vectors", "metadata"):
            name = data["files"].get(key)
            if not isinstance(name, str) or not _GENERATION_FILE.match(name):
                raise IndexFormatError(f"manifest {path}: expected files.{key} to name a generation file; got {name!r}")
        _check_checksums(path, data.get("checksums", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def render_manifest(data: Mapping[str, Any]) -> str:
    """``data`` as manifest text sealed with :data:`SEAL_KEY`: the SHA-256 of the JSON text of
    ``data`` without the seal, appended as the last key (an existing seal in ``data`` is replaced)."""
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    digest = hashlib.sha256(_manifest_text(body).encode("utf-8")).hexdigest()
    return _manifest_text({**body, SEAL_KEY: digest})


def _manifest_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _check_seal(path: Path, text: str, data: Mapping[str, Any]) -> None:
    """A sealed manifest must be byte for byte what :func:`render_manifest` makes of its contents
    (this checks the seal and catches changes that JSON parsing would hide, such as whitespace)."""
    if SEAL_KEY not in data:
        if "checksums" in data:
            raise IndexFormatError(f"manifest {path}: expected {SEAL_KEY!r} next to 'checksums' (both are written "
                                   "together); got none: the manifest was changed after it was written")
        return  # written before checksums existed
    if render_manifest(data) != text:
        raise IndexFormatError(f"manifest {path}: expected the text sealed by its {SEAL_KEY}; got a file that differs "
                               "(changed or damaged after it was written): restore it or rebuild the index")


def _check_checksums(path: Path, checksums: object) -> None:
    if checksums == {}:
        return
    ok = isinstance(checksums, dict) and sorted(checksums) == sorted(CHECKED_FILES) and all(
        isinstance(c, dict) and sorted(c) == ["bytes", "sha256"] and isinstance(c["bytes"], int)
        and not isinstance(c["bytes"], bool) and c["bytes"] >= 0
        and isinstance(c["sha256"], str) and _SHA256_HEX.match(c["sha256"]) for c in checksums.values())
    if not ok:
        raise IndexFormatError(f"manifest {path}: expected 'checksums' to map {list(CHECKED_FILES)} to "
                               f"{{'bytes': size, 'sha256': hex digest}}; got {checksums!r}")


# ------------------------------------------------------------------------------------ checksums


def file_checksum(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read once in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _mismatch(path: Path, what: str, expected: Mapping[str, Any], size: int, sha256: str | None) -> IndexFormatError:
    got = f"{size} bytes" if sha256 is None else f"sha256 {sha256[:16]}…"
    want = f"{expected['bytes']} bytes" if sha256 is None else f"sha256 {expected['sha256'][:16]}…"
    return IndexFormatError(f"index {what} file {path}: expected {want} ({MANIFEST_NAME}); got {got}: the file was "
                            "changed or damaged after it was written; rebuild the index")


def check_file(path: Path, expected: Mapping[str, Any], what: str) -> None:
    """Check a data file's size, then its SHA-256, against the manifest's ``checksums`` entry.

    Raises:
        IndexFormatError: the file differs.
    """
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise _mismatch(path, what, expected, size, None)
    got = file_checksum(path)
    if got["sha256"] != expected["sha256"]:
        raise _mismatch(path, what, expected, size, got["sha256"])


def read_checked(path: Path, expected: Mapping[str, Any], what: str) -> np.ndarray:
    """The bytes of a data file as a ``uint8`` array, hashed while they are read (one pass) and checked
    against the manifest's ``checksums`` entry before anyone parses them.

    Raises:
        IndexFormatError: the file differs.
    """
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise _mismatch(path, what, expected, size, None)
    buf = np.empty(size, dtype=np.uint8)
    view, digest, pos = memoryview(buf), hashlib.sha256(), 0
    with open(path, "rb", buffering=0) as fh:
        while pos < size:
            n = fh.readinto(view[pos:pos + _READ_BLOCK])
            if not n:
                break
            digest.update(view[pos:pos + n])
            pos += n
    if pos != size or digest.hexdigest() != expected["sha256"]:
        raise _mismatch(path, what, expected, pos, digest.hexdigest())
    return buf


def new_generation_token(generation: int) -> str:
    return f"{generation:06d}-{secrets.token_hex(4)}"


# ------------------------------------------------------------------------------------ atomic writes


def write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Have ``write(tmp)`` produce the file under a temporary name, then fsync + :func:`os.replace`
    (:func:`fashionlens.io.atomic.atomic_write`). On any exception ``final`` is left as it was."""
    atomic_write(final, write)


def write_manifest(directory: Path, manifest: IndexManifest) -> None:
    """The commit point: atomically replace ``manifest.json`` and make the rename durable."""
    write_atomically(directory / MANIFEST_NAME, lambda p: p.write_text(manifest.to_json(), encoding="utf-8"))
    fsync_dir(directory)


def remove_stale_files(directory: Path, keep: Iterable[str]) -> None:
    """Delete generation files not named in ``keep`` and leftover temporary files.

    Only this module's file names are touched (``vectors-*.faiss``, ``metadata-*.sqlite``,
    ``.tmp-*``); a single writer per directory is assumed.
    """
    keep = set(keep)
    for entry in directory.iterdir():
        name = entry.name
        if name in keep or not entry.is_file():
            continue
        if name.startswith(TMP_PREFIX) or _GENERATION_FILE.match(name):
            _unlink_quietly(entry)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------------ SQLite table

_SCHEMA = """
CREATE TABLE garments (
    id INTEGER PRIMARY KEY,          -- the vector id inside the FAISS index (int64)
    path TEXT NOT NULL,
    x_min REAL, y_min REAL, x_max REAL, y_max REAL,   -- garment box, all NULL for a whole image
    category TEXT,
    object_type TEXT,
    attributes TEXT NOT NULL         -- JSON object: name -> scalar or list of scalars
);
CREATE INDEX garments_path ON garments(path);
CREATE INDEX garments_category ON garments(category);
CREATE TABLE tombstones (id INTEGER PRIMARY KEY);  -- HNSW: removed ids still inside the FAISS index
"""
_SELECT_COLUMNS = "id, path, x_min, y_min, x_max, y_max, category, object_type, attributes"
_CHUNK = 900  # bound parameters per statement (SQLite's historical limit is 999)


def open_read_only(path: Path, expected: Mapping[str, Any] | None = None, *, full_check: bool = False
                   ) -> sqlite3.Connection:
    """Open a committed metadata file; committed files never change, hence ``immutable=1``.

    ``expected``: the manifest's ``checksums`` entry, checked first (:func:`check_file`). SQLite then
    checks the file's structure: ``PRAGMA quick_check`` (cheap: pages, cells, free list), or the full
    ``PRAGMA integrity_check`` (also every index against its table) with ``full_check``.

    Raises:
        FileNotFoundError: no such file.
        IndexFormatError: checksum mismatch, not a SQLite garment table, or a failed structure check.
    """
    if not path.is_file():
        raise FileNotFoundError(f"index metadata file {path} is missing")
    if expected is not None:
        check_file(path, expected, "metadata")
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        with metadata_errors(path):
            pragma = "integrity_check" if full_check else "quick_check"
            found = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(5)")]
            if found != ["ok"]:
                raise IndexFormatError(f"index metadata file {path}: expected SQLite {pragma} 'ok'; got "
                                       f"{_one_line('; '.join(found))}: the file is damaged; rebuild the index")
            conn.execute("SELECT count(*) FROM garments").fetchone()
            conn.execute("SELECT count(*) FROM tombstones").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def metadata_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors while reading a committed metadata file into :class:`IndexFormatError`
    (a closed connection, a programming error, stays what it is)."""
    try:
        yield
    except sqlite3.ProgrammingError:
        raise
    except sqlite3.DatabaseError as e:
        raise IndexFormatError(f"index metadata file {path}: expected a readable SQLite garment table; got "
                               f"{type(e).__name__}: {_one_line(str(e))}: the file is damaged; rebuild the index") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def write_metadata(final: Path, source: sqlite3.Connection | None,
                   edit: Callable[[sqlite3.Connection], None]) -> dict[str, Any]:
    """Write a new metadata file: a copy of ``source`` (or an empty table) with ``edit`` applied.
    Returns its :func:`file_checksum` (taken before the rename)."""
    checksum: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        conn = sqlite3.connect(tmp)
        try:
            if source is not None:
                source.backup(conn)
            else:
                conn.executescript(_SCHEMA)
            # the file is private until the rename below, which happens after an explicit fsync
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            with conn:
                edit(conn)
        finally:
            conn.close()
        checksum.update(file_checksum(tmp))

    write_atomically(final, write)
    return checksum


def insert_rows(conn: sqlite3.Connection, ids: np.ndarray, metas: Sequence[GarmentMeta]) -> None:
    def rows() -> Iterator[tuple[Any, ...]]:
        for i, m in zip(ids.tolist(), metas):
            box = m.xyxy if m.xyxy is not None else (None, None, None, None)
            yield (i, m.path, *box, m.category, m.object_type,
                   json.dumps(_json_ready(m.attributes), ensure_ascii=False, sort_keys=True))

    conn.executemany(f"INSERT INTO garments ({_SELECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())


def delete_rows(conn: sqlite3.Connection, ids: np.ndarray) -> None:
    for chunk in _chunks(ids.tolist()):
        conn.execute(f"DELETE FROM garments WHERE id IN ({_marks(len(chunk))})", chunk)


def add_tombstones(conn: sqlite3.Connection, ids: np.ndarray) -> None:
    conn.executemany("INSERT OR IGNORE INTO tombstones (id) VALUES (?)", ((i,) for i in ids.tolist()))


def clear_tombstones(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM tombstones")


def all_ids(conn: sqlite3.Connection) -> np.ndarray:
    """Sorted ids of the live rows."""
    return _id_array(conn.execute("SELECT id FROM garments ORDER BY id"))


def count_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM garments").fetchone()[0])


def tombstone_ids(conn: sqlite3.Connection) -> np.ndarray:
    return _id_array(conn.execute("SELECT id FROM tombstones ORDER BY id"))


def existing_ids(conn: sqlite3.Connection, ids: np.ndarray) -> np.ndarray:
    """Those of ``ids`` that are live rows or tombstones."""
    found: list[int] = []
    for chunk in _chunks(ids.tolist()):
        for table in ("garments", "tombstones"):
            found += [r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE id IN ({_marks(len(chunk))})", chunk)]
    return np.unique(np.asarray(found, dtype=np.int64))


def ids_for_paths(conn: sqlite3.Connection, paths: Sequence[str]) -> np.ndarray:
    found: list[int] = []
    for chunk in _chunks([os.fspath(p) for p in paths]):
        found += [r[0] for r in conn.execute(f"SELECT id FROM garments WHERE path IN ({_marks(len(chunk))})", chunk)]
    return np.unique(np.asarray(found, dtype=np.int64))


def live_ids(conn: sqlite3.Connection, ids: np.ndarray) -> np.ndarray:
    found: list[int] = []
    for chunk in _chunks(ids.tolist()):
        found += [r[0] for r in conn.execute(f"SELECT id FROM garments WHERE id IN ({_marks(len(chunk))})", chunk)]
    return np.unique(np.asarray(found, dtype=np.int64))


def fetch_meta(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, GarmentMeta]:
    out: dict[int, GarmentMeta] = {}
    for chunk in _chunks(sorted({int(i) for i in ids})):
        for row in conn.execute(f"SELECT {_SELECT_COLUMNS} FROM garments WHERE id IN ({_marks(len(chunk))})", chunk):
            i, path, x0, y0, x1, y1, category, object_type, attributes = row
            box = None if x0 is None else (x0, y0, x1, y1)
            out[i] = GarmentMeta(path=path, xyxy=box, category=category, object_type=object_type,
                                 attributes=json.loads(attributes))
    return out


def select_ids(conn: sqlite3.Connection, filters: Mapping[str, Any], attribute_keys: Sequence[str]) -> np.ndarray:
    """Sorted ids of the rows matching every filter (AND over fields, any-of within a field).

    A filter value is a scalar or a list of scalars (any of them). On ``path``, ``category`` and
    ``object_type`` it means equality; on an attribute it means equality for a scalar attribute
    and containment for a list attribute (``{"colours": "red"}`` matches ``["red", "white"]``).
    """
    clauses: list[str] = []
    params: list[Any] = []
    known = list(COLUMN_FIELDS) + list(attribute_keys)
    for key, value in filters.items():
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            raise ValueError(f"filters: unknown field {key!r}; expected one of {known}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values or not all(_is_scalar(v) for v in values):
            raise ValueError(f"filters[{key!r}]: expected a str/int/float/bool or a non-empty list of them; "
                             f"got {value!r}")
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        if key in COLUMN_FIELDS:
            clauses.append(f"{key} IN ({_marks(len(values))})")
        else:  # json_each yields the elements of a list, or the value itself for a scalar
            clauses.append(f"EXISTS (SELECT 1 FROM json_each(garments.attributes, ?) AS a "
                           f"WHERE a.value IN ({_marks(len(values))}))")
            params.append(f"$.{key}")
        params.extend(values)
    where = " AND ".join(clauses) if clauses else "1"
    return _id_array(conn.execute(f"SELECT id FROM garments WHERE {where} ORDER BY id", params))


def _json_ready(attributes: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v.item() if isinstance(v, np.generic) else v

    return {k: conv(v) for k, v in attributes.items()}


def _id_array(cursor: sqlite3.Cursor) -> np.ndarray:
    rows = cursor.fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)
