"""Integrity of a garment index on disk (issue 23): checksums in the sealed manifest, SQLite checks,
``verify_index`` and indexes written before checksums existed. Tiny random indexes, no model."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlens.search import GarmentIndex, IndexFormatError, _store
from fashionlens.search.index import verify_index

DIM = 16


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def metas(n: int, start: int = 0) -> list[dict]:
    return [{"path": f"img{i}.jpg", "category": "sweaters" if i % 2 else "jeans",
             "attributes": {"colours": ["red"] if i % 3 else ["blue", "white"]}} for i in range(start, start + n)]


def vectors_file(d: Path) -> Path:
    return d / json.loads((d / "manifest.json").read_text())["files"]["vectors"]


def metadata_file(d: Path) -> Path:
    return d / json.loads((d / "manifest.json").read_text())["files"]["metadata"]


def flip(path: Path, offset: int, mask: int = 0x40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def make_legacy(d: Path) -> None:
    """Rewrite the manifest as an older fashionlens wrote it: no checksums, no seal."""
    m = json.loads((d / "manifest.json").read_text())
    for key in ("checksums", _store.SEAL_KEY):
        del m[key]
    (d / "manifest.json").write_text(json.dumps(m, indent=2))


# ------------------------------------------------------------------------------------ the manifest


def test_manifest_records_sealed_checksums_of_both_files(tmp_path: Path) -> None:
    GarmentIndex.build(unit(20), metas(20), tmp_path, kind="flat")
    text = (tmp_path / "manifest.json").read_text()
    m = json.loads(text)
    assert list(m)[-1] == _store.SEAL_KEY and _store.render_manifest(m) == text
    for key, path in (("vectors", vectors_file(tmp_path)), ("metadata", metadata_file(tmp_path))):
        assert m["checksums"][key] == _store.file_checksum(path)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace('"count": 20', '"count": 21'), "expected the text sealed by its manifest_sha256"),
    (lambda t: t.replace('  "dim"', '\t"dim"'), "expected the text sealed"),  # same JSON, other bytes
    (lambda t: t.replace('  "manifest_sha256"', '  "manifest_sha25X"'), "expected 'manifest_sha256' next to"),
    (lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != _store.SEAL_KEY}),
     "expected 'manifest_sha256' next to 'checksums'"),
], ids=["value", "whitespace", "seal-key", "seal-removed"])
def test_changed_manifest_is_refused(tmp_path: Path, edit, match: str) -> None:
    GarmentIndex.build(unit(20), metas(20), tmp_path, kind="flat")
    path = tmp_path / "manifest.json"
    text = path.read_text()
    assert edit(text) != text
    path.write_text(edit(text))
    with pytest.raises(IndexFormatError, match=match):
        GarmentIndex.load(tmp_path)
    assert verify_index(tmp_path) != []


# ------------------------------------------------------------------------------------ the data files


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_flipped_byte_in_vectors_file_is_refused(tmp_path: Path, kind: str) -> None:
    x = unit(300)
    idx = GarmentIndex.build(x, metas(300), tmp_path, kind=kind, nlist=4, nprobe=4)
    before = [h.id for h in idx.search(x[:1], k=5)[0]]
    path = vectors_file(tmp_path)
    flip(path, path.stat().st_size // 2)  # inside the stored vectors: FAISS would read it without complaint
    with pytest.raises(IndexFormatError, match=r"index vectors file .*: expected sha256 \w+… \(manifest.json\); "
                                               r"got sha256 \w+…: the file was changed or damaged"):
        GarmentIndex.load(tmp_path)
    [problem] = verify_index(tmp_path)
    assert "vectors file" in problem and "sha256" in problem
    assert [h.id for h in idx.search(x[:1], k=5)[0]] == before  # the index already open is unaffected


def test_flipped_byte_in_metadata_file_is_refused(tmp_path: Path) -> None:
    GarmentIndex.build(unit(50), metas(50), tmp_path, kind="flat")
    path = metadata_file(tmp_path)
    flip(path, path.stat().st_size - 100)
    with pytest.raises(IndexFormatError, match=r"index metadata file .*: expected sha256 .*: the file was changed"):
        GarmentIndex.load(tmp_path)
    assert "metadata file" in verify_index(tmp_path)[0]


def _garble_last_page(path: Path) -> None:
    """Overwrite most of the last page (a b-tree page of the garments table or an index)."""
    with sqlite3.connect(path) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = len(data) - page
    data[start:start + page // 2] = bytes(range(256)) * (page // 512)
    path.write_bytes(bytes(data))


def test_corrupt_sqlite_of_an_index_without_checksums_is_caught_by_quick_check(tmp_path: Path) -> None:
    GarmentIndex.build(unit(400), metas(400), tmp_path, kind="flat")
    make_legacy(tmp_path)
    _garble_last_page(metadata_file(tmp_path))
    with pytest.raises(IndexFormatError, match="index metadata file .*: expected (SQLite quick_check 'ok'|a readable)"):
        GarmentIndex.load(tmp_path)
    problems = verify_index(tmp_path)
    assert len(problems) == 2 and "expected file checksums; got none" in problems[0]
    assert "integrity_check" in problems[1] or "readable SQLite" in problems[1]


class _BrokenConnection:
    """Stands in for a metadata connection whose file went bad after it was opened."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, *args: object) -> sqlite3.Cursor:
        raise sqlite3.DatabaseError("database disk image is malformed")

    def close(self) -> None:
        self._conn.close()


