"""ONNX Runtime and PyTorch must give the same probabilities: parity on generated inputs, a fresh
ONNX export, backend selection, and (when ../shared/datasets is present) real photos. Needs torch
(skipped in the light environment; ``test_backends_light.py`` covers that one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the torch backend and the export: the [train] extra

from fashionlens.models.classifier import embedding_dim  # noqa: E402
from fashionlens.models.meta import EMBEDDING_OUTPUT  # noqa: E402
from fashionlens.models.registry import default_weights_path  # noqa: E402
from fashionlens.pipeline import Tagger, preprocess  # noqa: E402
from fashionlens.runtime.backends import OnnxBackend, TorchBackend, create_backend  # noqa: E402
from fashionlens.runtime.onnx_export import export_classifier_onnx, onnx_path_for  # noqa: E402
from fashionlens.jobs.local import tag_paths  # noqa: E402

ATOL = 1e-4


def shared_datasets() -> Path:
    """``../shared/datasets`` next to the project root (tests that need it skip when absent).

    This file is ``<root>/tests/runtime/test_backends.py``, so the project root is ``parents[2]``."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.fixture(scope="module")
def onnx_tagger() -> Tagger:
    return Tagger(backend="onnx")


@pytest.fixture(scope="module")
def torch_tagger() -> Tagger:
    return Tagger(backend="torch")


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert a[name].dtype == np.float32 and b[name].dtype == np.float32, name
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=ATOL, err_msg=name)
        np.testing.assert_array_equal(a[name].argmax(-1), b[name].argmax(-1), err_msg=name)


def _synthetic_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    solid = np.full((300, 200, 3), (200, 30, 35), np.uint8)
    stripes = np.zeros((240, 320, 3), np.uint8)
    stripes[::16] = 255
    stripes[1::16] = 255
    gradient = np.linspace(0, 255, 224 * 224 * 3).reshape(224, 224, 3).astype(np.uint8)
    noise = rng.integers(0, 256, (180, 260, 3), dtype=np.uint8)
    garment = np.full((470, 352, 3), 235, np.uint8)
    garment[80:400, 60:290] = (40, 80, 180)
    return [solid, stripes, gradient, noise, garment]


def test_backend_types_and_meta(onnx_tagger: Tagger, torch_tagger: Tagger) -> None:
    assert isinstance(onnx_tagger.backend, OnnxBackend) and onnx_tagger.backend.name == "onnx"
    assert isinstance(torch_tagger.backend, TorchBackend) and torch_tagger.backend.name == "torch"
    assert onnx_tagger.meta.to_dict() == torch_tagger.meta.to_dict()


