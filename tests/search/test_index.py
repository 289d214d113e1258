"""GarmentIndex and contact_sheet on generated fixtures (random vectors, tiny generated JPEGs)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from fashionlens.search import (
    GarmentIndex,
    GarmentMeta,
    IndexFormatError,
    SearchHit,
    _store,
    contact_sheet,
)
from fashionlens.search import index as index_mod

DIM = 16
KINDS = ["flat", "ivf", "hnsw"]


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """Tiny indexes: OpenMP threads only add overhead (and the machine is shared)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)) * spread / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def metas(n: int, start: int = 0) -> list[dict]:
    """Row i: category sweaters/jeans alternating, colours red for every 10th row, a box on odd rows."""
    return [{"path": f"img{i}.jpg", "category": "sweaters" if i % 2 == 0 else "jeans", "object_type": "upper",
             "xyxy": (1, 2, 30, 40) if i % 2 else None,
             "attributes": {"colours": ["red", "white"] if i % 10 == 0 else ["blue"], "pattern": "plain"}}
            for i in range(start, start + n)]


def exact_top(x: np.ndarray, q: np.ndarray, k: int, ids: np.ndarray | None = None) -> np.ndarray:
    ids = np.arange(len(x)) if ids is None else ids
    return ids[np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]]


def hit_ids(results: list[list[SearchHit]]) -> list[list[int]]:
    return [[h.id for h in row] for row in results]


# ------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("kind", KINDS)
def test_build_load_search_returns_exact_nearest(tmp_path: Path, kind: str) -> None:
    x = unit(300)
    GarmentIndex.build(x, metas(300), tmp_path, kind=kind, nlist=8, nprobe=8)  # ivf: every cell → exact
    idx = GarmentIndex.load(tmp_path)
    q = x[[5, 77, 290]] + 0.01 * unit(3, seed=1)
    res = idx.search(q, k=5)
    assert [row[0].id for row in res] == [5, 77, 290]
    assert hit_ids(res) == exact_top(x, q / np.linalg.norm(q, axis=1, keepdims=True), 5).tolist()
    best = res[1][0]
    assert best.rank == 1 and best.path == "img77.jpg" and best.category == "jeans"
    assert best.xyxy == (1.0, 2.0, 30.0, 40.0) and best.attributes == {"colours": ["blue"], "pattern": "plain"}
    assert res[1][0].score >= res[1][1].score
    assert json.loads(json.dumps(best.to_dict()))["xyxy"] == [1.0, 2.0, 30.0, 40.0]
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert (m["format_version"], m["dim"], m["kind"], m["count"]) == (1, DIM, kind, 300)
    assert m["created"] and m["updated"] and m["attribute_keys"] == ["colours", "pattern"]
    if kind == "ivf":
        assert (m["params"]["nlist"], m["params"]["nprobe"]) == (8, 8)
    if kind == "hnsw":
        assert {"M", "ef_search", "ef_construction"} <= set(m["params"])


def test_vectors_are_normalised_and_k_is_capped(tmp_path: Path) -> None:
    x = unit(20) * np.linspace(0.5, 30, 20, dtype=np.float32)[:, None]
    idx = GarmentIndex.build(x, metas(20), tmp_path, kind="flat")
    res = idx.search(x[:1] * 7, k=50)
    assert len(res[0]) == 20
    assert res[0][0].id == 0 and res[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 - 1e-5 <= h.score <= 1.0 + 1e-5 for h in res[0])


@pytest.mark.parametrize(("n", "threshold", "kind"), [(60, 100, "flat"), (400, 100, "ivf")])
def test_auto_kind_follows_threshold(tmp_path: Path, n: int, threshold: int, kind: str) -> None:
    idx = GarmentIndex.build(unit(n), metas(n), tmp_path, auto_threshold=threshold)
    assert idx.kind == kind and idx.manifest.requested_kind == "auto"


def test_auto_flat_becomes_ivf_when_add_crosses_threshold(tmp_path: Path) -> None:
    x = unit(500)
    idx = GarmentIndex.build(x[:80], metas(80), tmp_path, auto_threshold=100)
    assert idx.kind == "flat"
    idx.add(x[80:], metas(420, start=80))
    assert idx.kind == "ivf" and len(idx) == 500
    reloaded = GarmentIndex.load(tmp_path)
    assert reloaded.kind == "ivf" and reloaded.search(x[[3, 400]], k=1, nprobe=reloaded.params["nlist"])[1][0].id == 400


