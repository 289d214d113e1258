"""The shipped ONNX exports of the classifier and the damage head against their PyTorch weights
(the ``[train]`` environment): the meta they carry, their float16-stored weights, damage parity on
real RISE photos, and ``grade`` records that are the same whichever backend runs them.

Tolerances: damage probabilities |Δ| ≤ 1e-4 [measured ≤ 1.0e-5 on 20 RISE photos at 640 px], per-pixel
argmax disagreements ≤ 0.01 % [measured 0 of 4.5 M pixels], regions found the same (types; masks
IoU ≥ 0.99 [measured: identical]); grade records equal apart from the backend names and timings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fashionlens.grading.damage import DamageFinder  # noqa: E402
from fashionlens.grading.grade import ItemGrader, ItemInput  # noqa: E402
from fashionlens.imageio import load_image  # noqa: E402
from fashionlens.models.registry import DEFAULT_CLASSIFIER, DEFAULT_DAMAGE_MODEL, default_weights_path  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]

PROB_ATOL = 1e-4
ARGMAX_DIFF_MAX = 1e-4
MASK_IOU_MIN = 0.99


def shared_datasets() -> Path:
    """``../shared/datasets`` next to the project root (this file is ``<root>/tests/grading/…``)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


RISE = shared_datasets() / "rise" / "images"


def test_shipped_exports_carry_the_meta_of_their_weights() -> None:
    """The run time reads the meta from the export only: it must be the .pt's (re-export after changing it)."""
    from fashionlens.models.classifier import load_classifier
    from fashionlens.models.damage import load_damage_model
    from fashionlens.runtime.backends import OnnxBackend
    from fashionlens.runtime.damage_onnx import OnnxDamageRunner

    classifier = default_weights_path(DEFAULT_CLASSIFIER)
    assert OnnxBackend(classifier.with_suffix(".onnx"), threads=1).meta.to_dict() == \
        load_classifier(classifier).meta.to_dict()
    damage = default_weights_path(DEFAULT_DAMAGE_MODEL)
    runner = OnnxDamageRunner(damage.with_suffix(".onnx"), threads=1)
    assert runner.meta is not None and runner.meta.to_dict() == load_damage_model(damage)[1].to_dict()


