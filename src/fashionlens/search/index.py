"""``GarmentIndex``: a FAISS vector index of garment embeddings with a metadata table beside it.

Vectors are float32 and L2-normalised, so inner product = cosine similarity (scores in
``[-1, 1]``, higher is closer). Input vectors that are not unit length are normalised on the way in
(queries too); an all-zero vector has no direction and is rejected.

Index kinds (``kind=``):

* ``flat`` — exact search, ``IndexFlatIP`` inside ``IndexIDMap2``; memory ``4·dim`` bytes/vector.
* ``ivf`` — inverted file, inner product: ``nlist`` k-means cells trained on a sample of the build
  vectors, ``nprobe`` cells scanned per query. ``ivf_storage`` picks how the vectors are kept in the
  cells: ``"float16"`` (``IndexIVFScalarQuantizer`` with ``QT_fp16``, no residuals — half
  the memory and about a third less scan time, scores within ~1e-3 of exact) or ``"float32"``
  (``IndexIVFFlat``, exact scores). Either way recall is limited by ``nprobe``, not by the storage
  (fp16 rounding only reorders near-ties). ``"fastscan"`` keeps 4-bit product-quantisation codes
  (``IndexIVFPQFastScan``, ``dim/2`` sub-quantisers: an eighth of the float16 bytes) that are scanned
  with SIMD lookup tables, then re-ranks the best ``refine_factor·k`` candidates exactly against a
  float16 copy of every vector (``IndexRefine`` + ``IndexScalarQuantizer``); scores are float16-exact,
  memory is ``2.25·dim`` bytes per vector, and a scan costs about a third of a float16 scan, so more
  cells fit the same time (1M × 1536: recall@10 0.957 at p99 ~11 ms on 2 cores, where float16 needs
  25 ms for 0.95 — ``benchmarks/bench_index.py``). It deletes through tombstones, like ``hnsw``.
  ``"auto"`` (the default) picks ``fastscan`` from :data:`FASTSCAN_AUTO_MIN` vectors (of an even
  dimension) and ``float16`` otherwise. Cells are not retrained by :meth:`GarmentIndex.add`; after the collection has grown
  several-fold, :meth:`GarmentIndex.rebuild`.
* ``hnsw`` — ``IndexHNSWFlat`` (``M``, ``ef_construction``, ``ef_search``) inside ``IndexIDMap2``.
  FAISS HNSW cannot delete, so :meth:`GarmentIndex.remove` deletes the metadata rows and records
  the ids as *tombstones* (a table in the metadata file), which searches exclude with an
  ``IDSelectorNot``; once tombstones exceed :data:`TOMBSTONE_COMPACT_FRACTION` of the vectors, the
  graph is rebuilt from the live vectors (:meth:`GarmentIndex.rebuild` does it on demand). ``ivf``
  with ``fastscan`` storage (``IndexIDMap2`` around the refine pair) deletes the same way, except that
  it stays tombstoned while fewer vectors than ``max(FASTSCAN_MIN_VECTORS, nlist)`` would remain.
* ``auto`` — ``flat`` up to ``auto_threshold`` vectors (default :data:`DEFAULT_AUTO_THRESHOLD`),
  ``ivf`` above; an auto ``flat`` index that outgrows the threshold through ``add`` is rebuilt as
  ``ivf`` in that same ``add``.

Filters (``search(..., filters=)``) are evaluated in SQLite to a set of ids, which FAISS then
searches through an ``IDSelectorBatch`` (``flat`` is exact; ``ivf`` scales ``nprobe`` by the
inverse selectivity — to every cell, which is exact (for ``fastscan``: up to its PQ pre-ranking of
``refine_factor·k`` candidates), once that passes half of them — and widens it
up to ``nlist`` until ``k`` matching hits are found; ``hnsw`` widens ``ef_search`` and finally scores the matching vectors exactly).
So a filtered search returns ``min(k, number of matches)`` hits.

Crash safety, files and the metadata format: see :mod:`fashionlens.search._store`. In short, each
write makes a new generation of files under temporary names, fsyncs and renames them, and commits
by atomically replacing ``manifest.json``; an interrupted ``build``/``add``/``remove`` leaves the
previous index loadable and complete. One writer per directory at a time; readers that already
loaded an index keep working (the FAISS index lives in memory and the SQLite file stays open).

Integrity: the manifest holds the size and SHA-256 of the vectors and metadata files and seals
itself; :meth:`GarmentIndex.load` checks the seal, reads the vectors file once (hashing it as it is
read, so nothing is parsed before it matched — this briefly needs memory for the file's bytes as well
as the index) and hashes the metadata file and runs ``PRAGMA quick_check`` on it; any difference is
an :class:`IndexFormatError`. Indexes written before checksums existed load with a warning (any
write adds checksums). :func:`verify_index` checks everything (``PRAGMA integrity_check``, ids of
the vectors against the metadata rows) and lists the problems.

Memory: the FAISS index is held in memory (``4·dim`` bytes per vector — ``2·dim`` for ``ivf`` with
``float16`` storage — plus the HNSW graph); :meth:`GarmentIndex.build` does not copy float32 vectors that are already unit length.
FAISS uses OpenMP threads; set their number with ``faiss.omp_set_num_threads``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

from fashionlens.search import _store
from fashionlens.search._store import GarmentMeta, IndexFormatError, IndexManifest

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw")
IvfStorage = Literal["auto", "float16", "float32", "fastscan"]
#: FAISS ``IndexIVF.parallel_mode`` set on every ivf index: 2 = split the work over queries and cells.
IVF_PARALLEL_MODE = 2
#: How ``ivf`` cells store vectors (``params["storage"]``; indexes written before it existed are float32).
IVF_STORAGES: dict[str, str] = {"float16": "IVF-SQfp16", "float32": "IVF-Flat", "fastscan": "IVF-PQfs+refine-SQfp16"}
#: ``ivf_storage="auto"`` picks ``fastscan`` for collections of at least this many vectors, ``float16`` below
FASTSCAN_AUTO_MIN = 100_000
#: ``fastscan`` storage: candidates re-ranked exactly per hit asked for (stored as ``refine_factor``)
FASTSCAN_REFINE_FACTOR = 20
#: ``fastscan`` storage needs this many vectors to train its 16-centroid codebooks
FASTSCAN_MIN_VECTORS = 256
#: ``kind="auto"`` builds ``flat`` up to this many vectors and ``ivf`` above. Exact search reads every
#: vector per query (memory-bound): at dim 1280, 50k vectors (256 MB) took 16–25 ms per query on the
#: 2-core development machine, against ~1 ms for IVF at recall@10 1.0 (benchmarks/bench_index.py).
DEFAULT_AUTO_THRESHOLD = 20_000
#: indexes that delete through tombstones (hnsw, fastscan ivf) are rebuilt when tombstones exceed
#: this fraction of the vectors in the index
TOMBSTONE_COMPACT_FRACTION = 0.25
#: filtered HNSW searches over at most this many matching vectors are scored exactly
EXACT_SEARCH_MAX = 4096
_NORM_TOLERANCE = 1e-4
_ROW_CHUNK = 65_536
_SELECTION_CACHE = 8
_HNSW_FILTERED_EF_MAX = 1024

__all__ = ["DEFAULT_AUTO_THRESHOLD", "FASTSCAN_AUTO_MIN", "GarmentIndex", "GarmentMeta", "IndexFormatError", "IndexKind",
           "IndexManifest", "IvfStorage", "SearchHit", "default_nlist", "default_nprobe", "verify_index"]


@dataclass(frozen=True)
class SearchHit:
    """One search result: ``rank`` (1 = best), vector ``id``, cosine ``score`` and the stored metadata."""

    rank: int
    id: int
    score: float
    path: str
    xyxy: tuple[float, float, float, float] | None
    category: str | None
    object_type: str | None
    attributes: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``score`` rounded to 6 decimals."""
        return {"rank": self.rank, "id": self.id, "score": round(self.score, 6), "path": self.path,
                "xyxy": list(self.xyxy) if self.xyxy is not None else None, "category": self.category,
                "object_type": self.object_type, "attributes": dict(self.attributes)}


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: the power of two nearest ``2·sqrt(n)`` (1M → 2048, 50k → 512),
    capped so every cell gets >= 39 training points (FAISS's minimum)."""
    target = 2 ** round(math.log2(max(1.0, 2 * math.sqrt(max(n, 1)))))
    return int(max(1, min(target, n // 39)))


def default_nprobe(nlist: int) -> int:
    """Cells scanned per query: ``nlist / 32`` (at least 1): 2048 → 64, 512 → 16.

    On the clustered synthetic data of ``benchmarks/bench_index.py`` (50k × 1280) this gives
    recall@10 of 1.0 against exact search; real embeddings may need more — measure, then pass
    ``nprobe=`` to ``build``/``rebuild`` (stored) or to ``search`` (per query)."""
    return int(max(1, min(nlist, round(nlist / 32))))


def default_fastscan_nprobe(nlist: int) -> int:
    """Cells scanned per query with ``fastscan`` storage: ``nlist / 6`` (2048 → 341). Its scans are about
    3× cheaper than float16 ones, so it scans more: on the hard synthetic mixture of
    ``benchmarks/bench_index.py`` (1M × 1536) this reaches recall@10 ≈ 0.96 in ~10 ms on 2 cores."""
    return int(max(1, min(nlist, round(nlist / 6))))


class GarmentIndex:
    """A garment vector index stored in a directory; create with :meth:`build`, open with :meth:`load`.

    Vectors are ``(n, dim)`` float32, L2-normalised; each has an int64 id (>= 0) and one
    :class:`GarmentMeta` row. One process writes a directory at a time; within a process the
    object may be shared between threads (operations take a lock and run one at a time).
    :meth:`search` returns the nearest stored vectors (cosine) as :class:`SearchHit` rows, optionally
    filtered on the metadata; :meth:`add` and :meth:`remove` change it in place.

    >>> import numpy as np
    >>> from fashionlens import GarmentIndex
    >>> vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    >>> meta = [{"path": f"{i}.jpg", "category": "shirts"} for i in range(3)]
    >>> with GarmentIndex.build(vectors, meta, "my-index") as index:
    ...     [hits] = index.search(vectors[:1], k=2, filters={"category": "shirts"})
    >>> hits[0].path, hits[0].rank
    ('0.jpg', 1)
    >>> index = GarmentIndex.load("my-index")
    """

    def __init__(self, directory: Path, manifest: IndexManifest, index: faiss.Index,
                 conn: sqlite3.Connection, tombstones: np.ndarray) -> None:
        """Internal: use :meth:`build` or :meth:`load`."""
        self._directory = directory
        self._manifest = manifest
        self._index = index
        self._conn = conn
        self._tombstones = tombstones
        self._lock = threading.RLock()
        self._selections: OrderedDict[str, tuple[np.ndarray, faiss.IDSelector]] = OrderedDict()
        # fastscan filtered searches: id(allowed ids) -> (those ids, position bitmap, its selector)
        self._position_bitmaps: OrderedDict[int, tuple[np.ndarray, np.ndarray, faiss.IDSelector]] = OrderedDict()
        self._id_map: np.ndarray | None = None

    # -------------------------------------------------------------------------------- properties

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def manifest(self) -> IndexManifest:
        """The committed manifest (as in ``manifest.json``)."""
        return self._manifest

    @property
    def dim(self) -> int:
        return self._manifest.dim

    @property
    def kind(self) -> str:
        """``flat``, ``ivf`` or ``hnsw`` (what ``auto`` resolved to)."""
        return self._manifest.kind

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._manifest.params)

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        return self._manifest.count

    def __repr__(self) -> str:
        return (f"GarmentIndex({str(self._directory)!r}, kind={self.kind!r}, dim={self.dim}, "
                f"count={len(self)}, params={self._manifest.params})")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the metadata connection (the object is unusable afterwards)."""
        with self._lock:
            self._conn.close()

    # -------------------------------------------------------------------------------- create / open

    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        metadata: Sequence[GarmentMeta | Mapping[str, Any]],
        directory: str | os.PathLike[str],
        *,
        kind: IndexKind = "auto",
        ids: npt.ArrayLike | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        auto_threshold: int = DEFAULT_AUTO_THRESHOLD,
        info: Mapping[str, Any] | None = None,
        seed: int = 0,
        ivf_storage: IvfStorage = "auto",
    ) -> GarmentIndex:
        """Build an index of ``vectors`` in ``directory``, atomically replacing any index there.

        Args:
            vectors: ``(n, dim)`` real numbers, finite, no all-zero rows; normalised if not unit length.
                ``(0, dim)`` makes an empty ``flat`` index of that dimension.
            metadata: ``n`` :class:`GarmentMeta` (or dicts with its fields), row ``i`` for vector ``i``.
            directory: created if missing. Only this index's own files in it are written or removed.
            kind: ``auto``, ``flat``, ``ivf`` or ``hnsw`` (see the module docstring).
            ids: ``(n,)`` distinct int64 ids >= 0; default ``0 … n-1``.
            nlist, nprobe: IVF cells and cells scanned per query; default :func:`default_nlist`,
                :func:`default_nprobe`. ``nlist <= n`` (FAISS wants >= 39 training vectors per cell
                and warns below; training uses up to ``64·nlist`` sampled vectors).
            hnsw_m, ef_construction, ef_search: HNSW graph degree and beam widths.
            auto_threshold: largest collection ``auto`` keeps ``flat``.
            info: free-form JSON-serialisable caller metadata stored in the manifest (e.g. encoder name).
            seed: seeds the IVF training sample.
            ivf_storage: how ``ivf`` cells keep the vectors: ``float16`` (half the memory, faster scans),
                ``float32`` (exact scores), ``fastscan`` (4-bit PQ codes + exact float16 re-ranking; the
                fastest at large scale) or ``auto`` (``fastscan`` from :data:`FASTSCAN_AUTO_MIN` vectors,
                else ``float16``); ignored by the other kinds.

        Returns:
            The opened index.

        Raises:
            ValueError: vectors/metadata/ids/parameters malformed (the message states expected vs got).
        """
        directory = Path(directory)
        vecs = _unit_vectors(vectors, dim=None, what="vectors")
        n, dim = vecs.shape
        metas = _store.as_meta_list(metadata, n)
        id_arr = np.arange(n, dtype=np.int64) if ids is None else _check_new_ids(ids, n)
        info_dict = _check_info(info)
        _check_positive(auto_threshold=auto_threshold, hnsw_m=hnsw_m, ef_construction=ef_construction,
                        ef_search=ef_search)
        if kind not in ("auto", *KINDS):
            raise ValueError(f"kind: expected one of {('auto', *KINDS)}; got {kind!r}")
        resolved = _resolve_kind(kind, n, auto_threshold)
        params = _resolve_params(resolved, n, dim, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m,
                                 ef_construction=ef_construction, ef_search=ef_search, seed=seed,
                                 ivf_storage=ivf_storage)
        params["auto_threshold"] = int(auto_threshold)
        index = _make_index(resolved, dim, params, vecs, id_arr)

        directory.mkdir(parents=True, exist_ok=True)
        try:
            prev: IndexManifest | None = IndexManifest.read(directory)
        except (FileNotFoundError, IndexFormatError):
            prev = None
        now = _now()
        manifest = IndexManifest(
            dim=dim, kind=resolved, requested_kind=kind, params=params, count=n, ntotal=n, tombstones=0,
            next_id=int(id_arr.max()) + 1 if n else 0, generation=(prev.generation if prev else 0) + 1,
            files={}, attribute_keys=_attribute_keys((), metas), info=info_dict, created=now, updated=now)
        manifest = _write_generation(directory, manifest, index=index, reuse_vectors=None, source=None,
                                     edit=lambda conn: _store.insert_rows(conn, id_arr, metas))
        logger.info("built %s index of %d vectors (dim %d) in %s", resolved, n, dim, directory)
        return cls._open(directory, manifest, index)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> GarmentIndex:
        """Open the index committed in ``directory``, checking the files against the manifest's checksums
        first (see the module docstring).

        Raises:
            FileNotFoundError: no such directory, no ``manifest.json``, or a file it names is missing.
            IndexFormatError: corrupt manifest or files (a checksum or SQLite check failed), or files
                inconsistent with the manifest (dimension, kind, vector count vs metadata rows) — the
                message says expected vs got.
        """
        directory = Path(directory)
        manifest = IndexManifest.read(directory)
        if not manifest.checksums:
            logger.warning("index in %s has no file checksums (written by an older fashionlens): its files are not "
                           "verified; any write (add, remove, rebuild) or a new build adds them", directory)
        index = _read_vectors(directory, manifest)
        return cls._open(directory, manifest, index)

    @classmethod
    def _open(cls, directory: Path, manifest: IndexManifest, index: faiss.Index) -> GarmentIndex:
        _apply_search_defaults(index, manifest)
        path = directory / manifest.files["metadata"]
        conn = _store.open_read_only(path, manifest.checksums.get("metadata"))
        try:
            with _store.metadata_errors(path):
                tombstones = _check_counts(directory, manifest, index, conn)
        except BaseException:
            conn.close()
            raise
        return cls(directory, manifest, index, conn, tombstones)

    # -------------------------------------------------------------------------------- writes

    def add(self, vectors: npt.ArrayLike, metadata: Sequence[GarmentMeta | Mapping[str, Any]], *,
            ids: npt.ArrayLike | None = None) -> np.ndarray:
        """Add ``(n, dim)`` vectors with their metadata; commits a new generation.

        Args:
            vectors: ``(n, dim)`` with this index's ``dim``; normalised if not unit length.
            metadata: ``n`` rows.
            ids: ``(n,)`` new distinct ids >= 0 not in use (removed HNSW ids stay in use until
                compaction); default ``next_id … next_id + n - 1``.

        Returns:
            ``(n,)`` int64 ids of the added vectors.
        """
        vecs = _unit_vectors(vectors, dim=self.dim, what="vectors")
        n = len(vecs)
        metas = _store.as_meta_list(metadata, n)
        with self._lock:
            m = self._manifest
            if ids is None:
                new_ids = np.arange(m.next_id, m.next_id + n, dtype=np.int64)
            else:
                new_ids = _check_new_ids(ids, n)
                with self._metadata_errors():
                    taken = _store.existing_ids(self._conn, new_ids)
                if len(taken):
                    raise ValueError(f"ids: expected ids not in the index; got {len(taken)} in use "
                                     f"(e.g. {taken[:5].tolist()})")
            if n == 0:
                return new_ids
            manifest = replace(m, count=m.count + n, ntotal=m.ntotal + n,
                               next_id=max(m.next_id, int(new_ids.max()) + 1),
                               attribute_keys=_attribute_keys(m.attribute_keys, metas))

            def edit(conn: sqlite3.Connection) -> None:
                _store.insert_rows(conn, new_ids, metas)

            if m.requested_kind == "auto" and m.kind == "flat" and manifest.count > m.params["auto_threshold"]:
                old_ids, old_vecs = self._live_vectors()
                all_vecs = np.concatenate([old_vecs, vecs])
                del old_vecs
                all_ids = np.concatenate([old_ids, new_ids])
                params = _resolve_params("ivf", len(all_ids), self.dim, nlist=None, nprobe=None, hnsw_m=32,
                                         ef_construction=80, ef_search=64, seed=m.params.get("seed", 0),
                                         ivf_storage="auto")
                params["auto_threshold"] = m.params["auto_threshold"]
                index = _make_index("ivf", self.dim, params, all_vecs, all_ids)
                logger.info("auto index outgrew %d vectors: rebuilt as ivf", m.params["auto_threshold"])
                self._commit(replace(manifest, kind="ivf", params=params), index, edit)
            else:
                self._commit(manifest, self._index, edit, mutate=lambda: self._index.add_with_ids(vecs, new_ids))
            return new_ids

    def remove(self, ids: Iterable[int] | npt.ArrayLike | None = None, *,
               paths: Iterable[str | os.PathLike[str]] | None = None) -> np.ndarray:
        """Remove vectors by id and/or by source image path (all garments of that path).

        Ids and paths not in the index are ignored. ``hnsw`` and ``fastscan`` ``ivf``: see tombstones in
        the module docstring.

        Returns:
            Sorted int64 ids actually removed (empty: nothing changed, nothing written).
        """
        targets = np.zeros(0, dtype=np.int64)
        if ids is not None:
            arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
            if arr.size and (arr.ndim != 1 or arr.dtype.kind not in "iu"):
                raise ValueError(f"ids: expected a 1-D sequence of integers; got {arr.dtype} of shape {arr.shape}")
            targets = arr.astype(np.int64).reshape(-1)
        with self._lock:
            if paths is not None and isinstance(paths, (str, os.PathLike)):
                raise ValueError(f"paths: expected a list of paths; got a single {type(paths).__name__}")
            with self._metadata_errors():
                if paths is not None:
                    targets = np.concatenate([targets, _store.ids_for_paths(self._conn, [os.fspath(p) for p in paths])])
                found = _store.live_ids(self._conn, np.unique(targets))
            if not len(found):
                return found
            m = self._manifest
            manifest = replace(m, count=m.count - len(found))
            if not _uses_tombstones(m):
                self._commit(replace(manifest, ntotal=m.ntotal - len(found)), self._index,
                             lambda conn: _store.delete_rows(conn, found),
                             mutate=lambda: self._index.remove_ids(faiss.IDSelectorBatch(found)))
                return found
            tombstones = np.union1d(self._tombstones, found)
            live_after = m.ntotal - len(tombstones)
            retrainable = self.kind == "hnsw" or live_after >= max(FASTSCAN_MIN_VECTORS, int(m.params["nlist"]))
            if len(tombstones) <= TOMBSTONE_COMPACT_FRACTION * m.ntotal or not retrainable:
                # (fastscan: too few vectors left to retrain its cells and codebooks: stay tombstoned)

                def tombstone(conn: sqlite3.Connection) -> None:
                    _store.delete_rows(conn, found)
                    _store.add_tombstones(conn, found)

                self._commit(replace(manifest, tombstones=len(tombstones)), None, tombstone)
                return found

            def compact(conn: sqlite3.Connection) -> None:
                _store.delete_rows(conn, found)
                _store.clear_tombstones(conn)

            live_ids, live = self._live_vectors(exclude=tombstones)
            index = _make_index(self.kind, self.dim, m.params, live, live_ids)
            logger.info("%s: %d tombstones > %.0f%% of %d vectors: index rebuilt", self.kind, len(tombstones),
                        100 * TOMBSTONE_COMPACT_FRACTION, m.ntotal)
            self._commit(replace(manifest, ntotal=len(live_ids), tombstones=0), index, compact)
            return found

    def rebuild(self, *, kind: IndexKind | None = None, nlist: int | None = None, nprobe: int | None = None,
                hnsw_m: int | None = None, ef_construction: int | None = None,
                ef_search: int | None = None, ivf_storage: IvfStorage | None = None) -> None:
        """Rebuild the FAISS index from the stored live vectors (same ids and metadata).

        Use it to retrain IVF cells after growth, to compact HNSW tombstones, or to change ``kind``
        or parameters; unspecified parameters keep their stored values (IVF's ``nlist``/``nprobe``
        are re-derived from the new size unless given; ``ivf_storage`` defaults to the one asked for at
        build — ``auto`` re-decides by the new size; float32 for ivf indexes written before the option
        existed — and to ``auto`` when the kind changes).
        Needs memory for a copy of the vectors.
        """
        with self._lock:
            m = self._manifest
            requested = kind or m.requested_kind
            if requested not in ("auto", *KINDS):
                raise ValueError(f"kind: expected one of {('auto', *KINDS)}; got {requested!r}")
            ids, vecs = self._live_vectors()
            new_kind = _resolve_kind(requested, len(ids), m.params["auto_threshold"])
            old = m.params
            params = _resolve_params(
                new_kind, len(ids), self.dim, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m or old.get("M", 32),
                ef_construction=ef_construction or old.get("ef_construction", 80),
                ef_search=ef_search or old.get("ef_search", 64), seed=old.get("seed", 0),
                ivf_storage=ivf_storage or (old.get("requested_storage", _stored_storage(old)) if m.kind == "ivf"
                                            else "auto"))
            params["auto_threshold"] = old["auto_threshold"]
            index = _make_index(new_kind, self.dim, params, vecs, ids)
            manifest = replace(m, kind=new_kind, requested_kind=requested, params=params, ntotal=len(ids),
                               tombstones=0)
            self._commit(manifest, index, _store.clear_tombstones)

    def _commit(self, manifest: IndexManifest, index: faiss.Index | None,
                edit: Callable[[sqlite3.Connection], None], *, mutate: Callable[[], object] | None = None) -> None:
        """Apply ``mutate`` (an in-place change of the in-memory index), write and commit a new
        generation with ``index`` (``None``: keep the committed vectors file) and the metadata edited
        by ``edit``. On any failure the in-memory state is the committed one again."""
        if index is None and "vectors" not in self._manifest.checksums:
            index = self._index  # an index written before checksums: write the vectors again, with one
        try:
            if mutate is not None:
                mutate()
            committed = _write_generation(
                self._directory, replace(manifest, generation=self._manifest.generation + 1, updated=_now()),
                index=index, reuse_vectors=None if index is not None else self._manifest.files["vectors"],
                source=self._conn, edit=edit)
        except BaseException:
            if mutate is not None:
                self._index = _read_vectors(self._directory, self._manifest)
                _apply_search_defaults(self._index, self._manifest)
            raise
        conn = _store.open_read_only(self._directory / committed.files["metadata"])
        old_conn, self._conn = self._conn, conn
        old_conn.close()
        if index is not None:
            self._index = index
        _apply_search_defaults(self._index, committed)
        self._tombstones = _store.tombstone_ids(conn)
        self._manifest = committed
        self._selections.clear()
        self._position_bitmaps.clear()
        self._id_map = None

    # -------------------------------------------------------------------------------- reads

    def _metadata_errors(self) -> contextlib.AbstractContextManager[None]:
        """SQLite errors reading the metadata become :class:`IndexFormatError` (:func:`_store.metadata_errors`)."""
        return _store.metadata_errors(self._directory / self._manifest.files["metadata"])

    def get(self, ids: Iterable[int]) -> dict[int, GarmentMeta]:
        """Metadata of the given ids (missing ids are absent from the result)."""
        with self._lock, self._metadata_errors():
            return _store.fetch_meta(self._conn, [int(i) for i in ids])

    def select(self, filters: Mapping[str, Any]) -> np.ndarray:
        """Sorted int64 ids of the live vectors matching ``filters`` (see :meth:`search`)."""
        return self._selection(filters)[0].copy()

    def search(self, query_vectors: npt.ArrayLike, k: int = 10, *, filters: Mapping[str, Any] | None = None,
               nprobe: int | None = None, ef_search: int | None = None) -> list[list[SearchHit]]:
        """The ``k`` nearest stored vectors (highest cosine) to each query.

        Args:
            query_vectors: ``(q, dim)``; normalised if not unit length.
            k: hits per query (>= 1).
            filters: field → value or list of values (any of them); fields are ANDed. ``path``,
                ``category``, ``object_type``: equality; attributes: equality, or containment for
                list attributes — ``{"category": "sweaters", "colours": "red"}``. Unknown fields raise
                ``ValueError`` with a suggestion.
            nprobe: ``ivf`` cells to scan (default: the stored ``nprobe``).
            ef_search: ``hnsw`` beam width (default: the stored ``ef_search``; at least ``k``).

        Returns:
            One list per query of ``min(k, matching vectors)`` hits, best first.
        """
        q = _unit_vectors(query_vectors, dim=self.dim, what="query_vectors")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected an integer >= 1; got {k!r}")
        _check_positive(nprobe=nprobe, ef_search=ef_search)
        with self._lock:
            allowed, selector = self._selection(filters) if filters else (None, None)
            available = len(self) if allowed is None else len(allowed)
            want = int(min(k, available))
            if want == 0 or len(q) == 0:
                return [[] for _ in range(len(q))]
            scores, ids = self._knn(q, want, allowed, selector, nprobe, ef_search)
            with self._metadata_errors():
                metas = _store.fetch_meta(self._conn, ids[ids >= 0].tolist())
        out: list[list[SearchHit]] = []
        for row_s, row_i in zip(scores, ids):
            hits: list[SearchHit] = []
            for s, i in zip(row_s.tolist(), row_i.tolist()):
                meta = metas.get(i)
                if i < 0 or meta is None:
                    continue
                hits.append(SearchHit(rank=len(hits) + 1, id=i, score=float(s), path=meta.path, xyxy=meta.xyxy,
                                      category=meta.category, object_type=meta.object_type,
                                      attributes=meta.attributes))
            out.append(hits)
        return out

    def _selection(self, filters: Mapping[str, Any]) -> tuple[np.ndarray, faiss.IDSelector]:
        if not isinstance(filters, Mapping):
            raise TypeError(f"filters: expected a mapping of field -> value(s); got {type(filters).__name__}")
        key = json.dumps({k: sorted(v, key=str) if isinstance(v, (list, tuple, set, frozenset)) else v
                          for k, v in filters.items()}, sort_keys=True, default=str)
        with self._lock:
            hit = self._selections.get(key)
            if hit is None:
                with self._metadata_errors():
                    ids = _store.select_ids(self._conn, filters, self._manifest.attribute_keys)
                hit = (ids, faiss.IDSelectorBatch(ids))
                self._selections[key] = hit
                while len(self._selections) > _SELECTION_CACHE:
                    self._selections.popitem(last=False)
            self._selections.move_to_end(key)
            return hit

    def _knn(self, q: np.ndarray, k: int, allowed: np.ndarray | None, selector: faiss.IDSelector | None,
             nprobe: int | None, ef_search: int | None) -> tuple[np.ndarray, np.ndarray]:
        """``(q, k)`` scores and ids (-1 where fewer were found); ``allowed`` restricts the ids."""
        keep: list[Any] = []  # FAISS does not own selectors: keep them alive during the search
        if selector is None and len(self._tombstones):
            batch = faiss.IDSelectorBatch(self._tombstones)
            selector = faiss.IDSelectorNot(batch)
            keep.append(batch)

        def short(ids: np.ndarray) -> np.ndarray:
            return (ids >= 0).sum(axis=1) < k

        if self.kind == "flat":
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            return self._index.search(q, k, params=params)

        if self.kind == "ivf":
            nlist = int(_ivf_of(self._index).nlist)
            p = nprobe or int(self._manifest.params["nprobe"])
            if allowed is not None:  # expect as many matching vectors in the scanned cells as unfiltered
                p = math.ceil(p * max(1, len(self)) / max(1, len(allowed)))
                if p > nlist // 2:  # about as costly as scanning every cell, which is exact
                    p = nlist
            p = min(nlist, max(1, p))

            refine = self._manifest.params.get("refine_factor") if _stored_storage(self._manifest.params) == "fastscan" \
                else None
            if refine is not None and selector is not None:  # the IVF inside sees positions, not ids
                keep.append(selector)
                selector = faiss.IDSelectorTranslated(self._index.id_map, selector)
                if allowed is not None and p == nlist:
                    # every cell would be scanned, and fast-scan computes the distance of every code
                    # before it tests the filter: score only the matching float16 copies (exact)
                    return self._exact_positions(q, k, allowed)

            def run_ivf(qq: np.ndarray, probe: int) -> tuple[np.ndarray, np.ndarray]:
                params = faiss.SearchParametersIVF(nprobe=probe, sel=selector)
                if refine is None:
                    return self._index.search(qq, k, params=params)
                return self._index.search(qq, k, params=faiss.IndexRefineSearchParameters(
                    k_factor=float(refine), base_index_params=params))

            scores, ids = run_ivf(q, p)
            todo = short(ids)
            while todo.any() and p < nlist:  # p == nlist scans every cell: exact
                p = min(nlist, p * 4)
                scores[todo], ids[todo] = run_ivf(q[todo], p)
                todo = short(ids)
            return scores, ids

        # hnsw
        if allowed is not None and len(allowed) <= EXACT_SEARCH_MAX:
            return self._exact(q, k, allowed)
        ef = max(ef_search or int(self._manifest.params["ef_search"]), k)
        if allowed is not None:  # widen the beam by the inverse selectivity, within bounds
            ef = max(ef, min(math.ceil(ef * len(self) / max(1, len(allowed))), _HNSW_FILTERED_EF_MAX))

        def run_hnsw(qq: np.ndarray, beam: int) -> tuple[np.ndarray, np.ndarray]:
            return self._index.search(qq, k, params=faiss.SearchParametersHNSW(efSearch=beam, sel=selector))

        scores, ids = run_hnsw(q, ef)
        todo = short(ids)
        for _ in range(3):
            if not todo.any():
                break
            ef *= 4
            scores[todo], ids[todo] = run_hnsw(q[todo], ef)
            todo = short(ids)
        if todo.any():
            candidates = allowed if allowed is not None else self._live_ids()
            scores[todo], ids[todo] = self._exact(q[todo], k, candidates)
        return scores, ids

    def _exact_positions(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fastscan ``ivf``: exact top-``k`` among the ``allowed`` ids, by scanning the float16 copies
        through a bitmap of their positions (built once per filter and generation, then cached)."""
        pair = _refine_pair(self._index)
        assert pair is not None
        if self._id_map is None:  # position -> id, copied once per generation
            self._id_map = faiss.vector_to_array(self._index.id_map)
        id_map = self._id_map
        cached = self._position_bitmaps.get(id(allowed))
        if cached is None or cached[0] is not allowed:
            bits = np.packbits(np.isin(id_map, allowed), bitorder="little")
            cached = (allowed, bits, faiss.IDSelectorBitmap(len(id_map), faiss.swig_ptr(bits)))
            self._position_bitmaps[id(allowed)] = cached
            while len(self._position_bitmaps) > _SELECTION_CACHE:
                self._position_bitmaps.popitem(last=False)
        scores, pos = pair.refine_index.search(q, k, params=faiss.SearchParameters(sel=cached[2]))
        return scores, np.where(pos >= 0, id_map[np.maximum(pos, 0)], -1)

    def _exact(self, q: np.ndarray, k: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-``k`` over ``candidates`` (ids) by reconstructing their vectors in chunks."""
        best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), k), -1, dtype=np.int64)
        for start in range(0, len(candidates), _ROW_CHUNK):
            chunk = np.ascontiguousarray(candidates[start:start + _ROW_CHUNK], dtype=np.int64)
            s = q @ self._index.reconstruct_batch(chunk).T
            all_s = np.concatenate([best_s, s], axis=1)
            all_i = np.concatenate([best_i, np.broadcast_to(chunk, s.shape)], axis=1)
            top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
        best_i[~np.isfinite(best_s)] = -1
        return best_s, best_i

    def _live_ids(self) -> np.ndarray:
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return np.setdiff1d(ids, self._tombstones) if len(self._tombstones) else np.sort(ids)

    def _live_vectors(self, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(n,)`` ids and ``(n, dim)`` float32 vectors stored in the FAISS index, tombstones excluded."""
        ids, vecs = _stored_vectors(self._index, self.kind)
        drop = self._tombstones if exclude is None else exclude
        if len(drop):
            keep = ~np.isin(ids, drop)
            ids, vecs = ids[keep], vecs[keep]
        return ids, np.ascontiguousarray(vecs)


# ------------------------------------------------------------------------------------ helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_faiss(index: faiss.Index, path: Path) -> dict[str, Any]:
    """Write ``index`` to ``path``; returns the file's ``{"bytes", "sha256"}``, hashed on the way out."""
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as fh:
        def write(block: bytes) -> int:
            nonlocal size
            digest.update(block)
            size += len(block)
            return fh.write(block)

        faiss.write_index(index, faiss.PyCallbackIOWriter(write))
    return {"bytes": size, "sha256": digest.hexdigest()}


def _read_faiss(data: np.ndarray) -> faiss.Index:
    """The FAISS index serialised in ``data`` (``uint8``), read in blocks (no second copy of the bytes)."""
    view, pos = memoryview(data), 0

    def read(n: int) -> bytes:
        nonlocal pos
        block = view[pos:pos + n].tobytes()
        pos += len(block)
        return block

    return faiss.read_index(faiss.PyCallbackIOReader(read))


def _read_vectors(directory: Path, manifest: IndexManifest) -> faiss.Index:
    """The committed FAISS index of ``manifest``: checksum first (when the manifest has one), then parsed
    and checked against the manifest (kind, ivf storage, dim, vector count)."""
    if manifest.kind not in KINDS:
        raise IndexFormatError(f"manifest in {directory}: expected kind in {KINDS}; got {manifest.kind!r}")
    path = directory / manifest.files["vectors"]
    if not path.is_file():
        raise FileNotFoundError(f"index vectors file {path} (named in {_store.MANIFEST_NAME}) is missing")
    expected = manifest.checksums.get("vectors")
    try:
        index = faiss.read_index(str(path)) if expected is None else \
            _read_faiss(_store.read_checked(path, expected, "vectors"))
    except RuntimeError as e:
        raise IndexFormatError(f"index vectors file {path}: expected a FAISS index; got "
                               f"{' '.join(str(e).split())}") from None
    _check_vectors(path, manifest, index)
    return index


def _check_vectors(path: Path, manifest: IndexManifest, index: faiss.Index) -> None:
    found = _kind_of(index)
    if found != manifest.kind:
        raise IndexFormatError(f"index vectors file {path}: expected a {manifest.kind} index (manifest); "
                               f"got {found or type(index).__name__}")
    if found == "ivf" and _ivf_storage_of(index) != _stored_storage(manifest.params):
        raise IndexFormatError(f"index vectors file {path}: expected {_stored_storage(manifest.params)} ivf storage "
                               f"(manifest); got {_ivf_storage_of(index)}")
    if index.d != manifest.dim:
        raise IndexFormatError(f"index vectors file {path}: expected dim {manifest.dim} (manifest); got {index.d}")
    if index.ntotal != manifest.ntotal:
        raise IndexFormatError(f"index vectors file {path}: expected {manifest.ntotal} vectors (manifest); "
                               f"got {index.ntotal}")


def _check_counts(directory: Path, manifest: IndexManifest, index: faiss.Index, conn: sqlite3.Connection
                  ) -> np.ndarray:
    """Check metadata rows and tombstones against the manifest and the FAISS index; returns the tombstones."""
    rows = _store.count_rows(conn)
    tombstones = _store.tombstone_ids(conn)
    if rows != manifest.count:
        raise IndexFormatError(f"index metadata in {directory}: expected {manifest.count} rows (manifest "
                               f"count); got {rows}")
    if len(tombstones) != manifest.tombstones or (len(tombstones) and not _uses_tombstones(manifest)):
        raise IndexFormatError(f"index metadata in {directory}: expected {manifest.tombstones} tombstones "
                               f"({manifest.kind}); got {len(tombstones)}")
    if rows + len(tombstones) != index.ntotal:
        raise IndexFormatError(f"index in {directory}: expected the vector count to equal metadata rows + "
                               f"tombstones = {rows + len(tombstones)}; got {index.ntotal} vectors")
    return tombstones


def _check_ids(directory: Path, index: faiss.Index, conn: sqlite3.Connection) -> None:
    """The ids inside the FAISS index must be exactly the metadata rows' ids plus the tombstones."""
    expected = np.union1d(_store.all_ids(conn), _store.tombstone_ids(conn))
    got = np.sort(_faiss_ids(index))
    if not np.array_equal(expected, got):
        missing, extra = np.setdiff1d(expected, got), np.setdiff1d(got, expected)
        raise IndexFormatError(f"index in {directory}: expected the vector ids to be the metadata ids + tombstones "
                               f"({len(expected)}); got {len(missing)} missing (e.g. {missing[:5].tolist()}) and "
                               f"{len(extra)} without metadata (e.g. {extra[:5].tolist()})")


def _faiss_ids(index: faiss.Index) -> np.ndarray:
    """Every id stored in a FAISS index of this module (tombstoned ones included), unordered."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    invlists = faiss.downcast_index(index).invlists
    parts = [np.zeros(0, dtype=np.int64)]
    for cell in range(invlists.nlist):
        n = invlists.list_size(cell)
        if n:
            ptr = invlists.get_ids(cell)
            parts.append(faiss.rev_swig_ptr(ptr, n).astype(np.int64))  # astype copies
            invlists.release_ids(cell, ptr)
    return np.concatenate(parts)


def verify_index(directory: str | os.PathLike[str]) -> list[str]:
    """Check an index directory completely; returns the problems found (empty: intact).

    Checks the manifest (seal, fields), each data file against its size and SHA-256, that the FAISS
    index parses and matches the manifest (kind, storage, dim, count), SQLite's full
    ``PRAGMA integrity_check`` of the metadata, the row and tombstone counts, and that the vector ids
    are exactly the metadata ids plus the tombstones. An index written before checksums existed is
    reported (its files cannot be verified) and otherwise checked the same way.
    """
    directory = Path(directory)
    try:
        manifest = IndexManifest.read(directory)
    except (FileNotFoundError, IndexFormatError) as e:
        return [str(e)]
    problems: list[str] = []
    if not manifest.checksums:
        problems.append(f"manifest {directory / _store.MANIFEST_NAME}: expected file checksums; got none (written by "
                        "an older fashionlens): the files cannot be verified; rebuild the index to add them")
    index = conn = None
    try:
        index = _read_vectors(directory, manifest)
    except (FileNotFoundError, IndexFormatError) as e:
        problems.append(str(e))
    path = directory / manifest.files["metadata"]
    try:
        conn = _store.open_read_only(path, manifest.checksums.get("metadata"), full_check=True)
        if index is not None:
            with _store.metadata_errors(path):
                _check_counts(directory, manifest, index, conn)
                _check_ids(directory, index, conn)
    except (FileNotFoundError, IndexFormatError) as e:
        problems.append(str(e))
    finally:
        if conn is not None:
            conn.close()
    return problems


def _write_generation(directory: Path, manifest: IndexManifest, *, index: faiss.Index | None,
                      reuse_vectors: str | None, source: sqlite3.Connection | None,
                      edit: Callable[[sqlite3.Connection], None]) -> IndexManifest:
    """Write the files of ``manifest.generation`` and commit them by replacing ``manifest.json``.

    ``index`` is written to a new vectors file unless it is ``None`` (``reuse_vectors`` names the
    committed one to keep, whose checksum ``manifest`` carries). The metadata file is ``source`` copied
    (or a new table) with ``edit`` applied. The manifest records both files' sizes and SHA-256. On
    failure the new files are removed and the committed generation is untouched.
    """
    token = _store.new_generation_token(manifest.generation)
    files = {"vectors": reuse_vectors or f"vectors-{token}.faiss", "metadata": f"metadata-{token}.sqlite"}
    new_files = [directory / files["metadata"]] + ([] if reuse_vectors else [directory / files["vectors"]])
    checksums = {"vectors": manifest.checksums["vectors"]} if reuse_vectors else {}
    try:
        checksums["metadata"] = _store.write_metadata(directory / files["metadata"], source, edit)
        if index is not None:
            _store.write_atomically(directory / files["vectors"],
                                    lambda p: checksums.update(vectors=_write_faiss(index, p)))
        manifest = replace(manifest, files=files, checksums=checksums)
        _store.fsync_dir(directory)  # the data files' renames are durable before the manifest names them
        _store.write_manifest(directory, manifest)
    except BaseException:
        for path in new_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        raise
    _store.remove_stale_files(directory, keep=files.values())
    return manifest


def _unit_vectors(x: npt.ArrayLike, *, dim: int | None, what: str) -> np.ndarray:
    """Validate ``x`` as ``(n, dim)`` finite real numbers; return C-contiguous float32 unit rows.

    Not copied when already float32, C-contiguous and unit length (within 1e-4).
    """
    arr = np.asarray(x)
    shape = f"(n, {dim})" if dim is not None else "(n, dim)"
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array of shape {shape}; got shape {arr.shape}")
    if (dim is not None and arr.shape[1] != dim) or arr.shape[1] < 1:
        raise ValueError(f"{what}: expected shape {shape}; got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected real numbers; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    norms = np.empty(len(arr), dtype=np.float64)
    for start in range(0, len(arr), _ROW_CHUNK):
        chunk = arr[start:start + _ROW_CHUNK]
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            raise ValueError(f"{what}: expected finite numbers; got NaN or inf in row {row}")
        norms[start:start + len(chunk)] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk, dtype=np.float64))
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise ValueError(f"{what}: expected non-zero vectors (cosine needs a direction); got {len(zero)} "
                         f"all-zero row(s), first {int(zero[0])}")
    if len(arr) and np.abs(norms - 1).max() > _NORM_TOLERANCE:
        out = np.empty_like(arr)
        for start in range(0, len(arr), _ROW_CHUNK):
            stop = start + _ROW_CHUNK
            out[start:stop] = arr[start:stop] / norms[start:stop, None]
        arr = out
    return arr


def _check_new_ids(ids: npt.ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.shape != (n,) or (n and arr.dtype.kind not in "iu"):
        raise ValueError(f"ids: expected {n} integers, shape ({n},); got {arr.dtype} of shape {arr.shape}")
    arr = arr.astype(np.int64)
    if n and arr.min() < 0:
        raise ValueError(f"ids: expected ids >= 0; got {int(arr.min())}")
    if len(np.unique(arr)) != n:
        raise ValueError(f"ids: expected distinct ids; got {n - len(np.unique(arr))} duplicate(s)")
    return arr


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name}: expected an integer >= 1; got {value!r}")


def _check_info(info: Mapping[str, Any] | None) -> dict[str, Any]:
    if info is None:
        return {}
    try:
        return json.loads(json.dumps(dict(info)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"info: expected a JSON-serialisable mapping; got {e}") from None


def _attribute_keys(known: Iterable[str], metas: Iterable[GarmentMeta]) -> list[str]:
    keys = set(known)
    for m in metas:
        keys.update(m.attributes)
    return sorted(keys)


def _resolve_kind(kind: str, n: int, auto_threshold: int) -> str:
    if kind == "auto":
        return "flat" if n <= auto_threshold else "ivf"
    return kind


def _resolve_params(kind: str, n: int, dim: int, *, nlist: int | None, nprobe: int | None, hnsw_m: int,
                    ef_construction: int, ef_search: int, seed: int, ivf_storage: str) -> dict[str, Any]:
    _check_positive(nlist=nlist, nprobe=nprobe)
    if ivf_storage not in ("auto", *IVF_STORAGES):
        raise ValueError(f"ivf_storage: expected one of {('auto', *IVF_STORAGES)}; got {ivf_storage!r}")
    if kind == "flat":
        return {}
    if kind == "hnsw":
        return {"M": int(hnsw_m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}
    if n < 1:
        raise ValueError("ivf: expected at least one vector to train the cells; got 0")
    if nlist is not None and nlist > n:
        raise ValueError(f"nlist: expected at most the number of vectors ({n}); got {nlist}")
    storage = ivf_storage if ivf_storage != "auto" else (
        "fastscan" if n >= FASTSCAN_AUTO_MIN and dim % 2 == 0 else "float16")
    cells = int(nlist or default_nlist(n))
    if n < 39 * cells:
        logger.warning("ivf: %d vectors for %d cells (FAISS recommends >= 39 per cell)", n, cells)
    extra: dict[str, Any] = {}
    if storage == "fastscan":
        if dim % 2:
            raise ValueError(f"ivf_storage fastscan: expected an even dimension (2 dimensions per code); got {dim}")
        if n < FASTSCAN_MIN_VECTORS:
            raise ValueError(f"ivf_storage fastscan: expected at least {FASTSCAN_MIN_VECTORS} vectors to train its "
                             f"codebooks; got {n} (use float16)")
        extra = {"pq_m": dim // 2, "refine_factor": FASTSCAN_REFINE_FACTOR}
    probe = int(min(cells, nprobe or (default_fastscan_nprobe if storage == "fastscan" else default_nprobe)(cells)))
    return {"variant": IVF_STORAGES[storage], "storage": storage, "requested_storage": ivf_storage,
            "nlist": cells, "nprobe": probe, **extra,
            "train_size": int(min(n, 64 * cells)), "seed": int(seed)}


def _make_index(kind: str, dim: int, params: Mapping[str, Any], vecs: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """A new FAISS index of ``kind`` holding ``vecs`` ``(n, dim)`` under ``ids`` ``(n,)``."""
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = int(params["ef_construction"])
        inner.hnsw.efSearch = int(params["ef_search"])
        index = faiss.IndexIDMap2(inner)
    elif kind == "ivf":
        storage = _stored_storage(params)
        if storage == "fastscan":
            return _make_fastscan(dim, params, vecs, ids)
        quantizer = faiss.IndexFlatIP(dim)
        if storage == "float16":
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, int(params["nlist"]), faiss.ScalarQuantizer.QT_fp16,
                                                  faiss.METRIC_INNER_PRODUCT)
            index.by_residual = False  # codes are the vectors themselves (fp16), decodable without the cells
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(params.get("seed", 0))
        index.train(_training_sample(vecs, params))
        index.nprobe = int(params["nprobe"])
    else:
        raise ValueError(f"kind: expected one of {KINDS}; got {kind!r}")
    if len(vecs):
        index.add_with_ids(vecs, ids)
    return index


def _training_sample(vecs: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The seeded sample of ``vecs`` (``params["train_size"]`` rows, in order) that trains IVF cells."""
    rng = np.random.default_rng(int(params.get("seed", 0)))
    n_train = int(min(len(vecs), params.get("train_size", len(vecs))))
    if n_train >= len(vecs):
        return np.ascontiguousarray(vecs)
    return np.ascontiguousarray(vecs[np.sort(rng.choice(len(vecs), size=n_train, replace=False))])


def _make_fastscan(dim: int, params: Mapping[str, Any], vecs: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """``IndexIDMap2(IndexRefine(IndexIVFPQFastScan, IndexScalarQuantizer fp16))`` holding ``vecs``.

    The IVF scan ranks candidates by 4-bit PQ codes; ``IndexRefine`` re-scores the best
    ``k_factor·k`` against the float16 copies (positions, not ids, inside the pair: hence the id map)."""
    seed = int(params.get("seed", 0))
    base = faiss.index_factory(dim, f"IVF{int(params['nlist'])},PQ{int(params['pq_m'])}x4fs", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(base)
    ivf.cp.seed = seed
    ivf.pq.cp.seed = seed
    base.train(_training_sample(vecs, params))
    ivf.nprobe = int(params["nprobe"])
    exact = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    pair = faiss.IndexRefine(base, exact)
    pair.own_fields = True  # the C++ objects now own each other: drop Python's ownership
    base.this.disown()
    exact.this.disown()
    pair.k_factor = float(params["refine_factor"])
    index = faiss.IndexIDMap2(pair)
    index.own_fields = True
    pair.this.disown()
    if len(vecs):
        index.add_with_ids(vecs, ids)
    return index


def _stored_storage(params: Mapping[str, Any]) -> str:
    """The ``ivf`` storage recorded in ``params`` (float32 for indexes written before the option)."""
    return str(params.get("storage", "float32"))


def _uses_tombstones(manifest: IndexManifest) -> bool:
    return manifest.kind == "hnsw" or (manifest.kind == "ivf" and _stored_storage(manifest.params) == "fastscan")


def _refine_pair(index: faiss.Index) -> faiss.IndexRefine | None:
    """The ``IndexRefine`` inside a fastscan ``ivf`` index, else None."""
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexRefine):
            return inner
    return None


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF:
    """The ``IndexIVF`` of an ``ivf`` index (inside the refine pair for fastscan storage)."""
    pair = _refine_pair(index)
    return faiss.downcast_index(pair.base_index if pair is not None else index)


def _ivf_storage_of(index: faiss.Index) -> str:
    ivf = _ivf_of(index)
    if isinstance(ivf, faiss.IndexIVFPQFastScan):
        return "fastscan"
    return "float16" if isinstance(ivf, faiss.IndexIVFScalarQuantizer) else "float32"


def _kind_of(index: faiss.Index) -> str | None:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVFFlat) or (
            isinstance(index, faiss.IndexIVFScalarQuantizer) and index.sq.qtype == faiss.ScalarQuantizer.QT_fp16
            and not index.by_residual):
        return "ivf"
    pair = _refine_pair(index)
    if pair is not None:
        base, exact = faiss.downcast_index(pair.base_index), faiss.downcast_index(pair.refine_index)
        if (isinstance(base, faiss.IndexIVFPQFastScan) and isinstance(exact, faiss.IndexScalarQuantizer)
                and exact.sq.qtype == faiss.ScalarQuantizer.QT_fp16):
            return "ivf"
        return None
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlat):
            return "flat"
    return None


def _apply_search_defaults(index: faiss.Index, manifest: IndexManifest) -> None:
    if manifest.kind == "ivf":
        ivf = _ivf_of(index)
        ivf.nprobe = int(manifest.params["nprobe"])
        # OpenMP over the scanned cells as well as over the queries: a single query (the usual
        # interactive search) then uses every thread instead of one (1M × 1536: ~2× faster on 2 cores)
        ivf.parallel_mode = IVF_PARALLEL_MODE
        pair = _refine_pair(index)
        if pair is not None:
            pair.k_factor = float(manifest.params["refine_factor"])
    elif manifest.kind == "hnsw":
        faiss.downcast_index(faiss.downcast_index(index).index).hnsw.efSearch = int(manifest.params["ef_search"])


def _stored_vectors(index: faiss.Index, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """All ``(ids, vectors)`` inside a FAISS index of ``kind`` (tombstoned ones included)."""
    d, n = index.d, index.ntotal
    pair = _refine_pair(index)
    if pair is not None:  # fastscan ivf: the float16 copies, in id-map order
        vecs = faiss.downcast_index(pair.refine_index).reconstruct_n(0, n) if n else np.zeros((0, d), np.float32)
        return faiss.vector_to_array(index.id_map).astype(np.int64), vecs
    if kind in ("flat", "hnsw"):
        inner = faiss.downcast_index(index.index)
        storage = faiss.downcast_index(inner.storage) if kind == "hnsw" else inner
        vecs = storage.reconstruct_n(0, n) if n else np.zeros((0, d), dtype=np.float32)
        return faiss.vector_to_array(index.id_map).astype(np.int64), vecs
    from faiss.contrib.inspect_tools import get_invlist

    ivf = faiss.downcast_index(index)
    code_type = np.float16 if isinstance(ivf, faiss.IndexIVFScalarQuantizer) else np.float32  # see _kind_of
    id_parts, vec_parts = [np.zeros(0, dtype=np.int64)], [np.zeros((0, d), dtype=np.float32)]
    for cell in range(ivf.nlist):
        if ivf.invlists.list_size(cell):
            cell_ids, codes = get_invlist(ivf.invlists, cell)
            id_parts.append(cell_ids.astype(np.int64))
            vec_parts.append(codes.view(code_type).reshape(-1, d).astype(np.float32))
    ids, vecs = np.concatenate(id_parts), np.concatenate(vec_parts)
    order = np.argsort(ids, kind="stable")
    return ids[order], vecs[order]