# ------------------------------------------------------------------------------------ add / remove


@pytest.mark.parametrize("kind", KINDS)
def test_add_then_remove(tmp_path: Path, kind: str) -> None:
    x = unit(150)
    idx = GarmentIndex.build(x[:100], metas(100), tmp_path, kind=kind, nlist=4, nprobe=4)
    new = idx.add(x[100:], metas(50, start=100))
    assert new.tolist() == list(range(100, 150)) and len(idx) == 150
    assert idx.search(x[[120]], k=1)[0][0].id == 120

    removed = idx.remove([120, 121, 9999], paths=["img3.jpg", "missing.jpg"])
    assert removed.tolist() == [3, 120, 121]
    assert len(idx) == 147
    for i in (3, 120, 121):
        assert i not in hit_ids(idx.search(x[[i]], k=10))[0]
    assert idx.remove([120]).size == 0  # already gone: nothing written

    reloaded = GarmentIndex.load(tmp_path)
    assert len(reloaded) == 147 and reloaded.manifest.next_id == 150
    assert 120 not in hit_ids(reloaded.search(x[[120]], k=147))[0]
    assert len(reloaded.search(x[[0]], k=1000)[0]) == 147
    assert reloaded.get([120, 122]).keys() == {122}
    names = sorted(p.name for p in tmp_path.iterdir())  # manifest + one generation, no temporary leftovers
    assert len(names) == 3 and names[0] == "manifest.json" and names[1].startswith("metadata-")


def test_add_with_explicit_ids_and_errors(tmp_path: Path) -> None:
    x = unit(30)
    idx = GarmentIndex.build(x[:10], metas(10), tmp_path, ids=np.arange(100, 110), kind="flat")
    assert idx.add(x[10:12], metas(2), ids=[5, 500]).tolist() == [5, 500]
    assert idx.manifest.next_id == 501
    with pytest.raises(ValueError, match="in use"):
        idx.add(x[12:13], metas(1), ids=[105])
    with pytest.raises(ValueError, match="distinct"):
        idx.add(x[12:14], metas(2), ids=[7, 7])
    with pytest.raises(ValueError, match=r"expected 2 rows"):
        idx.add(x[12:14], metas(3))
    assert len(GarmentIndex.load(tmp_path)) == 12


def test_hnsw_remove_uses_tombstones_then_compacts(tmp_path: Path) -> None:
    x = unit(200)
    idx = GarmentIndex.build(x, metas(200), tmp_path, kind="hnsw", hnsw_m=8)
    vectors_file = idx.manifest.files["vectors"]
    idx.remove(range(10))
    assert idx.manifest.tombstones == 10 and idx.manifest.ntotal == 200 and len(idx) == 190
    assert idx.manifest.files["vectors"] == vectors_file  # the graph file is reused, not rewritten
    res = idx.search(x[:10], k=5)
    assert all(h.id >= 10 for row in res for h in row) and all(len(row) == 5 for row in res)
    reloaded = GarmentIndex.load(tmp_path)
    assert reloaded.manifest.tombstones == 10
    assert all(h.id >= 10 for row in reloaded.search(x[:10], k=5) for h in row)
    with pytest.raises(ValueError, match="in use"):  # a tombstoned id is still inside the graph
        reloaded.add(x[:1], metas(1), ids=[3])

    reloaded.remove(range(10, 60))  # 60 tombstones > 25 % of 200: the graph is rebuilt
    assert reloaded.manifest.tombstones == 0 and reloaded.manifest.ntotal == 140 == len(reloaded)
    assert reloaded.manifest.files["vectors"] != vectors_file
    assert reloaded.search(x[[150]], k=1)[0][0].id == 150
    assert reloaded.add(x[:1], metas(1), ids=[3]).tolist() == [3]
    assert GarmentIndex.load(tmp_path).search(x[[0]], k=1)[0][0].id == 3  # x[0] was re-added as id 3