def test_shipped_exports_record_their_format_and_the_damage_head_stores_float16() -> None:
    """The damage head's export stores its weights as float16 (half the file; parity below); the
    classifier's stays float32 (its model card says why)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto

    from fashionlens.runtime.backends import ONNX_FORMAT_KEY

    for name, header, dtype in ((DEFAULT_CLASSIFIER, "fashionlens/classifier-weights/v1", TensorProto.FLOAT),
                                (DEFAULT_DAMAGE_MODEL, "fashionlens/damage-segmenter/v1", TensorProto.FLOAT16)):
        proto = onnx.load(str(default_weights_path(name).with_suffix(".onnx")))
        assert {p.key: p.value for p in proto.metadata_props}[ONNX_FORMAT_KEY] == header
        large = [i for i in proto.graph.initializer if np.prod(i.dims) >= 1024]
        assert large and all(i.data_type == dtype for i in large), name


def _regions_match(a: list[Any], b: list[Any], where: str) -> None:
    assert [d.type for d in a] == [d.type for d in b], where
    for da, db in zip(a, b):
        union = (da.mask | db.mask).sum()  # a one-pixel region at the model's size may vanish at the photo's
        iou = (da.mask & db.mask).sum() / union if union else 1.0
        assert iou >= MASK_IOU_MIN, (where, da.type, iou)
        assert da.area_share == pytest.approx(db.area_share, abs=1e-4), where
        assert da.score == pytest.approx(db.score, abs=1e-3), where


@pytest.mark.data
@pytest.mark.skipif(not RISE.is_dir(), reason="../shared/datasets/rise not present")
def test_shipped_damage_export_matches_torch_on_rise_photos() -> None:
    onnx_finder = DamageFinder(backend="onnx", threads=1)
    torch_finder = DamageFinder(backend="torch", threads=1)
    assert (onnx_finder.backend, torch_finder.backend) == ("onnx", "torch")
    paths = sorted(RISE.glob("*.jpg"))[5::150][:8]
    assert len(paths) == 8
    for path in paths:
        rgb = load_image(path).rgb
        p_onnx = onnx_finder.probabilities(rgb, full_size=False)
        p_torch = torch_finder.probabilities(rgb, full_size=False)
        np.testing.assert_allclose(p_onnx, p_torch, rtol=0, atol=PROB_ATOL, err_msg=path.name)
        assert (p_onnx.argmax(0) != p_torch.argmax(0)).mean() <= ARGMAX_DIFF_MAX, path.name
        garment = np.zeros(rgb.shape[:2], bool)
        garment[rgb.shape[0] // 8: -rgb.shape[0] // 8, rgb.shape[1] // 8: -rgb.shape[1] // 8] = True
        _regions_match(onnx_finder.find(rgb, garment), torch_finder.find(rgb, garment), path.name)


def _without_backend_and_timing(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "timing_ms"}
    out["model"] = {k: v for k, v in record["model"].items() if not k.endswith("backend")}
    return out


def _grade_both(item: ItemInput) -> tuple[dict[str, Any], dict[str, Any]]:
    records = []
    for backend in ("onnx", "torch"):
        record, _details = ItemGrader.default(threads=1, backend=backend).grade(item)
        assert record["error"] is None, record["error"]
        assert record["model"]["damage_backend"] == backend
        records.append(_without_backend_and_timing(record))
    return records[0], records[1]


@pytest.fixture(scope="module")
def generated_item(tmp_path_factory: pytest.TempPathFactory) -> ItemInput:
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("grade_cli_tests", Path(__file__).with_name("test_grade_cli.py"))
    assert spec is not None and spec.loader is not None
    grade_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grade_cli)
    d = tmp_path_factory.mktemp("parity")
    grade_cli._garment(d / "front.jpg", 0)
    grade_cli._garment(d / "back.jpg", 1)
    labels = grade_cli._care_label_module()
    Image.fromarray(labels.render_label(labels.ZARA)).save(d / "label.png")
    return ItemInput("generated", {"front": d / "front.jpg", "back": d / "back.jpg", "label": d / "label.png"})


def test_grade_records_are_the_same_on_both_backends(generated_item: ItemInput) -> None:
    onnx_record, torch_record = _grade_both(generated_item)
    assert onnx_record == torch_record


@pytest.mark.data
@pytest.mark.skipif(not RISE.is_dir(), reason="../shared/datasets/rise not present")
def test_grade_records_are_the_same_on_both_backends_for_real_photos() -> None:
    front, back = sorted(RISE.glob("*.jpg"))[40:42]
    onnx_record, torch_record = _grade_both(ItemInput("rise", {"front": front, "back": back}))
    assert onnx_record == torch_record


def test_an_export_without_the_damage_meta_falls_back_to_the_weights_or_says_to_re_export(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    weights = Path(shutil.copy(default_weights_path(DEFAULT_DAMAGE_MODEL), tmp_path / "old.pt"))
    proto = onnx.load(str(default_weights_path(DEFAULT_DAMAGE_MODEL).with_suffix(".onnx")))
    del proto.metadata_props[:]  # as exports were written before they stored the meta
    onnx.save(proto, str(tmp_path / "old.onnx"))

    finder = DamageFinder(weights, threads=1)  # torch installed: the meta comes from the .pt
    assert finder.backend == "onnx" and finder.meta == DamageFinder(threads=1).meta

    code = ("import sys\nfor m in ('torch', 'torchvision', 'timm'):\n    sys.modules[m] = None\n"
            "from fashionlens.grading.damage import DamageFinder\n"
            "try:\n    DamageFinder(sys.argv[1])\nexcept RuntimeError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(weights)], capture_output=True, text=True, timeout=120,
                         check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-2000:]
    [message] = out.stdout.strip().splitlines()  # one line
    assert "re-export it: fashionlens export onnx --damage" in message and "pip install 'fashionlens[train]'" in message
