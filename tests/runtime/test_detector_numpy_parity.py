"""The detector's ONNX + NumPy runtime against its PyTorch path (issue 26): no torch at run time, same results.

Tolerances, with the margins measured on 2026-12-07 (shipped detector v2.1, 12 CCP photos, 46
garments at the shipped defaults) in brackets:

* each NumPy step against the torchvision code it ports, on random inputs: bilinear resize
  |Δ| ≤ 2e-6 [≤ 5e-7], anchors, FPN levels and NMS kept indices identical (ties included), pasted
  masks |Δ| ≤ 1e-5;
* end to end: the same garments in the same order with the same object types; boxes within
  ``BOX_PX`` = 1 px [1.2e-4 px]; |Δ score| ≤ ``SCORE_ATOL`` = 1e-4 [3.6e-7]; mask IoU ≥
  ``MASK_IOU`` = 0.99 per garment [1.0: identical masks] — on real CCP photos, generated photos
  (tiny detectors with the semantic mask head and with a RoI mask head), elongated photos (the
  letterbox path) and photos with no detection.

The export's network graph stores its weights in float16 where that is exact; its outputs equal an
fp32 export's exactly (``test_fp16_storage_is_exact``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fashionlens.detection.detector import MAX_ASPECT, DetectSettings, GarmentDetector
from fashionlens.imageio import DecodedImage, load_image
from fashionlens.models.registry import DEFAULT_DETECTOR, default_weights_path
from fashionlens.result import Garments
from fashionlens.runtime import detector_postprocess as pp
from fashionlens.runtime.detector_export import export_detector_onnx
from fashionlens.runtime.detector_onnx import (
    OnnxDetector,
    StaleDetectorExport,
    roi_mask_onnx_path,
)

BOX_PX = 1.0
SCORE_ATOL = 1e-4
MASK_IOU = 0.99

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]

CCP = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ccp" / "photos"


def assert_same_garments(a: Garments, b: Garments, where: str = "") -> int:
    """The tolerances of the module docstring, garment by garment in order; returns how many."""
    assert a.object_type == b.object_type, f"{where}: object types {a.object_type} != {b.object_type}"
    if len(a):
        box = float(np.abs(np.asarray(a.xyxy) - np.asarray(b.xyxy)).max())
        assert box <= BOX_PX, f"{where}: boxes differ by {box:.3f} px > {BOX_PX}"
        score = float(np.abs(np.asarray(a.confidence) - np.asarray(b.confidence)).max())
        assert score <= SCORE_ATOL, f"{where}: scores differ by {score:.2e} > {SCORE_ATOL}"
    assert (a.mask is None) == (b.mask is None), f"{where}: one backend has masks, the other not"
    if a.mask is not None and b.mask is not None:
        assert a.mask.shape == b.mask.shape, f"{where}: mask shapes {a.mask.shape} != {b.mask.shape}"
        for i, (ma, mb) in enumerate(zip(a.mask, b.mask)):
            union = np.logical_or(ma, mb).sum()
            iou = np.logical_and(ma, mb).sum() / union if union else 1.0
            assert iou >= MASK_IOU, f"{where}: garment {i} ({a.object_type[i]}) mask IoU {iou:.4f} < {MASK_IOU}"
    return len(a)


# ------------------------------------------------------------------------------ each step vs torchvision


@pytest.mark.parametrize("size, out", [((37, 53), (18, 26)), ((40, 60), (40, 60)), ((30, 30), (97, 61)),
                                       ((512, 768), (256, 384))])
def test_bilinear_resize_is_torch_interpolate(size: tuple[int, int], out: tuple[int, int]) -> None:
    x = np.random.default_rng(0).standard_normal((3, *size)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=out, mode="bilinear",
                                               align_corners=False)[0].numpy()
    np.testing.assert_allclose(pp.bilinear_resize(x, *out), expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("hw", [(845, 550), (100, 7000), (333, 333), (1, 5), (768, 512), (2, 6000)])
def test_resize_normalise_is_the_torchvision_transform(hw: tuple[int, int], make_detector: Callable[..., object]
                                                       ) -> None:
    from fashionlens.runtime.detector_export import detector_config

    model = make_detector(min_size=384, max_size=384)
    rgb = np.random.default_rng(1).integers(0, 256, (*hw, 3), dtype=np.uint8)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
    try:
        expected, _ = model.transform([image])
    except RuntimeError:  # torchvision cannot resize a 1×5 photo (its short side becomes 0 px)
        with pytest.raises(ValueError, match="letterbox"):
            pp.resize_normalise(rgb, detector_config(model))
        return
    got, resized = pp.resize_normalise(rgb, detector_config(model))
    assert resized == tuple(expected.image_sizes[0])
    assert got.shape == tuple(expected.tensors.shape)
    np.testing.assert_allclose(got, expected.tensors.numpy(), rtol=0, atol=2e-6)


def test_anchors_are_the_anchor_generator(make_detector: Callable[..., object]) -> None:
    from torchvision.models.detection.image_list import ImageList

    model = make_detector()
    padded = (384, 288)  # P6/P7 of odd sizes: the stride is padded // grid, not a power of two
    sizes = pp.level_sizes(*padded)
    grids = [torch.empty((1, 1, h, w)) for h, w in sizes]
    [expected] = model.anchor_generator(ImageList(torch.zeros(1, 3, *padded), [padded]), grids)
    got = np.concatenate(pp._anchors(padded, sizes, (8, 16, 32, 64, 128)))
    np.testing.assert_array_equal(got, expected.numpy())


@pytest.mark.parametrize("n, ties", [(60, False), (60, True), (1500, False)])
def test_batched_nms_keeps_what_torchvision_keeps(n: int, ties: bool) -> None:
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(n + ties)
    xy = rng.uniform(0, 300, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 120, (n, 2)).astype(np.float32)], axis=1)
    scores = (np.round(rng.uniform(0, 1, n), 1) if ties else rng.uniform(0, 1, n)).astype(np.float32)
    labels = rng.integers(1, 4, n)
    expected = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5).numpy()
    np.testing.assert_array_equal(pp._batched_nms(boxes, scores, labels, 0.5), expected)  # 1500 boxes: per class


def test_roi_levels_are_the_level_mapper() -> None:
    from torchvision.ops.poolers import _setup_scales

    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 200, (200, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(1, 900, (200, 2)).astype(np.float32)], axis=1)
    features = [torch.zeros(1, 8, 32, 48), torch.zeros(1, 8, 16, 24), torch.zeros(1, 8, 8, 12)]
    scales, mapper = _setup_scales(features, [(250, 384)], 224, 4)
    got_scales, levels = pp.roi_levels(boxes, [(32, 48), (16, 24), (8, 12)], (250, 384),
                                       pp.DetectorConfig(384, 384, (0.5,) * 3, (0.5,) * 3, (8,), 10, 10, True))
    assert got_scales == scales
    np.testing.assert_array_equal(levels, mapper([torch.from_numpy(boxes)]).numpy())
    assert set(levels.tolist()) == {0, 1, 2}


def test_paste_masks_is_torchvision() -> None:
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(3)
    masks = rng.uniform(0, 1, (5, 28, 28)).astype(np.float32)
    boxes = np.array([[10.3, 20.7, 200.2, 300.9], [-5.5, -3.2, 40.1, 50.5], [300, 400, 520, 610], [0, 0, 2.5, 1.5],
                      [100.5, 100.5, 100.9, 160]], np.float32)
    expected = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (600, 500)).numpy()
    np.testing.assert_allclose(pp.paste_masks(masks, boxes, (600, 500)), expected, rtol=0, atol=1e-5)
    assert pp.paste_masks(masks[:0], boxes[:0], (60, 50)).shape == (0, 1, 60, 50)


@pytest.mark.parametrize("limit", [200_000_000, 5_000], ids=["full size", "over the size limit"])
def test_semantic_instance_masks_are_fcos_seg(limit: int, make_detector: Callable[..., object]) -> None:
    model = make_detector()
    model.mask_size_limit = limit
    probs = np.random.default_rng(4).uniform(0, 1, (7, 24, 32)).astype(np.float32)
    det = {"boxes": torch.tensor([[5.0, 8.0, 90.0, 70.0], [40.5, 2.5, 60.5, 95.5]]), "labels": torch.tensor([1, 4])}
    expected = model._instance_masks(torch.from_numpy(probs)[None], det, (96, 128)).numpy()
    got = pp.semantic_instance_masks(probs, det["boxes"].numpy(), det["labels"].numpy(), (96, 128), limit)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ end to end, generated photos


def save_untied(path: Path, force: str, save: Callable[..., Path], **overrides: object) -> Path:
    """A tiny detector (tests/conftest.py) that finds ``force`` garments with scores ≈ 0.9 that vary by
    location. The conftest's forced detectors score every location the same: PyTorch's ``topk``
    orders such ties in no documented order (and differently from NumPy's stable sort), so the two
    runtimes could keep different, equally scored boxes. Real networks' float32 scores do not tie."""
    from fashionlens.models.detector_weights import load_detector, save_detector

    save(path, force, **overrides)
    model, meta = load_detector(path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        c = meta.class_names.index(force)
        for conv, bias in ((model.head.classification_head.cls_logits, 3.0), (model.head.regression_head.bbox_ctrness, 3.0)):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.05)
            conv.bias[c if conv.bias.numel() > 1 else 0] = bias
    save_detector(model, meta, path, half=False)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, save_detector_weights: Callable[..., Path]) -> dict[str, Path]:
    """Tiny detectors exported to ONNX in a folder of their own: random heads (semantic masks), and
    detectors finding upper-body garments with the semantic mask head and with a RoI mask head."""
    folder = tmp_path_factory.mktemp("numpy_detectors")
    out = {"random": save_detector_weights(folder / "random.pt"),
           "upper": save_untied(folder / "upper.pt", "upper-body", save_detector_weights),
           "roi": save_untied(folder / "roi.pt", "upper-body", save_detector_weights, roi_masks=True)}
    for weights in out.values():
        export_detector_onnx(weights)
    return out