def test_rebuild_changes_kind_and_keeps_ids(tmp_path: Path) -> None:
    x = unit(200)
    idx = GarmentIndex.build(x, metas(200), tmp_path, kind="flat")
    idx.remove([7])
    idx.rebuild(kind="hnsw", hnsw_m=8)
    assert idx.kind == "hnsw" and len(idx) == 199
    loaded = GarmentIndex.load(tmp_path)
    assert loaded.search(x[[42]], k=1)[0][0].id == 42 and 7 not in hit_ids(loaded.search(x[[7]], k=20))[0]
    loaded.rebuild(kind="ivf", nlist=4, nprobe=4)
    assert loaded.kind == "ivf" and loaded.search(x[[42]], k=1)[0][0].id == 42


# ------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(("kind", "storage"), [(k, "auto") for k in KINDS] + [("ivf", "fastscan")])
def test_filters_return_k_matching_hits(tmp_path: Path, kind: str, storage: str) -> None:
    n = 2000
    x = clustered(n, DIM, clusters=20)
    meta = metas(n)
    for i in range(n):  # 25 "wool" garments, all in one part of the space, far from most queries
        meta[i]["attributes"]["material"] = "wool" if i < 25 else "cotton"
    order = np.argsort(x[:, 0])  # wool = the 25 vectors with the smallest first coordinate
    x = x[order]
    idx = GarmentIndex.build(x, meta, tmp_path, kind=kind, nlist=32, nprobe=1, hnsw_m=8, ef_search=16,
                             ivf_storage=storage)
    q = x[-3:]  # far from the wool garments

    res = idx.search(q, k=10, filters={"material": "wool"})
    assert all(len(row) == 10 for row in res)
    wool = np.arange(25)
    assert hit_ids(res) == exact_top(x[wool], q, 10, wool).tolist()

    both = idx.search(q, k=10, filters={"category": "sweaters", "colours": "red"})
    expected = [i for i in range(n) if i % 2 == 0 and i % 10 == 0]
    assert all(len(row) == 10 for row in both)
    assert hit_ids(both) == exact_top(x[expected], q, 10, np.array(expected)).tolist()
    assert all(h.category == "sweaters" and "red" in h.attributes["colours"] for row in both for h in row)

    assert len(idx.search(q[:1], k=500, filters={"material": "wool"})[0]) == 25
    assert idx.select({"colours": ["red", "white"]}).tolist() == list(range(0, n, 10))
    assert idx.select({"path": ["img4.jpg", "img5.jpg"], "object_type": "upper"}).tolist() == [4, 5]
    assert idx.search(q, k=3, filters={"category": "coats"}) == [[], [], []]


