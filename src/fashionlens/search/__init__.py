"""Garment search (issue 5): a FAISS vector index with a metadata table, and contact sheets.

Public API::

    GarmentIndex.build(vectors, metadata, directory, *, kind="auto", ...) -> GarmentIndex
    GarmentIndex.load(directory) -> GarmentIndex
    index.add(vectors, metadata, *, ids=None) -> ids
    index.remove(ids=None, *, paths=None) -> removed ids
    index.search(query_vectors, k=10, *, filters=None, nprobe=None, ef_search=None) -> [[SearchHit]]
    contact_sheet(results, out_png, *, thumb=160, cols=None, image_root=None) -> Path

See :mod:`fashionlens.search.index` for kinds, filters and crash safety.
"""

from fashionlens.search._store import GarmentMeta, IndexFormatError, IndexManifest
from fashionlens.search.contact_sheet import contact_sheet
from fashionlens.search.index import (
    DEFAULT_AUTO_THRESHOLD,
    GarmentIndex,
    IndexKind,
    IvfStorage,
    SearchHit,
    default_nlist,
    default_nprobe,
)

__all__ = [
    "DEFAULT_AUTO_THRESHOLD",
    "GarmentIndex",
    "GarmentMeta",
    "IndexFormatError",
    "IndexKind",
    "IndexManifest",
    "IvfStorage",
    "SearchHit",
    "contact_sheet",
    "default_nlist",
    "default_nprobe",
]