def _photos() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    flat = np.full((240, 160, 3), 230, np.uint8)
    flat[40:200, 30:130] = (30, 60, 160)
    return [rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), flat, rng.integers(0, 256, (400, 90, 3), dtype=np.uint8)]


@pytest.mark.parametrize("name, settings", [
    ("random", DetectSettings(score_thresh=0.05)),  # many overlapping low scores: top-k, NMS and order
    ("random", DetectSettings(score_thresh=0.05, rules=("duplicates", "hand_footwear"))),
    ("upper", DetectSettings()),
    ("roi", DetectSettings(max_detections=8)),
])
def test_generated_photos(exported: dict[str, Path], name: str, settings: DetectSettings) -> None:
    eager = GarmentDetector(exported[name], settings=settings, backend="torch", threads=1)
    onnx = GarmentDetector(exported[name], settings=settings, backend="onnx", threads=1)
    assert (eager.backend, onnx.backend, onnx.model) == ("torch", "onnx", None)
    n = 0
    for k, rgb in enumerate(_photos()):
        full = DecodedImage(rgb=rgb, width=rgb.shape[1] * 2, height=rgb.shape[0] * 2, scale=0.5, format="PNG",
                            mode="RGB")
        n += assert_same_garments(eager.detect(full), onnx.detect(full), f"{name} photo {k}")
    assert n >= 3  # not vacuous