def test_hnsw_filtered_graph_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EXACT_SEARCH_MAX matches HNSW filters inside the graph search (beam widened by 1/selectivity)."""
    monkeypatch.setattr(index_mod, "EXACT_SEARCH_MAX", 0)
    data = clustered(3020, DIM, clusters=30, seed=5, spread=1.0)
    x, q = data[:3000], data[3000:]
    idx = GarmentIndex.build(x, metas(3000), tmp_path, kind="hnsw", hnsw_m=8, ef_search=16)
    res = idx.search(q, k=10, filters={"colours": "red"})  # every 10th row
    assert all(len(row) == 10 and all(h.id % 10 == 0 for h in row) for row in res)
    red = np.arange(0, 3000, 10)
    truth = exact_top(x[red], q, 10, red)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hit_ids(res), truth)])
    assert recall >= 0.9, recall


@pytest.mark.parametrize(("filters", "error", "match"), [
    ({"colour": "red"}, ValueError, "did you mean 'colours'"),
    ({"category": []}, ValueError, "non-empty list"),
    ({"category": None}, ValueError, "expected a str"),
    ({"category": {"a": 1}}, ValueError, "expected a str"),
    (["category"], TypeError, "expected a mapping"),
])
def test_bad_filters(tmp_path: Path, filters: object, error: type[Exception], match: str) -> None:
    idx = GarmentIndex.build(unit(10), metas(10), tmp_path, kind="flat")
    with pytest.raises(error, match=match):
        idx.search(unit(1), k=3, filters=filters)  # type: ignore[arg-type]


def test_ivf_recall_on_clustered_data(tmp_path: Path) -> None:
    """nlist 64, nprobe 8 (1/8 of the cells) on 20k 32-d vectors from 100 overlapping Gaussian
    clusters, queries from the same mixture: recall@10 against exact search >= 0.9 (nprobe 1: ~0.87)."""
    data = clustered(20_100, 32, clusters=100, seed=3, spread=1.0)
    x, q = data[:20_000], data[20_000:]
    idx = GarmentIndex.build(x, [{"path": f"{i}.jpg"} for i in range(len(x))], tmp_path, kind="ivf",
                             nlist=64, nprobe=8)
    truth = exact_top(x, q, 10)
    got = np.array(hit_ids(idx.search(q, k=10)))
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall >= 0.9, recall


@pytest.mark.parametrize("storage", ["float16", "float32"])
def test_ivf_storage_round_trips_and_survives_rebuild(tmp_path: Path, storage: str) -> None:
    """Both IVF storages: the same hits as exact search when every cell is scanned, scores within the
    storage's rounding, the storage kept through save/load, remove and rebuild."""
    x, q = unit(600, seed=1), unit(5, seed=2)
    idx = GarmentIndex.build(x, metas(600), tmp_path, kind="ivf", nlist=8, nprobe=8, ivf_storage=storage)
    assert idx.params["storage"] == storage
    hits = idx.search(q, k=5)
    assert hit_ids(hits) == exact_top(x, q, 5).tolist()
    exact_scores = np.sort(q @ x.T, axis=1)[:, ::-1][:, :5]
    tol = 2e-3 if storage == "float16" else 1e-5
    assert np.allclose([[h.score for h in row] for row in hits], exact_scores, atol=tol)
    idx.remove([int(exact_top(x, q[:1], 1)[0, 0])])
    loaded = GarmentIndex.load(tmp_path)
    assert loaded.params["storage"] == storage and len(loaded) == 599
    # single queries spread over the OpenMP threads (not persisted by FAISS: set on every load)
    assert faiss.downcast_index(loaded._index).parallel_mode == index_mod.IVF_PARALLEL_MODE
    loaded.rebuild(nlist=4, nprobe=4)
    assert loaded.params["storage"] == storage and loaded.search(x[[42]], k=1)[0][0].id == 42
    nbytes = (tmp_path / loaded.manifest.files["vectors"]).stat().st_size
    assert nbytes < 599 * DIM * (2 if storage == "float16" else 4) + 4 * DIM * 4 + 599 * 8 + 4096
    loaded.rebuild(ivf_storage="float32" if storage == "float16" else "float16")
    assert GarmentIndex.load(tmp_path).params["storage"] != storage