@pytest.mark.parametrize("batch_size", [1, 5])
def test_parity_on_a_random_normalised_batch(onnx_tagger: Tagger, torch_tagger: Tagger, batch_size: int) -> None:
    s = onnx_tagger.input_size
    batch = np.random.default_rng(batch_size).standard_normal((batch_size, 3, s, s)).astype(np.float32)
    p_onnx, p_torch = onnx_tagger.backend.run(batch), torch_tagger.backend.run(batch)
    assert set(p_onnx) == {h.name for h in onnx_tagger.meta.heads}
    _assert_same(p_onnx, p_torch)
    for h in onnx_tagger.meta.heads:
        assert p_onnx[h.name].shape == (batch_size, h.num_outputs)
        if h.kind == "single":
            np.testing.assert_allclose(p_onnx[h.name].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_embedding_parity_and_unit_length(onnx_tagger: Tagger, torch_tagger: Tagger, batch_size: int) -> None:
    s = onnx_tagger.input_size
    batch = np.random.default_rng(10 + batch_size).standard_normal((batch_size, 3, s, s)).astype(np.float32)
    p_onnx, p_torch = onnx_tagger.backend.run(batch, embed=True), torch_tagger.backend.run(batch, embed=True)
    assert set(p_onnx) == {h.name for h in onnx_tagger.meta.heads} | {EMBEDDING_OUTPUT}
    _assert_same(p_onnx, p_torch)
    emb = p_onnx[EMBEDDING_OUTPUT]
    assert emb.shape == (batch_size, embedding_dim(onnx_tagger.meta)) == (batch_size, 1280)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the heads' probabilities do not depend on whether the embedding was asked for
    _assert_same({k: v for k, v in p_onnx.items() if k != EMBEDDING_OUTPUT}, onnx_tagger.backend.run(batch))


def test_embedding_parity_on_synthetic_images(onnx_tagger: Tagger, torch_tagger: Tagger) -> None:
    images = _synthetic_images()
    batch = np.stack([preprocess(im, onnx_tagger.meta) for im in images])
    a = onnx_tagger.backend.run(batch, embed=True)[EMBEDDING_OUTPUT]
    b = torch_tagger.backend.run(batch, embed=True)[EMBEDDING_OUTPUT]
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
    cos = a @ a.T  # different pictures are different points
    assert (cos[~np.eye(len(a), dtype=bool)] < 0.999).all()


def test_export_without_embedding_is_explained(tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(onnx_path_for(default_weights_path())))
    graph = proto.graph
    keep = [o for o in graph.output if o.name != EMBEDDING_OUTPUT]
    del graph.output[:]
    graph.output.extend(keep)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    old = OnnxBackend(tmp_path / "old.onnx", threads=1)
    assert not old.has_embedding
    batch = np.zeros((1, 3, old.meta.input_size, old.meta.input_size), np.float32)
    assert set(old.run(batch)) == {h.name for h in old.meta.heads}
    with pytest.raises(ValueError, match="no 'embedding' output.*re-export"):
        old.run(batch, embed=True)


def test_parity_on_synthetic_images(onnx_tagger: Tagger, torch_tagger: Tagger) -> None:
    images = _synthetic_images()
    _assert_same(onnx_tagger.predict(images), torch_tagger.predict(images))


def test_fresh_export_matches(tmp_path: Path, torch_tagger: Tagger) -> None:
    out = export_classifier_onnx(output=tmp_path / "model.onnx")
    assert out == tmp_path / "model.onnx" and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind
    exported = OnnxBackend(out, threads=1)
    assert exported.meta.to_dict() == torch_tagger.meta.to_dict()
    s = exported.meta.input_size
    for n in (1, 3):  # the batch axis is dynamic
        batch = np.random.default_rng(n).standard_normal((n, 3, s, s)).astype(np.float32)
        _assert_same(exported.run(batch), torch_tagger.backend.run(batch))
        _assert_same(exported.run(batch, embed=True), torch_tagger.backend.run(batch, embed=True))


def test_shipped_onnx_sits_next_to_the_weights() -> None:
    weights = default_weights_path()
    assert onnx_path_for(weights) == weights.with_suffix(".onnx")
    assert onnx_path_for(weights).is_file()


def test_auto_prefers_onnx_when_exported() -> None:
    assert create_backend().name == "onnx"


def test_backend_selection_errors(tmp_path: Path) -> None:
    weights = tmp_path / "lonely.pt"
    shutil.copy(default_weights_path(), weights)  # weights without an ONNX export next to them
    with pytest.raises(FileNotFoundError, match="no ONNX export"):
        create_backend(weights, backend="onnx")
    assert create_backend(weights, backend="auto").name == "torch"
    with pytest.raises(ValueError, match="torch backend needs .pt"):
        create_backend(default_weights_path().with_suffix(".onnx"), backend="torch")
    with pytest.raises(ValueError, match="backend must be"):
        create_backend(backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        create_backend(tmp_path / "missing.pt", backend="torch")


def test_onnx_without_fashionlens_metadata_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a fashionlens classifier"):
        OnnxBackend(tmp_path / "plain.onnx")


# ------------------------------------------------------------------------------ real photos


def _real_photos(n_per_set: int = 10) -> list[Path]:
    root = shared_datasets()
    paths: list[Path] = []
    for name in ("clothing", "rise"):
        folder = root / name / "images"
        paths += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n_per_set]
    return paths


@pytest.mark.data
@pytest.mark.skipif(not (shared_datasets() / "clothing" / "images").is_dir()
                    or not (shared_datasets() / "rise" / "images").is_dir(),
                    reason="../shared/datasets (clothing, rise) not present")
def test_parity_on_real_photos(onnx_tagger: Tagger, torch_tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _real_photos()
    assert len(paths) == 20
    probs: dict[str, list[dict[str, np.ndarray]]] = {"onnx": [], "torch": []}
    for tagger in (onnx_tagger, torch_tagger):  # record what the backend returns while the job runs
        def recording_run(batch: np.ndarray, _run=tagger.backend.run, _out=probs[tagger.backend.name]):
            _out.append(_run(batch))
            return _out[-1]
        monkeypatch.setattr(tagger.backend, "run", recording_run)

    recs_onnx = list(tag_paths(onnx_tagger, paths, batch_size=10, progress=False))
    recs_torch = list(tag_paths(torch_tagger, paths, batch_size=10, progress=False))

    for a, b in zip(recs_onnx, recs_torch):
        assert a["error"] is None and b["error"] is None, (a["error"], b["error"])
        ga, gb = a["garments"][0], b["garments"][0]
        assert (ga["object_type"], ga["category"]["id"]) == (gb["object_type"], gb["category"]["id"]), a["image"]
        assert [c["id"] for c in ga["category_top"]] == [c["id"] for c in gb["category_top"]]
    assert len(probs["onnx"]) == len(probs["torch"]) == 2
    for p_onnx, p_torch in zip(probs["onnx"], probs["torch"]):
        _assert_same(p_onnx, p_torch)