@pytest.mark.parametrize("name", ["upper", "roi"])
@pytest.mark.parametrize("hw", [(20, 700), (900, 30)], ids=["wide strip", "tall strip"])
def test_letterboxed_photos(exported: dict[str, Path], name: str, hw: tuple[int, int]) -> None:
    assert max(hw) > MAX_ASPECT * min(hw)
    rgb = np.random.default_rng(6).integers(0, 256, (*hw, 3), dtype=np.uint8)
    eager = GarmentDetector(exported[name], backend="torch", threads=1)
    onnx = GarmentDetector(exported[name], backend="onnx", threads=1)
    a, b = eager.detect_rgb(rgb), onnx.detect_rgb(rgb)
    assert len(a) > 0 and b.mask is not None and b.mask.shape[1:] == hw
    assert_same_garments(a, b, f"{name} {hw}")


@pytest.mark.parametrize("name", ["upper", "roi"])
def test_no_detections(exported: dict[str, Path], name: str) -> None:
    settings = DetectSettings(score_thresh=1.0)
    rgb = np.full((50, 80, 3), 128, np.uint8)
    for backend in ("torch", "onnx"):
        g = GarmentDetector(exported[name], settings=settings, backend=backend).detect_rgb(rgb)
        assert len(g) == 0 and g.xyxy.shape == (0, 4) and g.mask is not None and g.mask.shape == (0, 50, 80)