def test_fastscan_storage_reranks_exactly_and_deletes_through_tombstones(tmp_path: Path) -> None:
    """fastscan: PQ codes rank the cells' vectors, float16 copies re-rank them — with every cell
    scanned the hits are exact search's, scores within float16 rounding; removal tombstones the ids
    (vectors file reused) and compacts past TOMBSTONE_COMPACT_FRACTION; the layout survives reloads."""
    x, q = clustered(1200, DIM, clusters=12, seed=4), unit(5, seed=2)
    idx = GarmentIndex.build(x, metas(1200), tmp_path, kind="ivf", nlist=8, nprobe=8, ivf_storage="fastscan")
    assert idx.params["storage"] == "fastscan" and idx.params["pq_m"] == DIM // 2
    assert idx.params["refine_factor"] == index_mod.FASTSCAN_REFINE_FACTOR
    hits = idx.search(q, k=5)
    assert hit_ids(hits) == exact_top(x, q, 5).tolist()
    assert np.allclose([[h.score for h in row] for row in hits], np.sort(q @ x.T, axis=1)[:, ::-1][:, :5], atol=2e-3)
    assert hit_ids(idx.search(x[:20], k=1)) == [[i] for i in range(20)]

    vectors_file = idx.manifest.files["vectors"]
    gone = exact_top(x, q[:1], 3)[0].tolist()
    assert sorted(idx.remove(gone).tolist()) == sorted(gone)
    assert idx.manifest.tombstones == 3 and idx.manifest.files["vectors"] == vectors_file and len(idx) == 1197
    loaded = GarmentIndex.load(tmp_path)
    assert loaded.params["storage"] == "fastscan" and loaded.manifest.tombstones == 3
    assert not set(gone) & set(hit_ids(loaded.search(q[:1], k=10))[0])
    assert len(loaded.search(q[:1], k=10)[0]) == 10
    pair = index_mod._refine_pair(loaded._index)  # search settings are not persisted by FAISS: set on load
    assert pair is not None and pair.k_factor == index_mod.FASTSCAN_REFINE_FACTOR
    assert index_mod._ivf_of(loaded._index).parallel_mode == index_mod.IVF_PARALLEL_MODE
    with pytest.raises(ValueError, match="in use"):  # a tombstoned id is still inside the index
        loaded.add(x[:1], metas(1), ids=[gone[0]])

    few = {"path": ["img5.jpg", "img7.jpg", "img1203.jpg"]}  # selective: scored exactly via a position bitmap
    assert sorted(hit_ids(loaded.search(q[:1], k=5, filters=few))[0]) == [5, 7]
    new = loaded.add(unit(10, seed=9), metas(10, start=1200))
    assert loaded.search(unit(10, seed=9)[[3]], k=1)[0][0].id == new[3]
    assert sorted(hit_ids(loaded.search(q[:1], k=5, filters=few))[0]) == [5, 7, 1203]  # cache follows the add
    loaded.remove(range(400))  # > 25 % tombstones: rebuilt without them
    assert loaded.manifest.tombstones == 0 and loaded.manifest.ntotal == len(loaded) == 1207 - 400 + 1
    assert loaded.manifest.files["vectors"] != vectors_file
    assert loaded.search(x[[900]], k=1)[0][0].id == 900
    ids, vecs = loaded._live_vectors()
    assert len(ids) == len(loaded) and np.allclose(vecs[ids == 900][0], x[900], atol=1e-3)
    loaded.rebuild(ivf_storage="float16")
    reloaded = GarmentIndex.load(tmp_path)
    assert reloaded.params["storage"] == "float16" and reloaded.search(x[[900]], k=1)[0][0].id == 900


def test_fastscan_stays_tombstoned_when_too_few_vectors_would_remain(tmp_path: Path) -> None:
    x = unit(300)
    idx = GarmentIndex.build(x, metas(300), tmp_path, kind="ivf", nlist=8, ivf_storage="fastscan")
    idx.remove(range(290))  # 10 left: fewer than the codebooks need, so no retraining
    assert idx.manifest.tombstones == 290 and len(idx) == 10
    assert sorted(hit_ids(idx.search(x[290:], k=20))[0]) == list(range(290, 300))
    idx.remove(range(290, 300))
    assert len(GarmentIndex.load(tmp_path)) == 0 and idx.search(x[:1], k=5) == [[]]


def test_auto_ivf_storage_is_fastscan_for_large_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "FASTSCAN_AUTO_MIN", 500)
    x = unit(800)
    small = GarmentIndex.build(x[:400], metas(400), tmp_path / "small", kind="ivf", nlist=4)
    assert small.params["storage"] == "float16" and small.params["nprobe"] == index_mod.default_nprobe(4)
    large = GarmentIndex.build(x, metas(800), tmp_path / "large", kind="ivf", nlist=12)
    assert large.params["storage"] == "fastscan"
    assert large.params["nprobe"] == index_mod.default_fastscan_nprobe(12) == 2
    large.rebuild(nlist=6)  # auto again: still large enough
    assert GarmentIndex.load(tmp_path / "large").params["storage"] == "fastscan"
    small.add(x[400:], metas(400, start=400))  # grew past the threshold: float16 until rebuilt, then fastscan
    assert small.params["storage"] == "float16"
    small.rebuild()
    assert GarmentIndex.load(tmp_path / "small").params["storage"] == "fastscan" and len(small) == 800
    pinned = GarmentIndex.build(x, metas(800), tmp_path / "pinned", kind="ivf", nlist=12, ivf_storage="float16")
    pinned.rebuild()  # asked for float16 explicitly: kept
    assert pinned.params["storage"] == "float16"
    odd = GarmentIndex.build(unit(800, dim=15), metas(800), tmp_path / "odd", kind="ivf", nlist=12)
    assert odd.params["storage"] == "float16"  # fastscan codes pair up dimensions