def test_sqlite_errors_while_searching_are_index_format_errors(tmp_path: Path) -> None:
    x = unit(30)
    idx = GarmentIndex.build(x, metas(30), tmp_path, kind="flat")
    idx._conn = _BrokenConnection(idx._conn)  # type: ignore[assignment]
    for call in (lambda: idx.search(x[:2], k=25), lambda: idx.get([1]), lambda: idx.select({"category": "jeans"}),
                 lambda: idx.remove(paths=["img1.jpg"])):
        with pytest.raises(IndexFormatError, match="metadata file .*: expected a readable SQLite garment table; got "
                                                   "DatabaseError: database disk image is malformed"):
            call()
    idx.close()


def test_verify_finds_vector_ids_without_metadata(tmp_path: Path) -> None:
    """Two files that are each intact and agree in number, but not in ids (a manifest re-sealed by hand)."""
    GarmentIndex.build(unit(12), metas(12), tmp_path / "a", kind="flat")
    GarmentIndex.build(unit(12), metas(12), tmp_path / "b", kind="flat", ids=np.arange(100, 112))
    target = metadata_file(tmp_path / "a")
    shutil.copyfile(metadata_file(tmp_path / "b"), target)
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    m["checksums"]["metadata"] = _store.file_checksum(target)
    (tmp_path / "a" / "manifest.json").write_text(_store.render_manifest(m))
    assert len(GarmentIndex.load(tmp_path / "a")) == 12  # the counts agree
    [problem] = verify_index(tmp_path / "a")
    assert "expected the vector ids to be the metadata ids + tombstones (12); got 12 missing" in problem


@pytest.mark.parametrize("kind, storage", [("flat", "auto"), ("ivf", "float16"), ("ivf", "float32"),
                                           ("ivf", "fastscan"), ("hnsw", "auto")])
def test_verify_passes_after_writes_of_every_kind(tmp_path: Path, kind: str, storage: str) -> None:
    x = unit(400)
    idx = GarmentIndex.build(x[:300], metas(300), tmp_path, kind=kind, nlist=4, ivf_storage=storage)
    assert verify_index(tmp_path) == []
    idx.remove(range(5))  # tombstones for hnsw and fastscan: a commit that keeps the vectors file
    idx.add(x[300:], metas(100, start=300))
    assert verify_index(tmp_path) == []
    again = GarmentIndex.load(tmp_path)
    assert len(again) == 395 and again.manifest.checksums["vectors"] == _store.file_checksum(vectors_file(tmp_path))


# ------------------------------------------------------------------------------------ older indexes


def test_index_without_checksums_loads_with_a_warning_and_gets_them_on_the_next_write(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = unit(300)
    GarmentIndex.build(x, metas(300), tmp_path, kind="hnsw")
    make_legacy(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fashionlens.search.index"):
        idx = GarmentIndex.load(tmp_path)
    assert "has no file checksums" in caplog.text and idx.search(x[[7]], k=1)[0][0].id == 7
    [problem] = verify_index(tmp_path)
    assert "expected file checksums; got none" in problem and "rebuild the index" in problem
    idx.remove([3])  # an hnsw remove keeps the vectors file, except when it has no checksum yet
    assert verify_index(tmp_path) == []
    assert idx.manifest.checksums and GarmentIndex.load(tmp_path).search(x[[7]], k=1)[0][0].id == 7


@pytest.mark.parametrize("damage, match", [
    (lambda d: vectors_file(d).write_bytes(b"garbage"), "expected a FAISS index"),
    (lambda d: metadata_file(d).write_bytes(b"garbage" * 100), "SQLite"),
])
def test_garbage_files_of_an_index_without_checksums(tmp_path: Path, damage, match: str) -> None:
    GarmentIndex.build(unit(12), metas(12), tmp_path, kind="flat")
    make_legacy(tmp_path)
    damage(tmp_path)
    with pytest.raises(IndexFormatError, match=match):
        GarmentIndex.load(tmp_path)
    assert "\n" not in str(pytest.raises(IndexFormatError, GarmentIndex.load, tmp_path).value)


# ------------------------------------------------------------------------------------ any byte


@pytest.fixture(scope="module")
def pristine_indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A flat index and an hnsw index with tombstones (both tables of the metadata in use)."""
    root = tmp_path_factory.mktemp("pristine")
    x = unit(120, seed=3)
    GarmentIndex.build(x, metas(120), root / "flat", kind="flat")
    with GarmentIndex.build(x, metas(120), root / "hnsw", kind="hnsw") as idx:
        idx.remove(range(0, 120, 17))
    return {"flat": root / "flat", "hnsw": root / "hnsw"}


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_of_an_index_file_is_detected(pristine_indexes: dict[str, Path], data: st.DataObject) -> None:
    source = pristine_indexes[data.draw(st.sampled_from(sorted(pristine_indexes)), label="kind")]
    which = data.draw(st.sampled_from(["manifest.json", "vectors", "metadata"]), label="file")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "index"
        shutil.copytree(source, d)
        path = {"manifest.json": d / "manifest.json", "vectors": vectors_file(d), "metadata": metadata_file(d)}[which]
        offset = data.draw(st.integers(0, path.stat().st_size - 1), label="offset")
        flip(path, offset, data.draw(st.integers(1, 255), label="xor"))
        with pytest.raises(IndexFormatError):
            GarmentIndex.load(d)
        assert verify_index(d) != []