def test_export_alone_runs_without_the_weights(exported: dict[str, Path], tmp_path: Path) -> None:
    """The ONNX files carry the detector's meta and settings: the ``.pt`` is not needed to run."""
    weights = exported["roi"]
    for f in (weights.with_suffix(".onnx"), roi_mask_onnx_path(weights.with_suffix(".onnx"))):
        shutil.copy(f, tmp_path / f.name)
    alone = GarmentDetector(tmp_path / "roi.onnx")
    assert alone.backend == "onnx" and alone.meta.name == "tiny-detector" and alone.class_names[1] == "upper-body"
    rgb = _photos()[1]
    assert_same_garments(alone.detect_rgb(rgb), GarmentDetector(weights, backend="torch").detect_rgb(rgb), "alone")
    (tmp_path / "roi.roi-mask.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="RoI mask head .* missing; re-export it"):
        GarmentDetector(tmp_path / "roi.onnx")


def test_stale_export_without_metadata(exported: dict[str, Path], tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """An export written before the metadata existed: ``onnx`` says to re-export, ``auto`` falls back."""
    import onnx

    weights = Path(shutil.copy(exported["upper"], tmp_path / "old.pt"))
    proto = onnx.load(str(exported["upper"].with_suffix(".onnx")))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "old.onnx"))
    with pytest.raises(StaleDetectorExport, match="re-export it: fashionlens export onnx --detector .*old.pt"):
        GarmentDetector(weights, backend="onnx")
    assert GarmentDetector(weights).backend == "torch"
    assert "using PyTorch" in caplog.text


def test_fp16_storage_is_exact(exported: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    weights = exported["roi"]
    fp32 = export_detector_onnx(weights, tmp_path / "fp32.onnx", fp16=False)
    fp16 = weights.with_suffix(".onnx")
    assert fp16.stat().st_size < 0.7 * fp32.stat().st_size
    x = np.random.default_rng(7).standard_normal((1, 3, 96, 128)).astype(np.float32)
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    names = [o.name for o in a.get_outputs()]
    for name, u, v in zip(names, a.run(names, {"images": x}), b.run(names, {"images": x})):
        np.testing.assert_array_equal(u, v, err_msg=name)


# ------------------------------------------------------------------------------ the shipped detector, real photos


def test_shipped_export_is_current() -> None:
    runner = OnnxDetector(default_weights_path(DEFAULT_DETECTOR).with_suffix(".onnx"), threads=1)
    assert runner.meta.name == DEFAULT_DETECTOR and runner.config.roi_masks and runner.roi_session is not None
    assert runner.meta.extra["defaults"]["score_thresh"] == pytest.approx(0.55)


@pytest.mark.data
@pytest.mark.skipif(not CCP.is_dir(), reason="../shared/datasets/ccp not present")
@pytest.mark.parametrize("settings", [DetectSettings(), DetectSettings(score_thresh=0.05, rules=("duplicates",))],
                         ids=["shipped defaults", "threshold 0.05"])
def test_shipped_detector_on_ccp_photos(settings: DetectSettings) -> None:
    eager = GarmentDetector(settings=settings, backend="torch", threads=1)
    onnx = GarmentDetector(settings=settings, backend="onnx", threads=1)
    n = 0
    for path in sorted(CCP.glob("*.jpg"))[:6]:
        image = load_image(path, min_side=512)  # as `tag` decodes for detection
        n += assert_same_garments(eager.detect(image), onnx.detect(image), path.name)
    assert n >= 12