def test_fastscan_needs_even_dimension_and_enough_vectors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even dimension"):
        GarmentIndex.build(unit(400, dim=15), metas(400), tmp_path, kind="ivf", nlist=4, ivf_storage="fastscan")
    with pytest.raises(ValueError, match="at least 256 vectors"):
        GarmentIndex.build(unit(100), metas(100), tmp_path, kind="ivf", nlist=4, ivf_storage="fastscan")


def test_storage_mismatch_between_manifest_and_file_is_reported(tmp_path: Path) -> None:
    GarmentIndex.build(unit(300), metas(300), tmp_path, kind="ivf", nlist=4, ivf_storage="fastscan")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["params"]["storage"] = "float16"
    (tmp_path / "manifest.json").write_text(_store.render_manifest(manifest))  # re-sealed: consistent but wrong
    with pytest.raises(IndexFormatError, match="expected float16 ivf storage"):
        GarmentIndex.load(tmp_path)


def test_ivf_index_written_before_storage_option_loads_as_float32(tmp_path: Path) -> None:
    """Indexes written by earlier versions have no ``storage`` parameter: float32, and stay so on rebuild."""
    x = unit(300)
    GarmentIndex.build(x, metas(300), tmp_path, kind="ivf", nlist=4, nprobe=4, ivf_storage="float32")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["params"]["storage"]
    manifest["params"]["variant"] = "IVF-Flat"
    for key in ("checksums", _store.SEAL_KEY):  # nor checksums, which came later
        del manifest[key]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    idx = GarmentIndex.load(tmp_path)
    assert idx.search(x[[9]], k=1)[0][0].id == 9
    idx.rebuild(nlist=4, nprobe=4)
    assert idx.params["storage"] == "float32"


# ------------------------------------------------------------------------------------ crash safety


def _fail_midway_faiss(index: faiss.Index, path: Path) -> None:
    path.write_bytes(b"half an index")
    raise OSError("disk full (simulated)")


def _fail_before_manifest_rename(directory: Path, manifest: object) -> None:
    (directory / f"{_store.TMP_PREFIX}x-manifest.json").write_text("{ truncated")
    raise KeyboardInterrupt  # an interruption, not just an error


@pytest.mark.parametrize(("target", "name", "replacement"), [
    (index_mod, "_write_faiss", _fail_midway_faiss),
    (_store, "write_manifest", _fail_before_manifest_rename),
])
@pytest.mark.parametrize("operation", ["build", "add", "remove"])
def test_interrupted_write_keeps_old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: object,
                                           name: str, replacement: object, operation: str) -> None:
    x = unit(60)
    idx = GarmentIndex.build(x[:40], metas(40), tmp_path, kind="flat")
    before = hit_ids(idx.search(x[:5], k=3))
    monkeypatch.setattr(target, name, replacement)
    with pytest.raises((OSError, KeyboardInterrupt)):
        if operation == "build":
            GarmentIndex.build(x[40:], metas(20, start=40), tmp_path, kind="flat")
        elif operation == "add":
            idx.add(x[40:], metas(20, start=40))
        else:
            idx.remove(range(10))
    monkeypatch.undo()

    for current in (GarmentIndex.load(tmp_path), idx):  # on disk and in memory: the old contents
        assert len(current) == 40
        assert hit_ids(current.search(x[:5], k=3)) == before
        assert current.get([45]) == {} and current.get([3])[3].path == "img3.jpg"
    # the next successful write works and clears the leftovers of the interrupted one
    idx.add(x[40:], metas(20, start=40))
    assert len(GarmentIndex.load(tmp_path)) == 60
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(_store.TMP_PREFIX)]


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("vectors", "match"), [
    (np.ones(DIM), r"2-D array of shape \(n, 16\); got shape \(16,\)"),
    (np.ones((2, 3, DIM)), r"got shape \(2, 3, 16\)"),
    (np.ones((2, DIM + 1)), r"expected shape \(n, 16\); got \(2, 17\)"),
    (np.array([[np.nan] * DIM]), "finite numbers; got NaN or inf in row 0"),
    (np.array([[1.0] * DIM, [np.inf] + [0.0] * (DIM - 1)]), "row 1"),
    (np.zeros((1, DIM)), "non-zero"),
    (np.array([["a"] * DIM]), "real numbers"),
])
def test_bad_vectors_are_value_errors(tmp_path: Path, vectors: np.ndarray, match: str) -> None:
    idx = GarmentIndex.build(unit(5), metas(5), tmp_path, kind="flat")
    with pytest.raises(ValueError, match=match):
        idx.search(vectors, k=1)
    with pytest.raises(ValueError, match=match):
        idx.add(vectors, metas(len(vectors)) if vectors.ndim == 2 else [])
    assert len(GarmentIndex.load(tmp_path)) == 5


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"metadata": metas(3)}, ValueError, "expected 4 rows"),
    ({"metadata": [{"path": "a", "categroy": "x"}] * 4}, ValueError, "did you mean 'category'"),
    ({"metadata": [{"path": "a", "xyxy": (5, 0, 1, 1)}] * 4}, ValueError, "x_max >= x_min"),
    ({"metadata": [{"path": "a", "attributes": {"colours": [{"r": 1}]}}] * 4}, ValueError, "scalars"),
    ({"metadata": {"path": "a"}}, TypeError, "sequence of 4"),
    ({"kind": "annoy"}, ValueError, "kind: expected one of"),
    ({"kind": "ivf", "nlist": 99}, ValueError, "at most the number of vectors"),
    ({"kind": "ivf", "ivf_storage": "int8"}, ValueError, "ivf_storage: expected one of"),
    ({"ids": [1, 2, 3]}, ValueError, r"shape \(4,\)"),
    ({"ids": [-1, 0, 1, 2]}, ValueError, ">= 0"),
    ({"info": {"a": object()}}, ValueError, "JSON"),
])
def test_bad_build_arguments(tmp_path: Path, kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"vectors": unit(4), "metadata": metas(4), "directory": tmp_path} | kwargs
    with pytest.raises(error, match=match):
        GarmentIndex.build(**args)


def _break_manifest(directory: Path, **changes: object) -> None:
    """Change manifest fields and re-seal it: a manifest consistent in itself but not with the files."""
    m = json.loads((directory / "manifest.json").read_text())
    m.update(changes)
    (directory / "manifest.json").write_text(_store.render_manifest(m))


@pytest.mark.parametrize(("damage", "error", "match"), [
    (lambda d: (d / "manifest.json").unlink(), FileNotFoundError, "manifest.json not found"),
    (lambda d: (d / "manifest.json").write_text("{not json"), IndexFormatError, "corrupt manifest"),
    (lambda d: (d / "manifest.json").write_text("[]"), IndexFormatError, "expected a JSON object"),
    (lambda d: _break_manifest(d, format_version=99), IndexFormatError, "expected format_version 1; got 99"),
    (lambda d: _break_manifest(d, dim=8), IndexFormatError, "expected dim 8 .manifest.; got 16"),
    (lambda d: _break_manifest(d, count=11), IndexFormatError, "expected 11 rows .manifest count.; got 12"),
    (lambda d: _break_manifest(d, ntotal=13), IndexFormatError, "expected 13 vectors .manifest.; got 12"),
    (lambda d: _break_manifest(d, kind="hnsw"), IndexFormatError, "expected a hnsw index"),
    (lambda d: _break_manifest(d, count="12"), IndexFormatError, "'count' to be int"),
    (lambda d: next(d.glob("vectors-*")).unlink(), FileNotFoundError, "vectors file .* is missing"),
    (lambda d: next(d.glob("metadata-*")).unlink(), FileNotFoundError, "metadata file .* is missing"),
    (lambda d: next(d.glob("vectors-*")).write_bytes(b"garbage"), IndexFormatError,
     r"vectors file .*: expected \d+ bytes \(manifest.json\); got 7 bytes"),
    (lambda d: next(d.glob("metadata-*")).write_bytes(b"garbage" * 100), IndexFormatError,
     r"metadata file .*: expected \d+ bytes \(manifest.json\); got 700 bytes"),
])
def test_load_errors_say_expected_and_got(tmp_path: Path, damage, error: type[Exception], match: str) -> None:
    GarmentIndex.build(unit(12), metas(12), tmp_path, kind="flat")
    damage(tmp_path)
    with pytest.raises(error, match=match):
        GarmentIndex.load(tmp_path)


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        GarmentIndex.load(tmp_path / "nope")


def test_search_argument_errors(tmp_path: Path) -> None:
    idx = GarmentIndex.build(unit(5), metas(5), tmp_path, kind="flat")
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k: expected an integer >= 1"):
            idx.search(unit(1), k=k)  # type: ignore[arg-type]
    assert idx.search(np.zeros((0, DIM)), k=3) == []


def test_garment_meta_from_mapping_and_back() -> None:
    m = GarmentMeta.from_mapping({"path": Path("a/b.jpg"), "xyxy": np.array([1, 2, 3, 4]),
                                  "attributes": {"colours": {"red", "blue"}, "wool": True}})
    assert m.path == "a/b.jpg" and m.xyxy == (1.0, 2.0, 3.0, 4.0)
    assert m.to_dict()["attributes"] == {"colours": ["blue", "red"], "wool": True}
    with pytest.raises(ValueError, match="'path' field"):
        GarmentMeta.from_mapping({"category": "x"})


# ------------------------------------------------------------------------------------ contact sheet


def _jpeg(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    img = Image.new("RGB", size, colour)
    img.paste((255, 255, 0), (40, 10, 60, 40))  # a yellow "garment" box at xyxy (40, 10, 60, 40)
    img.save(path, quality=95)
    return path


def test_contact_sheet_crops_captions_and_placeholders(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg", (200, 0, 0))
    _jpeg(tmp_path / "b.jpg", (0, 0, 200))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    hits = [
        SearchHit(1, 10, 0.91, "a.jpg", None, "sweaters", "upper", {}),
        SearchHit(2, 11, 0.80, "b.jpg", (40.0, 10.0, 60.0, 40.0), None, None, {}),
        SearchHit(3, 12, 0.70, "broken.jpg", None, None, None, {}),
        SearchHit(4, 13, 0.60, str(tmp_path / "missing.jpg"), None, None, None, {}),
    ]
    out = contact_sheet(hits, tmp_path / "out" / "sheet.png", thumb=32, cols=2, image_root=tmp_path)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    tile_w, tile_h = 32 + 8, 32 + 8 + 28
    assert sheet.shape == (2 * tile_h, 2 * tile_w, 3)

    def centre(i: int) -> np.ndarray:
        return sheet[(i // 2) * tile_h + 4 + 16, (i % 2) * tile_w + 4 + 16]

    assert centre(0)[0] > 150 and centre(0)[2] < 60           # whole red image
    assert centre(1)[0] > 200 and centre(1)[1] > 200 and centre(1)[2] < 60  # cropped to the yellow box
    assert np.abs(centre(2) - 128).max() <= 2 and np.abs(centre(3) - 128).max() <= 2  # grey placeholders
    caption = sheet[32 + 6:tile_h, 0:tile_w]
    assert (caption < 100).any()  # some dark caption text was drawn


def test_contact_sheet_from_dicts_and_empty(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg", (0, 160, 0))
    out = contact_sheet([{"path": str(tmp_path / "a.jpg"), "score": 0.5}], tmp_path / "one.png", thumb=40)
    assert Image.open(out).size == (48, 48 + 28)
    empty = contact_sheet([], tmp_path / "empty.png", thumb=40)
    assert Image.open(empty).size == (48, 48 + 28)
    with pytest.raises(ValueError, match="thumb"):
        contact_sheet([], tmp_path / "x.png", thumb=4)
    with pytest.raises(ValueError, match="'path'"):
        contact_sheet([{"score": 1.0}], tmp_path / "x.png")


def test_contact_sheet_from_index_search(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"{i}.jpg", (40 * i, 0, 0)) for i in range(4)]
    x = unit(4)
    idx = GarmentIndex.build(x, [{"path": str(p)} for p in paths], tmp_path / "index", kind="flat")
    out = contact_sheet(idx.search(x[:1], k=4)[0], tmp_path / "s.png", thumb=24)
    assert Image.open(out).size == (4 * 32, 32 + 28)
